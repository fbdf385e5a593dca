"""Container workloads (issue 11, item 10): batchplane's Docker executor beside plain Docker running the same
containers at the same concurrency on the same engine, reported as ratios.

- `docker-independent-200`: 200 independent `true` jobs of busybox:latest on a FARGATE compute environment of
  CONCURRENCY vCPUs (1 vCPU each, so at most CONCURRENCY containers at once), against CONCURRENCY docker-py threads
  doing what `docker run --rm busybox true` does (create, start, wait, remove) with the same limits (1 CPU, 2048 MiB)
  for 200 containers. `ratio` = batchplane jobs/s ÷ docker containers/s; target ≥ 0.9. The docker baseline runs
  before and after batchplane and its mean is used, to even out the shared machine's drift.
- `docker-latency`: SUBMITTED→RUNNING of LATENCY_JOBS jobs, one at a time (the server's createdAt → startedAt),
  against docker's own start latency (create + start of the same container, client-timed), the two interleaved.
  Target: batchplane's p50 ≤ docker's p50 + 50 ms (`p50_over_docker_ms` ≤ 50).

The server is `batchplane up --executor docker`; without an engine both workloads are skipped with one line saying
how to get one (`bash scripts/docker-up.sh`). Nothing here imports test modules.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from bench.client import STARTED, failed_count, percentile, span_s, wait_for, wait_jobs

IMAGE = "busybox:latest"  # built locally by scripts/docker-up.sh (no registry is reachable on the bench machines)
CONCURRENCY = 4
JOBS = 200
LATENCY_JOBS = 50
MEMORY_MIB = 2048
LABEL = "batchplane.bench"  # the baseline's containers carry it (and a run id), so a crash leaves them findable
DOCKER_HINT = "start one with `bash scripts/docker-up.sh` (Debian), or set DOCKER_HOST"


class NoEngine(RuntimeError):
    """No Docker engine answers, or it lacks the image: the container workloads are skipped."""


def engine() -> Any:
    """A docker-py low-level client of the engine at DOCKER_HOST (else the default socket), with IMAGE present."""
    try:
        import docker
        from docker.errors import DockerException, ImageNotFound
    except ImportError as e:  # docker-py is a dev dependency (requirements-dev.txt)
        raise NoEngine(f"docker-py is not installed ({e}); run `make venv`") from e
    try:
        client = docker.APIClient(**docker.utils.kwargs_from_env(), timeout=60)
        client.ping()
    except DockerException as e:
        raise NoEngine(f"no Docker engine answers ({e}); {DOCKER_HINT}") from e
    try:
        client.inspect_image(IMAGE)
    except ImageNotFound as e:
        client.close()
        raise NoEngine(f"the engine has no {IMAGE} image; {DOCKER_HINT}") from e
    return client


def skip_reason() -> str | None:
    """Why the container workloads cannot run here (None: they can)."""
    try:
        engine().close()
    except NoEngine as e:
        return str(e)
    return None


# -- plain docker ---------------------------------------------------------------------------------------------------


def _create(client: Any, run_id: str) -> str:
    host_config = client.create_host_config(mem_limit=f"{MEMORY_MIB}m", nano_cpus=1_000_000_000)
    container = client.create_container(IMAGE, ["true"], host_config=host_config, labels={LABEL: run_id})
    return str(container["Id"])


def docker_run_many(client: Any, n: int, concurrency: int) -> dict[str, Any]:
    """`docker run --rm busybox true`, n times from `concurrency` threads: create, start, wait, remove."""
    run_id = uuid.uuid4().hex[:12]
    left = list(range(n))
    lock = threading.Lock()
    failures: list[str] = []

    def worker() -> None:
        while True:
            with lock:
                if not left:
                    return
                left.pop()
            cid = ""
            try:
                cid = _create(client, run_id)
                client.start(cid)
                code = client.wait(cid)["StatusCode"]
                if code != 0:
                    failures.append(f"exit {code}")
            except Exception as e:  # counted, reported; the run goes on
                failures.append(f"{type(e).__name__}: {e}"[:200])
            finally:
                if cid:
                    client.remove_container(cid, force=True)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    wall = time.perf_counter() - t0
    _remove_leftovers(client, run_id)
    return {"wall_s": round(wall, 3), "per_s": round(n / wall, 2), "failed": len(failures), "errors": failures[:3]}


def docker_start_latency(client: Any, n: int) -> list[float]:
    """Docker's own start latency, ms: create + start of the container, one at a time (then waited and removed)."""
    run_id = uuid.uuid4().hex[:12]
    ms = []
    for _ in range(n):
        t0 = time.perf_counter()
        cid = _create(client, run_id)
        client.start(cid)
        ms.append((time.perf_counter() - t0) * 1000)
        client.wait(cid)
        client.remove_container(cid, force=True)
    _remove_leftovers(client, run_id)
    return ms


