"""No root through the API by default (issue 11, item 8), through boto3 and raw HTTP against the local runtime:
privileged containers, host devices and host paths are refused at SubmitJob (and by triggers) unless `batchplane
up --allow-privileged` / `--allow-host-path PREFIX` allowed them; registering such a definition stays allowed."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from app import app
from chalicelib.control import triggers as control
from chalicelib.control.react import Reactor
from chalicelib.runtime.local import LocalConfig, LocalRuntime
from chalicelib.runtime.plane import build_local
from tests.functional.builders import (
    REGION,
    BatchClient,
    assert_client_error,
    container,
    make_ec2_ce,
    make_jd,
    make_queue,
    raw_operation,
)
from tests.functional.conftest import CLIENT_CONFIG, STOP_TIMEOUT_S
from tests.runtimes import stop_runtime

STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
PRIVILEGED = "batchplane up --allow-privileged"
HOST_PATH = "batchplane up --allow-host-path PREFIX"


@pytest.fixture
def allowed_dir(tmp_path: Path) -> Path:
    path = tmp_path / "allowed"
    (path / "in").mkdir(parents=True)
    return path


@pytest.fixture
def start(
    tmp_path: Path, boto_session: boto3.session.Session
) -> Iterator[Callable[..., tuple[LocalRuntime, BatchClient]]]:
    """Starts a LocalRuntime with the given allowances and a queue `q` whose CE is disabled (nothing runs)."""
    started: list[tuple[LocalRuntime, BatchClient]] = []

    def build(**allow: Any) -> tuple[LocalRuntime, BatchClient]:
        rt = build_local(LocalConfig(state_dir=tmp_path / f"state-{len(started)}", port=0, **allow), app)
        rt.start()
        batch = boto_session.client("batch", region_name=REGION, endpoint_url=rt.endpoint, config=CLIENT_CONFIG)
        started.append((rt, batch))
        make_ec2_ce(batch, "ce")  # privileged containers and host devices run on EC2 only, as on AWS
        make_queue(batch, "q", ["ce"])
        batch.update_compute_environment(computeEnvironment="ce", state="DISABLED")
        return rt, batch

    yield build
    for rt, batch in started:
        batch.close()
        stop_runtime(rt, STOP_TIMEOUT_S)


def ec2_jd(batch: BatchClient, name: str, **overrides: Any) -> dict[str, Any]:
    """An EC2 definition (no platformCapabilities), for the EC2 queue `q`: Fargate has no privileged containers,
    host devices or host volumes."""
    return make_jd(batch, name, platformCapabilities=None, **overrides)


def job_count(batch: BatchClient) -> int:
    return sum(len(batch.list_jobs(jobQueue="q", jobStatus=s)["jobSummaryList"]) for s in STATUSES)


def refused(batch: BatchClient, jd: str, *fragments: str) -> str:
    """SubmitJob of `jd` is a ClientException (HTTP 400) whose message holds `fragments`; no job was written."""
    before = job_count(batch)
    with pytest.raises(batch.exceptions.ClientException) as info:
        batch.submit_job(jobName="j", jobQueue="q", jobDefinition=jd)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    message = str(info.value.response["Error"]["Message"])
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert job_count(batch) == before
    return message


def accepted(batch: BatchClient, jd: str) -> str:
    return str(batch.submit_job(jobName="j", jobQueue="q", jobDefinition=jd)["jobId"])


def mounting(source: str | Path) -> dict[str, Any]:
    return container(
        volumes=[{"name": "data", "host": {"sourcePath": str(source)}}],
        mountPoints=[{"sourceVolume": "data", "containerPath": "/data"}],
    )


# -- by default: nothing of the host ---------------------------------------------------------------------------


def test_a_privileged_definition_registers_but_its_jobs_are_refused(start: Callable[..., Any]) -> None:
    _, batch = start()
    # GIVEN a privileged definition: registering it is allowed, as on AWS
    ec2_jd(batch, "root", containerProperties=container(privileged=True))
    # WHEN a job of it is submitted THEN ClientException names the field, the definition and the flag; no job
    refused(batch, "root", "containerProperties.privileged", "job definition root:1", PRIVILEGED)


def test_host_devices_are_refused(start: Callable[..., Any]) -> None:
    _, batch = start()
    ec2_jd(
        batch,
        "dev",
        containerProperties=container(linuxParameters={"devices": [{"hostPath": "/dev/sda"}]}),
    )
    refused(batch, "dev", "containerProperties.linuxParameters.devices", "/dev/sda", PRIVILEGED)


def test_host_paths_are_refused_and_engine_volumes_accepted(start: Callable[..., Any], allowed_dir: Path) -> None:
    _, batch = start()
    ec2_jd(batch, "host", containerProperties=mounting(allowed_dir))
    ec2_jd(
        batch,
        "scratch",
        containerProperties=container(
            volumes=[{"name": "scratch"}], mountPoints=[{"sourceVolume": "scratch", "containerPath": "/scratch"}]
        ),
    )
    refused(batch, "host", "containerProperties.volumes[0].host.sourcePath", "allows host paths: none", HOST_PATH)
    assert accepted(batch, "scratch")


def test_the_refusal_is_a_client_exception_on_the_wire(start: Callable[..., Any]) -> None:
    rt, batch = start()
    ec2_jd(batch, "root", containerProperties=container(privileged=True))

    resp = raw_operation(rt.endpoint, "SubmitJob", {"jobName": "j", "jobQueue": "q", "jobDefinition": "root"})

    assert_client_error(resp, "containerProperties.privileged", PRIVILEGED)


# -- what the operator allowed ---------------------------------------------------------------------------------


def test_allow_privileged_accepts_privileged_containers_and_devices(start: Callable[..., Any]) -> None:
    _, batch = start(allow_privileged=True)
    ec2_jd(batch, "root", containerProperties=container(privileged=True))
    ec2_jd(batch, "dev", containerProperties=container(linuxParameters={"devices": [{"hostPath": "/dev/fuse"}]}))

    assert accepted(batch, "root") and accepted(batch, "dev")


def test_a_host_path_is_allowed_under_a_prefix_symlinks_resolved(
    start: Callable[..., Any], tmp_path: Path, allowed_dir: Path
) -> None:
    # GIVEN a server allowing one directory, reached through a symlink in the flag itself
    via_link = tmp_path / "link-to-allowed"
    via_link.symlink_to(allowed_dir)
    _, batch = start(allow_host_paths=(str(via_link),))
    # AND a symlink inside it that leads out, one outside that leads in, and a sibling sharing its name's prefix
    (allowed_dir / "escape").symlink_to(tmp_path)
    (tmp_path / "inward").symlink_to(allowed_dir / "in")
    sibling = tmp_path / "allowed-not"
    sibling.mkdir()
    for name, source in {
        "inside": allowed_dir / "in",
        "itself": allowed_dir,
        "inward": tmp_path / "inward",
        "escape": allowed_dir / "escape",
        "sibling": sibling,
        "dotdot": f"{allowed_dir}/../allowed-not",
        "relative": "allowed/in",
    }.items():
        ec2_jd(batch, name, containerProperties=mounting(source))

    # THEN paths that resolve under the prefix are accepted
    assert accepted(batch, "inside") and accepted(batch, "itself") and accepted(batch, "inward")
    # AND the others are refused, naming the prefix (resolved) the server allows
    for name in ("escape", "sibling", "dotdot", "relative"):
        refused(batch, name, "volumes[0].host.sourcePath", f"only paths under {os.path.realpath(allowed_dir)}")


# -- triggers --------------------------------------------------------------------------------------------------

TRIGGER = {
    "triggerName": "on-file",
    "jobQueue": "q",
    "jobName": "ingest",
    "source": {"s3": {"bucket": "data-in"}},
}


def test_triggers_cannot_submit_what_submit_job_refuses(start: Callable[..., Any]) -> None:
    rt, batch = start()
    ec2_jd(batch, "root", containerProperties=container(privileged=True))
    ec2_jd(batch, "plain")
    # WHEN a trigger is created for a privileged definition THEN it is refused at once, naming the flag
    resp = raw_operation(rt.endpoint, "CreateTrigger", {**TRIGGER, "jobDefinition": "root"})
    assert_client_error(resp, "containerProperties.privileged", PRIVILEGED)
    # AND a trigger whose definition becomes privileged after it was created submits nothing when it fires
    assert raw_operation(rt.endpoint, "CreateTrigger", {**TRIGGER, "jobDefinition": "plain"}).status == 200
    ec2_jd(batch, "plain", containerProperties=container(privileged=True))  # revision 2, the one a firing uses
    svc = rt.services
    assert control.on_object_created(svc, Reactor(svc, svc.launcher, svc.defer), "data-in", "a.csv", "seq-1") == []
    assert job_count(batch) == 0


def test_the_aws_runtime_has_no_host_to_protect() -> None:
    from chalicelib.runtime.aws import AwsConfig

    settings_from_environment = AwsConfig.from_environment({"BATCHPLANE_TABLE": "batchplane"}).settings
    assert settings_from_environment.host_access is None
