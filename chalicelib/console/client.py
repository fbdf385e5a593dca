"""What the `batchplane` commands talk to: stock boto3 clients (batch, logs) on the endpoint, and batchplane's own
operations (triggers, job dependents) as signed JSON POSTs to the same endpoint.

Requests to a local batchplane are signed as boto3 signs them (service `batch`, `logs` for the logs API) with the
credentials boto3 finds (--profile / $AWS_PROFILE, the environment, ~/.aws): a server started with `--auth`
checks that signature (docs/adr/0019); one without it only reads the region from it, and when no credentials are
found at all, dummy ones are used. Against a deployed batchplane
(its function URL, an API Gateway host, or a host in BATCHPLANE_ENDPOINTS) requests are signed for `lambda` or
`execute-api` with the caller's credentials (chalicelib/auth_plugin.py), and job logs are read from CloudWatch Logs
itself.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ProfileNotFound

from chalicelib import auth_plugin

DEFAULT_ENDPOINT = "http://127.0.0.1:8000"
ENDPOINT_ENV = "BATCHPLANE_ENDPOINT"
TERMINAL = ("SUCCEEDED", "FAILED")
ACTIVE = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
STATUSES = (*ACTIVE, *TERMINAL)
_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30)


class CliError(Exception):
    """Something to tell the user (an API error, a job that does not exist): printed, exit status 1."""


def default_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def default_endpoint() -> str:
    return os.environ.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT


@dataclass
class Api:
    endpoint: str
    region: str
    profile: str | None = None
    _session: Any = None
    _clients: dict[str, Any] = field(default_factory=dict)

    @property
    def deployed(self) -> bool:
        return auth_plugin.is_batchplane_endpoint(self.endpoint)

    @property
    def session(self) -> Any:
        if self._session is None:
            try:
                session = boto3.session.Session(region_name=self.region, profile_name=self.profile)
            except ProfileNotFound as e:
                raise CliError(str(e)) from None
            if session.get_credentials() is None:
                if self.deployed:
                    raise CliError(f"no AWS credentials found to sign requests to {self.endpoint}")
                session = boto3.session.Session(
                    region_name=self.region, aws_access_key_id="local", aws_secret_access_key="local"
                )
            auth_plugin.register(session)
            self._session = session
        return self._session

    def client(self, service: str) -> Any:
        if service not in self._clients:
            endpoint: str | None = self.endpoint
            if service == "logs" and self.deployed:
                endpoint = None  # a deployed batchplane's job logs are in CloudWatch Logs
            self._clients[service] = self.session.client(service, endpoint_url=endpoint, config=_CONFIG)
        return self._clients[service]

    @property
    def batch(self) -> Any:
        return self.client("batch")

    @property
    def logs(self) -> Any:
        return self.client("logs")

    def call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        """One of batchplane's own operations: POST /v1/<operation lowercased> with a JSON body."""
        url = f"{self.endpoint.rstrip('/')}/v1/{operation.lower()}"
        data = json.dumps(body).encode()
        service = auth_plugin.signing_name_for(self.endpoint) or "batch"
        headers = {"Content-Type": "application/json", **auth_plugin.signed_headers(service, data)}
        request = AWSRequest(method="POST", url=url, data=data, headers=headers)
        creds: Credentials = self.session.get_credentials().get_frozen_credentials()
        SigV4Auth(creds, service, self.region).add_auth(request)
        prepared = urllib.request.Request(url, data=data, method="POST", headers=dict(request.headers.items()))
        try:
            with urllib.request.urlopen(prepared, timeout=30) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as err:
            raise CliError(_error_message(operation, err.code, err.read())) from None
        except OSError as err:
            raise CliError(f"cannot reach batchplane at {self.endpoint}: {err}") from None
        parsed: dict[str, Any] = json.loads(payload) if payload else {}
        return parsed

    # -- jobs -------------------------------------------------------------------------------------------------

    def describe(self, job_ids: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(job_ids))
        for i in range(0, len(unique), 100):
            # The JSON itself, not boto3's describe_jobs: botocore drops the members its model does not have, and
            # batchplane's batchplaneCost is one (domain/cost.py).
            resp = self.call("DescribeJobs", {"jobs": unique[i : i + 100]})
            for job in resp["jobs"]:
                found[job["jobId"]] = job
        return found

    def job(self, job_id: str) -> dict[str, Any]:
        job = self.describe([job_id]).get(job_id)
        if job is None:
            raise CliError(f"job {job_id} does not exist")
        return job

    def dependents(self, job_id: str) -> list[str]:
        """Ids of the jobs that depend on `job_id` (batchplane's ListJobDependents, every page)."""
        ids: list[str] = []
        token: str | None = None
        while True:
            body: dict[str, Any] = {"jobId": job_id}
            if token:
                body["nextToken"] = token
            page = self.call("ListJobDependents", body)
            ids += [d["jobId"] for d in page.get("dependents", [])]
            token = page.get("nextToken")
            if not token:
                return ids

    def queue_jobs(self, queue: str, status: str, limit: int) -> Iterator[dict[str, Any]]:
        """Job summaries of a queue in one status, at most `limit`."""
        seen = 0
        body: dict[str, Any] = {"jobQueue": queue, "jobStatus": status}
        while True:  # the JSON itself, as in `describe`: the summaries' batchplaneCost
            page = self.call("ListJobs", body)
            for summary in page.get("jobSummaryList", []):
                if seen >= limit:
                    return
                seen += 1
                yield summary
            if not page.get("nextToken"):
                return
            body["nextToken"] = page["nextToken"]


def _error_message(operation: str, status: int, payload: bytes) -> str:
    try:
        body = json.loads(payload)
        code = str(body.get("__type", status))
        return f"{operation}: {code}: {body.get('message', '')}{_auth_hint(code)}"
    except ValueError:
        return f"{operation}: HTTP {status}"


def _client_message(e: Exception, endpoint: str) -> str:
    response = getattr(e, "response", None)
    if isinstance(response, dict) and "Error" in response:
        code = str(response["Error"].get("Code"))
        return f"{code}: {response['Error'].get('Message')}{_auth_hint(code)}"
    return f"cannot reach batchplane at {endpoint}: {e}"


AUTH_CODES = frozenset(
    {
        "MissingAuthenticationTokenException",
        "IncompleteSignatureException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
    }
)


def _auth_hint(code: str) -> str:
    if code not in AUTH_CODES:
        return ""
    return (
        "\n(this batchplane accepts only requests signed with one of its keys: sign with yours via --profile,"
        " $AWS_PROFILE or $AWS_ACCESS_KEY_ID/$AWS_SECRET_ACCESS_KEY)"
    )


def short(job_id: str) -> str:
    """A job id as people read it: the first 8 characters (and an array child's index)."""
    parent, sep, index = job_id.rpartition(":")
    if sep and index.isdigit():
        return f"{parent[:8]}:{index}"
    return job_id[:8]
