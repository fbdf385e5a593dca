"""containerProperties → the Docker engine's container configuration (compute/docker_config.py), field by field,
without an engine: what the end-to-end tests cannot show here (GPU, devices, privileged) or show only in part."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

pytest.importorskip("docker")

from chalicelib.compute.docker_config import Refused, plan
from chalicelib.compute.port import TaskSpec


def spec(ce_type: str | None = "EC2", vcpus: float = 1.0, memory: int = 2048, **container: Any) -> TaskSpec:
    container.setdefault("image", "busybox:latest")
    env = {"AWS_BATCH_JOB_ID": "j", "AWS_BATCH_JOB_ATTEMPT": "1", "AWS_REGION": "eu-west-3"}
    return TaskSpec(
        "j", 1, "t", ["echo", "hi"], env, "s", vcpus, memory, "ce", container=container,
        region="us-east-2", compute_environment_type=ce_type,
    )  # fmt: skip


def test_cpu_is_shares_on_ec2_spot_and_unmanaged_and_a_quota_on_fargate() -> None:
    assert plan(spec("EC2", vcpus=2), "n", {}).host_config["cpu_shares"] == 2048
    assert plan(spec("SPOT", vcpus=0.25), "n", {}).host_config["cpu_shares"] == 256
    assert plan(spec(None, vcpus=1), "n", {}).host_config["cpu_shares"] == 1024
    fargate = plan(spec("FARGATE_SPOT", vcpus=0.5), "n", {}).host_config
    assert fargate["nano_cpus"] == 500_000_000 and "cpu_shares" not in fargate


def test_gpus_become_a_device_request() -> None:
    host = plan(spec(resourceRequirements=[{"type": "GPU", "value": "2"}]), "n", {}).host_config
    [request] = host["device_requests"]
    assert (request["Count"], request["Capabilities"]) == (2, [["gpu"]])


def test_environment_ecs_variables_come_first_and_aws_batch_ones_always_win() -> None:
    env = plan(spec("FARGATE"), "n", {}, {"AWS_BATCH_JOB_ID": "stolen", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/c"})
    assert env.environment["AWS_EXECUTION_ENV"] == "AWS_ECS_FARGATE"
    assert env.environment["AWS_DEFAULT_REGION"] == "us-east-2"
    assert env.environment["AWS_REGION"] == "eu-west-3"  # the job's own variable
    assert env.environment["AWS_BATCH_JOB_ID"] == "j"
    assert env.environment["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] == "/c"


def test_a_granted_full_uri_is_not_shadowed_by_a_relative_uri_of_the_job() -> None:
    # GIVEN a job whose own environment has a relative URI (which the SDKs read before a full one)
    job = spec("FARGATE")
    job = dataclasses.replace(job, environment={**job.environment, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/own"})
    # WHEN its grant is a full URI (the fallback port of ADR 0037) THEN the job's relative URI is dropped
    full = "http://169.254.170.2:4242/v2/credentials/x"
    env = plan(job, "n", {}, {"AWS_CONTAINER_CREDENTIALS_FULL_URI": full}).environment
    assert env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == full and "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI" not in env
    # ... and without a grant it is the job's own business
    assert plan(job, "n", {}).environment["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] == "/own"


def test_privileged_devices_and_linux_parameters() -> None:
    host = plan(
        spec(
            privileged=True,
            linuxParameters={
                "devices": [{"hostPath": "/dev/fuse", "permissions": ["READ", "WRITE"]}],
                "tmpfs": [{"containerPath": "/t", "size": 8, "mountOptions": ["noexec"]}],
                "sharedMemorySize": 64,
                "initProcessEnabled": True,
            },
            ulimits=[{"name": "nofile", "softLimit": 10, "hardLimit": 20}],
        ),
        "n",
        {},
    ).host_config
    assert host["privileged"] is True
    assert host["devices"] == ["/dev/fuse:/dev/fuse:rw"]
    assert host["tmpfs"] == {"/t": "size=8m,noexec"}
    assert (host["shm_size"], host["init"]) == ("64m", True)
    assert [dict(u) for u in host["ulimits"]] == [{"Name": "nofile", "Soft": 10, "Hard": 20}]
    assert host["extra_hosts"] == {"host.docker.internal": "host-gateway"}


def test_volumes_host_paths_are_binds_and_others_are_this_attempts_docker_volumes() -> None:
    p = plan(
        spec(
            volumes=[{"name": "h", "host": {"sourcePath": "/data"}}, {"name": "v"}],
            mountPoints=[
                {"sourceVolume": "h", "containerPath": "/in", "readOnly": True},
                {"sourceVolume": "v", "containerPath": "/a"},
                {"sourceVolume": "v", "containerPath": "/b", "readOnly": True},
            ],
        ),
        "batchplane-x-j-1",
        {"batchplane.state-dir": "x"},
    )
    assert p.host_config["binds"] == ["/data:/in:ro"]
    assert [(m["Target"], m["Source"], m["ReadOnly"]) for m in p.host_config["mounts"]] == [
        ("/a", "batchplane-x-j-1-v", False),
        ("/b", "batchplane-x-j-1-v", True),
    ]
    assert p.volumes == ["batchplane-x-j-1-v"]


@pytest.mark.parametrize(
    ("container", "words"),
    [
        ({"volumes": [{"name": "e", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}]}, "EFS"),
        ({"mountPoints": [{"sourceVolume": "nope", "containerPath": "/x"}]}, "no volume 'nope'"),
        ({"image": ""}, "no image"),
    ],
)
def test_what_cannot_run_locally_is_refused_with_its_reason(container: dict[str, Any], words: str) -> None:
    with pytest.raises(Refused, match=words):
        plan(spec(**container), "n", {})


def test_swap_follows_max_swap_and_swappiness_only_with_it() -> None:
    assert "memswap_limit" not in plan(spec(linuxParameters={"swappiness": 5}), "n", {}).host_config
    host = plan(spec(memory=512, linuxParameters={"maxSwap": 256}), "n", {}).host_config
    assert (host["memswap_limit"], host["mem_swappiness"]) == ("768m", 60)
