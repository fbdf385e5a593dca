"""What batchplane does not run, refused where it would first be written (issue 13 item 4). Pure.

Amazon EKS job definitions and compute environments, and the SageMaker Training side of Batch (service environments,
service jobs, quota shares), have no runtime here: accepting them would leave a definition or an environment that no
job could ever run on. Each is refused with a ClientException naming the member and saying so, before anything is
written. The members come from botocore's Batch model (service-2.json): `eksProperties` (RegisterJobDefinition and
its `nodeRangeProperties[]`), `eksPropertiesOverride` (SubmitJob and its `nodeOverrides.nodePropertyOverrides[]`),
`eksConfiguration` (Create/UpdateComputeEnvironment), `serviceEnvironmentOrder` (Create/UpdateJobQueue),
`quotaSharePolicy` (scheduling policies, domain/validation.py); the service operations have no handler and the
gateway answers them with `operation_message`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.domain.errors import InvalidRequest

EKS = "Amazon EKS jobs and compute environments are not supported by batchplane; it runs ECS-style containers"
SAGEMAKER = (
    "service environments, service jobs and quota shares (SageMaker Training) are not supported by batchplane; "
    "it runs container jobs on compute environments"
)
# The operations of the SageMaker Training side of Batch (botocore 1.44's Batch model).
SERVICE_OPERATIONS = frozenset(
    {
        "CreateServiceEnvironment",
        "UpdateServiceEnvironment",
        "DeleteServiceEnvironment",
        "DescribeServiceEnvironments",
        "SubmitServiceJob",
        "DescribeServiceJob",
        "ListServiceJobs",
        "TerminateServiceJob",
        "TerminateServiceJobs",
        "UpdateServiceJob",
        "CreateQuotaShare",
        "UpdateQuotaShare",
        "DeleteQuotaShare",
        "DescribeQuotaShare",
        "ListQuotaShares",
    }
)


def _refuse(field: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"{field}: {why}")


def operation_message(operation: str) -> str:
    """The ClientException message of an operation batchplane has no handler for."""
    if operation in SERVICE_OPERATIONS:
        return f"{operation} is not supported by batchplane: {SAGEMAKER}"
    return f"{operation} is not supported by batchplane"


def job_definition(req: Mapping[str, Any]) -> None:
    if req.get("eksProperties") is not None:
        raise _refuse("eksProperties", EKS)
    ranges = (req.get("nodeProperties") or {}).get("nodeRangeProperties") or []
    for i, node_range in enumerate(ranges):
        if isinstance(node_range, Mapping) and node_range.get("eksProperties") is not None:
            raise _refuse(f"nodeProperties.nodeRangeProperties[{i}].eksProperties", EKS)


def submit(req: Mapping[str, Any]) -> None:
    if req.get("eksPropertiesOverride") is not None:
        raise _refuse("eksPropertiesOverride", EKS)
    overrides = (req.get("nodeOverrides") or {}).get("nodePropertyOverrides") or []
    for i, override in enumerate(overrides):
        if isinstance(override, Mapping) and override.get("eksPropertiesOverride") is not None:
            raise _refuse(f"nodeOverrides.nodePropertyOverrides[{i}].eksPropertiesOverride", EKS)


def compute_environment(req: Mapping[str, Any]) -> None:
    """CreateComputeEnvironment and UpdateComputeEnvironment."""
    if req.get("eksConfiguration") is not None:
        raise _refuse("eksConfiguration", EKS)


def job_queue(req: Mapping[str, Any]) -> None:
    """CreateJobQueue and UpdateJobQueue."""
    if req.get("serviceEnvironmentOrder"):
        raise _refuse("serviceEnvironmentOrder", SAGEMAKER)
