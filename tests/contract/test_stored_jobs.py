"""Jobs an earlier version stored, read by this one, on every store (SQLite, DynamoDB on moto): their retry strategy
and timeout were wire dicts on the Job (docs/adr/0025). They read back typed, DescribeJobs shows what it showed, and
the control plane acts on them (the retry decision, the attempt's deadline)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.domain import retry
from chalicelib.domain.job_detail import job_detail
from chalicelib.domain.retry import ExitRule, RetryStrategy
from chalicelib.store.jobs import JobRepository
from chalicelib.store.port import Item, ItemStore

# A RUNNING job's body exactly as the version before ADR 0025 wrote it (store/jobs.py job_body of that version);
# over 400 bytes, so DynamoDB stores it compressed (store/dynamo.py).
OLD_BODY = (
    '{"job_id":"old-1","name":"nightly","arn":"arn:aws:batch:us-east-1:123456789012:job/old-1","queue":"high",'
    '"queue_arn":"arn:aws:batch:us-east-1:123456789012:job-queue/high","job_definition_arn":'
    '"arn:aws:batch:us-east-1:123456789012:job-definition/etl:3","job_definition_name":"etl","status":"RUNNING",'
    '"created_at":1700000000000,"container":{"image":"busybox","command":["sh","-c","run"]},"parameters":{},'
    '"retry_strategy":{"attempts":3,"evaluateOnExit":[{"onStatusReason":"Host EC2*","action":"retry"},'
    '{"onExitCode":"1","onReason":"*","action":"EXIT"}]},"timeout":{"attemptDurationSeconds":3600},"depends_on":[],'
    '"pending":[],"array":null,"vcpus":1.0,"memory":2048,"status_reason":null,"reason_since":null,'
    '"started_at":1700000000200,"stopped_at":null,"attempts":[],"current":{"number":1,"task_id":"t-1",'
    '"compute_environment":"ce","log_stream":"etl/default/t-1","created_at":1700000000100,"started_at":1700000000200,'
    '"stopped_at":null,"exit_code":null,"reason":null,"status_reason":null,"container_instance_arn":null},'
    '"share_identifier":null,"scheduling_priority":null,"tags":{},"propagate_tags":false,"platform_capabilities":[],'
    '"is_cancelled":false,"is_terminated":false,"updated_at":1700000000200}'
)


def stored_by_an_earlier_version(store: ItemStore, **changes: Any) -> JobRepository:
    body = {**json.loads(OLD_BODY), **changes}
    gsi1 = ("Q#high#ACTIVE", f"1700000000000#{body['job_id']}")
    store.put(Item("JOB#old-1", "", body, gsi1=gsi1), expect=None)
    return JobRepository(store)


def test_an_old_job_reads_typed_and_describes_as_before(store: ItemStore) -> None:
    jobs = stored_by_an_earlier_version(store)

    job = jobs.get("old-1")

    assert job is not None
    assert job.retry_strategy == RetryStrategy(
        3, (ExitRule("retry", on_status_reason="Host EC2*"), ExitRule("EXIT", on_reason="*", on_exit_code="1"))
    )
    assert job.timeout is not None and job.timeout.attempt_duration_seconds == 3600
    old = json.loads(OLD_BODY)
    detail = job_detail(job)
    assert detail["retryStrategy"] == old["retry_strategy"]
    assert detail["timeout"] == old["timeout"]


def test_the_control_plane_acts_on_an_old_jobs_strategy_and_timeout(store: ItemStore) -> None:
    job = stored_by_an_earlier_version(store).get("old-1")
    assert job is not None

    assert job.deadline == 1700000000200 + 3600 * 1000
    assert retry.evaluate(job.retry_strategy, 1, None, None, "Host EC2 (instance i-1) terminated.") == "RETRY"
    assert retry.evaluate(job.retry_strategy, 1, 1, "boom", "Essential container in task exited") == "EXIT"


def test_an_old_job_written_again_keeps_the_same_body(store: ItemStore) -> None:
    jobs = stored_by_an_earlier_version(store)
    job = jobs.get("old-1")
    assert job is not None

    saved = jobs.save(job)
    again = store.get("JOB#old-1", "")

    assert again is not None and saved.version == 2
    assert again.body == json.loads(OLD_BODY)  # the same object (evaluateOnExit keys now in the model's order)


@pytest.mark.parametrize("empty", [{}, None])
def test_an_old_job_without_either_reads_without_either(store: ItemStore, empty: dict[str, Any] | None) -> None:
    job = stored_by_an_earlier_version(store, retry_strategy=empty, timeout=empty).get("old-1")

    assert job is not None
    assert (job.retry_strategy, job.timeout, job.max_attempts, job.deadline) == (None, None, 1, None)
    assert "retryStrategy" not in job_detail(job) and "timeout" not in job_detail(job)
