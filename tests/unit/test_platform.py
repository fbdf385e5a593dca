"""domain/platform.py: the container members Fargate does not run, refused by name (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.domain import platform
from chalicelib.domain.errors import InvalidRequest


def refusal(c: dict[str, Any]) -> str:
    with pytest.raises(InvalidRequest) as err:
        platform.fargate_properties(c, "containerProperties")
    return str(err.value)


@pytest.mark.parametrize("key", platform.FARGATE_LINUX_NOT_APPLICABLE)
def test_each_linux_parameter_fargate_does_not_run_is_refused_by_its_path(key: str) -> None:
    value: Any = 0 if key in ("maxSwap", "swappiness") else [{"x": 1}] if key in ("devices", "tmpfs") else 64
    assert refusal({"linuxParameters": {key: value}}).startswith(f"containerProperties.linuxParameters.{key} isn't")


@pytest.mark.parametrize(
    "c",
    [
        {},
        {"privileged": False, "ulimits": [], "instanceType": None},
        {"linuxParameters": {"initProcessEnabled": True, "devices": [], "tmpfs": [], "maxSwap": None}},
        {"volumes": [{"name": "a"}, {"name": "b", "host": {}}, {"name": "c", "host": {"sourcePath": ""}}]},
        {"volumes": [{"name": "e", "efsVolumeConfiguration": {"fileSystemId": "fs"}}]},
        {"fargatePlatformConfiguration": {"platformVersion": "1.4.0"}, "volumes": [{"efsVolumeConfiguration": {}}]},
        {"logConfiguration": {"logDriver": "splunk"}},
    ],
)
def test_what_fargate_runs_passes(c: dict[str, Any]) -> None:
    platform.fargate_properties(c, "containerProperties")


@pytest.mark.parametrize(
    ("c", "prefix"),
    [
        ({"privileged": True}, "containerProperties.privileged must be false or omitted"),
        ({"instanceType": "m5.large"}, "containerProperties.instanceType isn't applicable"),
        ({"ulimits": [{"name": "nofile"}]}, "containerProperties.ulimits isn't applicable"),
        ({"volumes": [{"name": "a"}, {"host": {"sourcePath": "/x"}}]}, "containerProperties.volumes[1].host."),
        ({"logConfiguration": {"logDriver": "json-file"}}, "containerProperties.logConfiguration.logDriver must be"),
        (
            {"fargatePlatformConfiguration": {"platformVersion": "1.3.0"}, "volumes": [{"efsVolumeConfiguration": {}}]},
            "containerProperties.volumes[0].efsVolumeConfiguration needs",
        ),
    ],
)
def test_what_fargate_does_not_run_is_named(c: dict[str, Any], prefix: str) -> None:
    assert refusal(c).startswith(prefix)


@pytest.mark.parametrize(("version", "ok"), [("LATEST", True), ("1.4.0", True), ("1.10.0", True), ("1.3.0", False)])
def test_efs_needs_platform_version_1_4_0(version: str, ok: bool) -> None:
    assert platform._version_at_least(version) is ok


def test_a_stored_fargate_container_is_checked_at_submit_and_an_ec2_one_is_not() -> None:
    c = {"resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]}
    tmpfs = {**c, "linuxParameters": {"tmpfs": [{"containerPath": "/t", "size": 1}]}}
    platform.effective_resources(tmpfs, platform.EC2)
    with pytest.raises(InvalidRequest, match=r"^jobDefinition containerProperties\.linuxParameters\.tmpfs isn't"):
        platform.effective_resources(tmpfs, platform.FARGATE)
