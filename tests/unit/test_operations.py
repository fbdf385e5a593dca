"""The API's operation tables (api/operations.py): explicit, complete, and not filled by import side effects."""

from __future__ import annotations

import subprocess
import sys

from chalicelib.api import wire
from chalicelib.api.operations import EXTENSION_PATHS, EXTENSIONS, OPERATIONS

JOB_OPERATIONS = {"SubmitJob", "DescribeJobs", "ListJobs", "CancelJob", "TerminateJob"}


def test_the_batch_table_holds_resource_and_job_operations_of_botocores_model() -> None:
    model = set(wire.model()["operations"])
    assert set(OPERATIONS) <= model
    assert set(OPERATIONS) >= JOB_OPERATIONS
    assert {"CreateComputeEnvironment", "CreateJobQueue", "RegisterJobDefinition", "TagResource"} <= set(OPERATIONS)


def test_extensions_are_not_batch_operations_and_each_has_its_path() -> None:
    assert not set(EXTENSIONS) & set(wire.model()["operations"])
    assert {name for name in EXTENSION_PATHS.values()} == set(EXTENSIONS)
    assert all(method == "POST" for method, _ in EXTENSION_PATHS)


def test_the_gateway_sees_every_operation_without_importing_anything_else_first() -> None:
    """A fresh interpreter that imports only the gateway routes SubmitJob: nothing depends on who imported what."""
    probe = (
        "from chalicelib.api import gateway\n"
        "assert gateway.resolve('POST', '/v1/submitjob')[0] == 'SubmitJob'\n"
        "assert 'SubmitJob' in gateway.OPERATIONS and gateway.EXTENSIONS\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=60)