def _remove_leftovers(client: Any, run_id: str) -> None:
    for c in client.containers(all=True, filters={"label": f"{LABEL}={run_id}"}):
        client.remove_container(c["Id"], force=True)


# -- batchplane -----------------------------------------------------------------------------------------------------


def set_up_docker(client: Any) -> tuple[str, str]:
    """A FARGATE CE of CONCURRENCY vCPUs, its queue, and a busybox `true` definition; returns (queue, definition)."""
    ce = client.create_compute_environment(
        computeEnvironmentName="bench-docker-ce",
        type="MANAGED",
        computeResources={
            "type": "FARGATE",
            "maxvCpus": CONCURRENCY,
            "subnets": ["subnet-local"],
            "securityGroupIds": ["sg-local"],
        },
    )
    q = client.create_job_queue(
        jobQueueName="bench-docker-q",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce["computeEnvironmentArn"]}],
    )

    def valid() -> bool:
        qs = client.describe_job_queues(jobQueues=[q["jobQueueArn"]])["jobQueues"]
        return bool(qs) and qs[0].get("status") == "VALID"

    wait_for(valid, "job queue VALID", 30)
    jd = client.register_job_definition(
        jobDefinitionName="bench-docker-true",
        type="container",
        platformCapabilities=["FARGATE"],
        containerProperties={
            "image": IMAGE,
            "command": ["true"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": str(MEMORY_MIB)}],
            "executionRoleArn": "arn:aws:iam::123456789012:role/ecsTaskExecutionRole",  # required on FARGATE
        },
    )
    return str(q["jobQueueArn"]), str(jd["jobDefinitionArn"])


def _submit(client: Any, queue: str, jd: str, name: str) -> str:
    return str(client.submit_job(jobName=name, jobQueue=queue, jobDefinition=jd)["jobId"])


def independent_200(client: Any) -> dict[str, Any]:
    docker = engine()
    try:
        queue, jd = set_up_docker(client)
        # a warm-up on both sides (the first container on a fresh server pays for connections and the image lookup)
        wait_jobs(client, [_submit(client, queue, jd, "warm")])
        docker_run_many(docker, CONCURRENCY, CONCURRENCY)
        before = docker_run_many(docker, JOBS, CONCURRENCY)
        t0 = time.perf_counter()
        ids = [_submit(client, queue, jd, f"ind-{i}") for i in range(JOBS)]
        t_end, jobs = wait_jobs(client, ids)
        wall = t_end - t0
        after = docker_run_many(docker, JOBS, CONCURRENCY)
    finally:
        docker.close()
    docker_per_s = statistics.fmean([before["per_s"], after["per_s"]])
    batchplane_per_s = JOBS / wall
    return {
        "jobs": JOBS,
        "concurrency": CONCURRENCY,
        "wall_s": round(wall, 3),
        "span_s": span_s(jobs.values()),
        "jobs_per_s": round(batchplane_per_s, 2),
        "failed": failed_count(jobs.values()),
        "docker_per_s": round(docker_per_s, 2),
        "docker_runs": [before, after],
        "ratio": round(batchplane_per_s / docker_per_s, 3),
    }


def latency(client: Any) -> dict[str, Any]:
    docker = engine()
    try:
        queue, jd = set_up_docker(client)
        wait_jobs(client, [_submit(client, queue, jd, "warm")])
        docker_start_latency(docker, 3)  # warm-up
        docker_ms: list[float] = []
        server_ms = []
        for i in range(LATENCY_JOBS):  # interleaved, so both sides see the same load on a shared machine
            docker_ms += docker_start_latency(docker, 1)
            job_id = _submit(client, queue, jd, f"lat-{i}")
            _, jobs = wait_jobs(client, [job_id], done=STARTED, poll=0.005)
            job = jobs[job_id]
            if job.get("startedAt") is not None:
                server_ms.append(float(job["startedAt"] - job["createdAt"]))
        wait_jobs(client, [job_id])  # the last one ends before the server is stopped
    finally:
        docker.close()
    p50, docker_p50 = percentile(server_ms, 50), percentile(docker_ms, 50)
    return {
        "jobs": LATENCY_JOBS,
        "started": len(server_ms),
        "p50_ms": round(p50, 1),
        "p99_ms": round(percentile(server_ms, 99), 1),
        "docker_start_p50_ms": round(docker_p50, 1),
        "docker_start_p99_ms": round(percentile(docker_ms, 99), 1),
        "p50_over_docker_ms": round(p50 - docker_p50, 1),
    }


WORKLOADS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "docker-independent-200": independent_200,
    "docker-latency": latency,
}
TARGETS: dict[str, dict[str, tuple[float, str]]] = {
    "docker-independent-200": {"ratio": (0.9, ">=")},
    "docker-latency": {"p50_over_docker_ms": (50.0, "<=")},
}
SERVER_ARGS = ["--executor", "docker"]
