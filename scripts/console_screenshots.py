"""Screenshots of the web console for docs/console/ (README "Web console"): runs a LocalRuntime with the process
executor on a temporary state directory, submits a small pipeline and a few other jobs, and photographs the main pages
in Debian's chromium with Playwright while the pipeline runs.

    .venv/bin/python scripts/console_screenshots.py [--out docs/console]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chalicelib.domain.validation import Limits
from chalicelib.runtime.local import LocalConfig, LocalRuntime

VIEWPORT = {"width": 1360, "height": 860}


def seed(b: Any) -> dict[str, str]:
    net = {"subnets": ["subnet-0a1b2c3d"], "securityGroupIds": ["sg-0a1b2c3d"]}
    b.create_compute_environment(
        computeEnvironmentName="cpu", type="MANAGED", computeResources={"type": "FARGATE", "maxvCpus": 6, **net}
    )
    b.create_compute_environment(
        computeEnvironmentName="cpu-spot",
        type="MANAGED",
        computeResources={"type": "FARGATE_SPOT", "maxvCpus": 2, **net},
    )
    policy = b.create_scheduling_policy(
        name="teams",
        fairsharePolicy={
            "shareDecaySeconds": 3600,
            "computeReservation": 10,
            "shareDistribution": [
                {"shareIdentifier": "research", "weightFactor": 1.0},
                {"shareIdentifier": "prod", "weightFactor": 0.5},
            ],
        },
    )["arn"]
    b.create_job_queue(
        jobQueueName="pipelines", priority=10, computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "cpu"}]
    )
    b.create_job_queue(
        jobQueueName="shared",
        priority=1,
        schedulingPolicyArn=policy,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "cpu-spot"}],
    )

    def jd(name: str, script: str, **kw: Any) -> str:
        props = {
            "image": "public.ecr.aws/docker/library/busybox:latest",
            "command": ["sh", "-c", script],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
            "executionRoleArn": "arn:aws:iam::123456789012:role/ecsTaskExecutionRole",  # required on FARGATE
        }
        kw = {"platformCapabilities": ["FARGATE"], **kw}  # the queues' environments are FARGATE, as on AWS
        return str(
            b.register_job_definition(jobDefinitionName=name, type="container", containerProperties=props, **kw)[
                "jobDefinitionArn"
            ]
        )

    split = jd("etl-split", "echo splitting s3://datasets/2026-12-04 into 24 parts; sleep 1; echo done")
    process = jd(
        "etl-process",
        'p=$AWS_BATCH_JOB_ARRAY_INDEX; echo "part $p: reading"; '
        'for i in 1 2 3 4 5 6; do echo "part $p: batch $i/6 ok"; sleep 1.5; done',
        parameters={"bucket": "s3://datasets"},
    )
    merge = jd("etl-merge", "echo merging 24 parts; sleep 2; echo wrote s3://reports/2026-12-04.parquet")
    report = jd(
        "nightly-report",
        "echo rendering report; echo 'error: upstream table missing' >&2; exit 2",
        retryStrategy={"attempts": 2},
    )
    train = jd("train-model", "echo epoch 1; sleep 30")
    ids: dict[str, str] = {}
    ids["split"] = b.submit_job(jobName="etl-split", jobQueue="pipelines", jobDefinition=split)["jobId"]
    ids["process"] = b.submit_job(
        jobName="etl-process",
        jobQueue="pipelines",
        jobDefinition=process,
        arrayProperties={"size": 24},
        dependsOn=[{"jobId": ids["split"]}],
    )["jobId"]
    ids["merge"] = b.submit_job(
        jobName="etl-merge", jobQueue="pipelines", jobDefinition=merge, dependsOn=[{"jobId": ids["process"]}]
    )["jobId"]
    ids["report"] = b.submit_job(jobName="nightly-report", jobQueue="pipelines", jobDefinition=report)["jobId"]
    for i, share in enumerate(["research", "research", "prod", "research", "prod", "prod"]):
        jid = b.submit_job(jobName=f"train-{share}-{i}", jobQueue="shared", jobDefinition=train, shareIdentifier=share)[
            "jobId"
        ]
        ids.setdefault("train", jid)
    return ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/console")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=60_000)
    state = Path(tempfile.mkdtemp(prefix="console-shots-"))
    rt = LocalRuntime(
        LocalConfig(state_dir=state / "state", port=0, limits=Limits(min_timeout_seconds=1), grace_seconds=1.0)
    )
    rt.start()
    try:
        b = boto3.client(
            "batch", endpoint_url=rt.endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        ids = seed(b)
        base = f"{rt.endpoint}/console"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)

            def snap(path: str, name: str, ready: Any, full: bool = True) -> None:
                page.goto(base + path)
                ready()
                time.sleep(1.0)  # let the last poll draw
                page.screenshot(path=str(out / f"{name}.png"), full_page=full)
                print("wrote", out / f"{name}.png", flush=True)

            def running(job: str) -> None:
                while b.describe_jobs(jobs=[job])["jobs"][0]["status"] in (
                    "SUBMITTED",
                    "PENDING",
                    "RUNNABLE",
                    "STARTING",
                ):
                    time.sleep(0.2)

            running(f"{ids['process']}:0")
            time.sleep(4)
            snap(
                "/",
                "dashboard",
                lambda: expect(page.get_by_role("link", name="pipelines", exact=True)).to_be_visible(),
                full=False,
            )
            snap(
                f"/jobs/{ids['process']}",
                "job-array",
                lambda: expect(page.locator(".grid .cell.s-running").first).to_be_visible(),
            )
            snap(
                f"/jobs/{ids['process']}:7",
                "job-log",
                lambda: expect(page.get_by_label("Log lines")).to_contain_text("batch"),
            )
            snap(
                "/jobs?queue=shared&status=RUNNABLE",
                "jobs",
                lambda: expect(page.locator("table.jobs tbody tr").nth(2)).to_be_visible(),
                full=False,
            )
            snap(
                "/queues/shared",
                "queue-fair-share",
                lambda: expect(page.get_by_role("table", name="Fair-share usage by share")).to_be_visible(),
            )
            snap(
                "/submit?definition=etl-process:1",
                "submit",
                lambda: expect(page.get_by_label("parameter 1 value")).to_have_value("s3://datasets"),
            )
            while b.describe_jobs(jobs=[ids["report"]])["jobs"][0]["status"] != "FAILED":
                time.sleep(0.2)
            snap(
                f"/jobs/{ids['report']}",
                "job-failed",
                lambda: expect(page.get_by_label("Log lines")).to_contain_text("error"),
            )
            browser.close()
    finally:
        rt.stop()
        shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
