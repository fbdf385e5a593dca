"""A small, real pipeline on batchplane, submitted with stock boto3 (run it against `make run`: `make demo`).

    numbers.txt ─split─▶ chunk-i ─process (array of N)─▶ part-i ─merge─▶ total.txt ─publish─▶ report.txt

- split: deals the input's lines round-robin into N chunk files;
- process: an array job of N children; each one sums the chunk its AWS_BATCH_JOB_ARRAY_INDEX picks;
- merge: depends on the whole array; adds the partial sums up and prints sum, count and mean;
- publish: depends on merge and fails on its first attempt ($AWS_BATCH_JOB_ATTEMPT = 1, as a flaky upload
  would); its retryStrategy retries exit code 1, so the second attempt publishes the report.

The data lives in a local folder (--data-dir) that every step reads and writes; the steps are plain `sh` and
`awk`, so they run in a busybox image. The job definitions mount that folder as a host volume at the same path, so
the steps see the same paths whether batchplane runs them as containers (Docker executor) or as host processes.
Mounting a host folder is something the server's operator must allow: `make run` starts the server with
`--allow-host-path <repository>/.batchplane-demo`; with another --data-dir, start it with that folder allowed.

The compute environment is EC2 (managed), and the job definitions are EC2 ones (no platformCapabilities): AWS
runs no host volume on Fargate ("Job definitions on Fargate"), and neither does batchplane.

Everything is created idempotently (compute environment, queue, job definitions), so the demo can run again. It
prints the command to watch the run, or runs it (--watch). A server that ran an older demo holds its FARGATE
compute environment `demo`, on which the queue `demo` ran: the queue is moved to `demo-ec2`, and `demo` is left
unused (disable and delete it at will; jobs still queued from that older demo wait, as they would on AWS).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

NAME = "demo"
COMPUTE_ENVIRONMENT = "demo-ec2"  # not "demo": an older demo created a FARGATE environment of that name
RESOURCES = [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]

# Each step is `sh -c SCRIPT step <workdir>`: the data folder arrives as $1 through the Ref::workdir parameter.
SPLIT = (
    'mkdir -p "$1/chunks" "$1/results"'
    ' && awk -v n="$2" -v d="$1/chunks" \'{ print > (d "/chunk-" (NR-1)%n) }\' "$1/numbers.txt"'
    ' && echo "split $(wc -l < "$1/numbers.txt") lines into $2 chunks"'
)
PROCESS = (
    'i="$AWS_BATCH_JOB_ARRAY_INDEX"'
    '; awk \'{ s += $1; c++ } END { print s, c }\' "$1/chunks/chunk-$i" > "$1/results/part-$i"'
    ' && echo "chunk $i: $(cat "$1/results/part-$i")"'
)
MERGE = (
    'cat "$1"/results/part-*'
    " | awk '{ s += $1; c += $2 } END { printf \"sum=%d count=%d mean=%.2f\\n\", s, c, s / c }'"
    ' | tee "$1/total.txt"'
)
PUBLISH = (
    'if [ "$AWS_BATCH_JOB_ATTEMPT" = 1 ]; then echo "publish: the upload timed out (attempt 1); exit 1 to retry"'
    "; exit 1; fi"
    '; cp "$1/total.txt" "$1/report.txt" && echo "published $(cat "$1/report.txt") on attempt $AWS_BATCH_JOB_ATTEMPT"'
)


@dataclass(frozen=True)
class Pipeline:
    data_dir: Path
    split: str
    process: str
    merge: str
    publish: str
    expected: str  # what total.txt will hold


def clients(endpoint: str, region: str) -> Any:
    session = boto3.session.Session(region_name=region)
    if session.get_credentials() is None:  # a local batchplane does not check them
        session = boto3.session.Session(region_name=region, aws_access_key_id="demo", aws_secret_access_key="demo")
    return session.client("batch", endpoint_url=endpoint)


def ensure_resources(batch: Any, data_dir: Path, max_vcpus: int = 4) -> None:
    """The compute environment, the queue and the four job definitions, which mount `data_dir` (idempotent)."""
    try:
        batch.create_compute_environment(
            computeEnvironmentName=COMPUTE_ENVIRONMENT,
            type="MANAGED",
            computeResources={
                "type": "EC2",
                "minvCpus": 0,
                "maxvCpus": max_vcpus,
                "instanceTypes": ["optimal"],
                "instanceRole": "ecsInstanceRole",
                "subnets": ["subnet-demo"],
                "securityGroupIds": ["sg-demo"],
            },
        )
    except ClientError as e:
        if "already exists" not in str(e):
            raise
    order = [{"order": 1, "computeEnvironment": COMPUTE_ENVIRONMENT}]
    queues = batch.describe_job_queues(jobQueues=[NAME])["jobQueues"]
    if not queues:
        batch.create_job_queue(jobQueueName=NAME, priority=1, computeEnvironmentOrder=order)
    elif [c["computeEnvironment"].rsplit("/", 1)[-1] for c in queues[0]["computeEnvironmentOrder"]] != [
        COMPUTE_ENVIRONMENT
    ]:
        batch.update_job_queue(jobQueue=NAME, computeEnvironmentOrder=order)  # an older demo's FARGATE queue
    folder = str(data_dir.resolve())
    volume = {"name": "demo-data", "host": {"sourcePath": folder}}
    mount = {"sourceVolume": "demo-data", "containerPath": folder}  # the same path inside: $1 names it in both
    steps = {"split": (SPLIT, ["Ref::chunks"]), "process": (PROCESS, []), "merge": (MERGE, [])}
    for step, (script, extra) in {**steps, "publish": (PUBLISH, [])}.items():
        batch.register_job_definition(  # no platformCapabilities: an EC2 definition, as the queue's environment is
            jobDefinitionName=f"{NAME}-{step}",
            type="container",
            containerProperties={
                "image": "busybox:latest",  # built locally by scripts/docker-up.sh; Docker Hub's elsewhere
                "command": ["sh", "-c", script, step, "Ref::workdir", *extra],
                "resourceRequirements": RESOURCES,
                "volumes": [volume],
                "mountPoints": [mount],
            },
        )


def write_input(data_dir: Path, lines: int, seed: int) -> str:
    """numbers.txt with `lines` random integers; returns the total.txt the pipeline must produce."""
    rng = random.Random(seed)
    numbers = [rng.randint(1, 1000) for _ in range(lines)]
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "numbers.txt").write_text("".join(f"{n}\n" for n in numbers))
    for stale in ("total.txt", "report.txt"):
        (data_dir / stale).unlink(missing_ok=True)
    total = sum(numbers)
    return f"sum={total} count={lines} mean={total / lines:.2f}"


def submit(batch: Any, data_dir: Path, chunks: int = 4, lines: int = 1000, seed: int = 7) -> Pipeline:
    expected = write_input(data_dir, lines, seed)
    params = {"workdir": str(data_dir.resolve())}

    def job(step: str, extra: dict[str, str] | None = None, **kwargs: Any) -> str:
        resp = batch.submit_job(
            jobName=f"{NAME}-{step}",
            jobQueue=NAME,
            jobDefinition=f"{NAME}-{step}",
            parameters={**params, **(extra or {})},
            **kwargs,
        )
        return str(resp["jobId"])

    split = job("split", {"chunks": str(chunks)})
    process = job("process", arrayProperties={"size": chunks}, dependsOn=[{"jobId": split}])
    merge = job("merge", dependsOn=[{"jobId": process}])
    retry = {"attempts": 2, "evaluateOnExit": [{"onExitCode": "1", "action": "RETRY"}]}
    publish = job("publish", dependsOn=[{"jobId": merge}], retryStrategy=retry)
    return Pipeline(data_dir, split, process, merge, publish, expected)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", default=os.environ.get("BATCHPLANE_ENDPOINT", "http://127.0.0.1:8000"))
    parser.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    parser.add_argument("--data-dir", default="./.batchplane-demo", help="the folder the steps share")
    parser.add_argument("--chunks", type=int, default=4, help="how many chunks (the array's size)")
    parser.add_argument("--watch", action="store_true", help="run `batchplane watch` on the pipeline")
    args = parser.parse_args(argv)

    batch = clients(args.endpoint, args.region)
    data_dir = Path(args.data_dir)
    ensure_resources(batch, data_dir)
    try:
        run = submit(batch, data_dir / time.strftime(f"run-%Y%m%d-%H%M%S-{os.getpid()}"), args.chunks)
    except ClientError as e:
        if "--allow-host-path" not in str(e):
            raise
        print(f"demo: the server refuses to mount {data_dir.resolve()} into the jobs ({e})", file=sys.stderr)
        print(f"  start it with: batchplane up --allow-host-path {data_dir.resolve()}", file=sys.stderr)
        return 2
    cli = "batchplane"
    print(f"submitted the pipeline; its data is in {run.data_dir.resolve()}")
    print(f"  split    {run.split}")
    print(f"  process  {run.process}  (an array of {args.chunks})")
    print(f"  merge    {run.merge}")
    print(f"  publish  {run.publish}  (fails on attempt 1, then retried)")
    print(f"watch it:      {cli} watch {run.publish} --endpoint {args.endpoint}")
    print(f"then:          {cli} dag {run.publish}   ·   {cli} logs {run.merge}   ·   {cli} describe {run.publish}")
    if not args.watch:
        return 0
    watch = [sys.executable, "-m", "chalicelib.cli", "watch", run.publish, "--endpoint", args.endpoint]
    code = subprocess.call(watch)
    report = run.data_dir / "report.txt"
    if code == 0 and report.exists():
        print(f"report: {report.read_text().strip()}  (expected {run.expected})")
    return code


if __name__ == "__main__":
    sys.exit(main())
