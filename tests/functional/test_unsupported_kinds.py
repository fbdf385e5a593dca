"""What batchplane does not run is refused when it would be written, never accepted and left unrunnable
(issue 13 item 4): Amazon EKS definitions and compute environments, and the SageMaker Training side of Batch
(service environments, service jobs, quota shares). Through a stock boto3 `batch` client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.functional.builders import (
    BatchClient,
    assert_rejected,
    container,
    fargate_resources,
    make_fargate_ce,
    make_jd,
    make_queue,
)

EKS_CLUSTER = "arn:aws:eks:us-east-1:123456789012:cluster/k8s"
POD = {"containers": [{"image": "busybox", "command": ["true"]}]}


def test_an_eks_job_definition_is_refused(batch: BatchClient) -> None:
    # GIVEN / WHEN an EKS job definition is registered THEN it is refused, naming the member, and nothing is written
    assert_rejected(
        batch,
        lambda: batch.register_job_definition(
            jobDefinitionName="eks", type="container", eksProperties={"podProperties": POD}
        ),
        "eksProperties",
        "not supported by batchplane",
    )


def test_an_eks_node_range_of_a_multinode_definition_is_refused(batch: BatchClient) -> None:
    nodes = {
        "numNodes": 2,
        "mainNode": 0,
        "nodeRangeProperties": [{"targetNodes": "0:", "eksProperties": {"podProperties": POD}}],
    }
    assert_rejected(
        batch,
        lambda: batch.register_job_definition(jobDefinitionName="eks-mnp", type="multinode", nodeProperties=nodes),
        "nodeProperties.nodeRangeProperties[0].eksProperties",
        "not supported by batchplane",
    )


def test_an_eks_compute_environment_is_refused_on_create_and_update(batch: BatchClient) -> None:
    # GIVEN an ECS compute environment
    make_fargate_ce(batch, "ce")
    # WHEN an EKS one is created THEN it is refused (not created VALID and labelled ECS)
    assert_rejected(
        batch,
        lambda: batch.create_compute_environment(
            computeEnvironmentName="eks",
            type="MANAGED",
            computeResources=fargate_resources(),
            eksConfiguration={"eksClusterArn": EKS_CLUSTER, "kubernetesNamespace": "batch"},
        ),
        "eksConfiguration",
        "not supported by batchplane",
    )
    # AND the existing one cannot be turned into one
    assert_rejected(
        batch,
        lambda: batch.update_compute_environment(
            computeEnvironment="ce", eksConfiguration={"accessEntry": {"desiredState": "ENABLED"}}
        ),
        "eksConfiguration",
    )


def test_an_eks_override_at_submit_is_refused(batch: BatchClient) -> None:
    make_queue(batch, "q", [make_fargate_ce(batch, "ce")])
    make_jd(batch, "jd")
    with pytest.raises(batch.exceptions.ClientException, match=r"eksPropertiesOverride.*not supported by batchplane"):
        batch.submit_job(
            jobName="j", jobQueue="q", jobDefinition="jd", eksPropertiesOverride={"podProperties": {"containers": []}}
        )
    assert batch.list_jobs(jobQueue="q", jobStatus="RUNNABLE")["jobSummaryList"] == []


def test_a_queue_cannot_be_given_service_environments_on_update(batch: BatchClient) -> None:
    make_queue(batch, "q", [make_fargate_ce(batch, "ce")])
    assert_rejected(
        batch,
        lambda: batch.update_job_queue(
            jobQueue="q", serviceEnvironmentOrder=[{"order": 1, "serviceEnvironment": "sagemaker"}]
        ),
        "serviceEnvironmentOrder",
        "SageMaker",
    )


SERVICE_CALLS: list[tuple[str, Callable[[BatchClient], Any]]] = [
    (
        "CreateServiceEnvironment",
        lambda b: b.create_service_environment(
            serviceEnvironmentName="se",
            serviceEnvironmentType="SAGEMAKER_TRAINING",
            capacityLimits=[{"maxCapacity": 1, "capacityUnit": "NUM_INSTANCES"}],
        ),
    ),
    ("UpdateServiceEnvironment", lambda b: b.update_service_environment(serviceEnvironment="se", state="DISABLED")),
    ("DeleteServiceEnvironment", lambda b: b.delete_service_environment(serviceEnvironment="se")),
    ("DescribeServiceEnvironments", lambda b: b.describe_service_environments()),
    (
        "SubmitServiceJob",
        lambda b: b.submit_service_job(
            jobName="sj", jobQueue="q", serviceJobType="SAGEMAKER_TRAINING", serviceRequestPayload="{}"
        ),
    ),
    ("DescribeServiceJob", lambda b: b.describe_service_job(jobId="x")),
    ("ListServiceJobs", lambda b: b.list_service_jobs(jobQueue="q")),
    ("TerminateServiceJob", lambda b: b.terminate_service_job(jobId="x", reason="r")),
    ("UpdateServiceJob", lambda b: b.update_service_job(jobId="x", schedulingPriority=1)),
    ("ListQuotaShares", lambda b: b.list_quota_shares(jobQueue="q")),
    ("DescribeQuotaShare", lambda b: b.describe_quota_share(quotaShareArn="arn:aws:batch:us-east-1:1:quota-share/x")),
]


@pytest.mark.parametrize(("operation", "call"), SERVICE_CALLS, ids=[op for op, _ in SERVICE_CALLS])
def test_service_environment_job_and_quota_share_operations_are_refused(
    batch: BatchClient, operation: str, call: Callable[[BatchClient], Any]
) -> None:
    # GIVEN / WHEN a SageMaker Training operation is called THEN a ClientException says batchplane does not support it
    with pytest.raises(batch.exceptions.ClientException) as info:
        call(batch)
    message = info.value.response["Error"]["Message"]
    assert message.startswith(f"{operation} is not supported by batchplane")
    assert "SageMaker Training" in message


def test_a_container_definition_still_registers(batch: BatchClient) -> None:
    # The refusals touch nothing else: an ordinary definition is accepted.
    assert make_jd(batch, "ok", containerProperties=container())["revision"] == 1
