"""The credentials vendor (compute/credentials.py) on its loopback side: grants, releases, what it answers and what
it refuses, and a real botocore ContainerProvider resolving credentials from it."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import stat
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import ContainerProvider, Credentials, RefreshableCredentials

from chalicelib.compute.credentials import (
    FULL_URI_VAR,
    PORT_VAR,
    RELATIVE_URI_VAR,
    LocalCredentialVendor,
    configured_port,
)
from chalicelib.compute.port import CredentialsUnavailable, TaskSpec

ROLE = "arn:aws:iam::123456789012:role/job-role"
KEY_ID, SECRET, TOKEN = "AKIDSERVERKEY", "server-secret-key", "server-session-token"


class FakeSession:
    """A session whose credentials are given (None: a server without AWS credentials); counts resolutions."""

    def __init__(self, credentials: Credentials | None) -> None:
        self.credentials = credentials
        self.resolutions = 0

    def get_credentials(self) -> Credentials | None:
        self.resolutions += 1
        return self.credentials


def spec(job_id: str = "job-1", attempt: int = 1, role: str | None = ROLE) -> TaskSpec:
    container: dict[str, Any] = {"image": "busybox"}
    if role is not None:
        container["jobRoleArn"] = role
    return TaskSpec(job_id, attempt, "task", ["true"], {}, "jd/default/task", 1.0, 2048, "ce", container=container)


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def credentials_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog, attached to the vendor's logger itself: importing the Chalice app (named "batchplane") turns off
    propagation from "batchplane" loggers to the root logger, where caplog listens."""
    logger = logging.getLogger("batchplane.credentials")
    logger.addHandler(caplog.handler)
    level, propagate = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # each record once, whether the app was imported or not
    try:
        yield caplog
    finally:
        logger.setLevel(level)
        logger.propagate = propagate
        logger.removeHandler(caplog.handler)


@pytest.fixture
def session() -> FakeSession:
    return FakeSession(Credentials(KEY_ID, SECRET, TOKEN))


@pytest.fixture
def vendor(session: FakeSession, tmp_path: Path) -> Iterator[LocalCredentialVendor]:
    year_2100 = 4_102_444_800.0
    v = LocalCredentialVendor(session, grants_file=tmp_path / "credentials.json", now=lambda: year_2100)
    v.start()
    try:
        yield v
    finally:
        v.stop()


def test_a_job_with_a_role_gets_a_loopback_uri_that_answers_the_servers_credentials(
    vendor: LocalCredentialVendor,
) -> None:
    # GIVEN a job whose definition has a jobRoleArn
    env = vendor.grant(spec(), container=False)

    # THEN it gets a full URI on the loopback endpoint, and no secret in its environment
    assert list(env) == [FULL_URI_VAR]
    assert env[FULL_URI_VAR].startswith(vendor.loopback_endpoint + "/v2/credentials/")
    assert not any(secret in value for value in env.values() for secret in (KEY_ID, SECRET, TOKEN))

    # WHEN the job fetches it
    status, body = get(env[FULL_URI_VAR])

    # THEN it reads the server's credentials in ECS's shape
    assert status == 200
    assert body == {
        "RoleArn": ROLE,
        "AccessKeyId": KEY_ID,
        "SecretAccessKey": SECRET,
        "Token": TOKEN,
        "Expiration": "2100-01-01T01:00:00Z",  # static credentials: an hour from `now`
    }


def test_a_job_without_a_role_gets_nothing(vendor: LocalCredentialVendor, session: FakeSession) -> None:
    assert vendor.grant(spec(role=None), container=False) == {}
    assert vendor.grant(spec(role=""), container=False) == {}
    assert session.resolutions == 0  # nor does it make the server look for credentials


def test_a_grant_is_idempotent_per_attempt_and_each_attempt_has_its_own_id(vendor: LocalCredentialVendor) -> None:
    first = vendor.grant(spec(attempt=1), container=False)
    assert vendor.grant(spec(attempt=1), container=False) == first
    second = vendor.grant(spec(attempt=2), container=False)
    other = vendor.grant(spec(job_id="job-2"), container=False)
    assert len({first[FULL_URI_VAR], second[FULL_URI_VAR], other[FULL_URI_VAR]}) == 3


def test_a_released_attempts_uri_answers_no_more(vendor: LocalCredentialVendor) -> None:
    # GIVEN two attempts with credentials
    ended = vendor.grant(spec(job_id="ended"), container=False)[FULL_URI_VAR]
    running = vendor.grant(spec(job_id="running"), container=False)[FULL_URI_VAR]

    # WHEN one ends
    vendor.release("ended#1")
    vendor.release("ended#1")  # twice: harmless

    # THEN its URI is refused as ECS refuses an unknown id; the other one still answers
    assert get(ended) == (400, {"code": "InvalidIdInRequest", "message": "CredentialsV2Request: ID not found"})
    assert get(running)[0] == 200


def test_unknown_and_missing_ids_are_refused(vendor: LocalCredentialVendor) -> None:
    vendor.grant(spec(), container=False)
    base = vendor.loopback_endpoint
    assert get(f"{base}/v2/credentials/not-a-granted-id")[1]["code"] == "InvalidIdInRequest"
    assert get(f"{base}/v2/credentials/") == (
        400,
        {"code": "NoIdInRequest", "message": "CredentialsV2Request: No ID in the request"},
    )
    assert get(f"{base}/")[0] == 400


def test_a_loopback_grant_is_not_answered_on_the_container_side(vendor: LocalCredentialVendor) -> None:
    path = vendor.grant(spec(), container=False)[FULL_URI_VAR].removeprefix(vendor.loopback_endpoint)
    assert vendor.answer(path, "169.254.170.3", container=True)[0] == 400
    assert vendor.answer(path, "127.0.0.1", container=False)[0] == 200


def test_without_server_credentials_a_job_with_a_role_is_refused_and_one_line_says_why(
    tmp_path: Path, credentials_log: pytest.LogCaptureFixture
) -> None:
    # GIVEN a server whose AWS session has no credentials
    session = FakeSession(None)
    vendor = LocalCredentialVendor(session)
    vendor.start()
    refusals = []
    try:
        # WHEN three jobs with a role start (and one without)
        for i in range(3):
            with pytest.raises(CredentialsUnavailable) as refused:
                vendor.grant(spec(job_id=f"j{i}"), container=False)
            refusals.append(str(refused.value))
        assert vendor.grant(spec(job_id="no-role", role=None), container=False) == {}
    finally:
        vendor.stop()

    # THEN each is refused with the reason its start fails with, the session was asked once, one warning says why
    assert refusals == 3 * [
        f"ResourceInitializationError: no AWS credentials can be served for jobRoleArn {ROLE}: the server's AWS "
        "session has no credentials (set AWS_PROFILE, AWS_ACCESS_KEY_ID… and restart it)"
    ]
    assert session.resolutions == 1
    warnings = [r.getMessage() for r in credentials_log.records if r.levelno == logging.WARNING]
    assert warnings == [
        "jobs with a jobRoleArn fail to start: no AWS credentials can be served: the server's AWS session has no "
        "credentials (set AWS_PROFILE, AWS_ACCESS_KEY_ID… and restart it)"
    ]


def test_without_a_docker_engine_a_container_with_a_role_is_refused(
    vendor: LocalCredentialVendor, credentials_log: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(CredentialsUnavailable, match="containers get credentials only with a Docker engine"):
        vendor.grant(spec(), container=True)
    assert vendor.network is None
    assert vendor.note.startswith("host processes get AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:")
    assert "containers get credentials only with a Docker engine" in credentials_log.text


def test_the_port_of_the_fallback_endpoint_is_configured_by_a_valid_number_only(
    credentials_log: pytest.LogCaptureFixture,
) -> None:
    assert configured_port({PORT_VAR: "8099"}) == 8099
    assert configured_port({}) is None
    assert configured_port({PORT_VAR: ""}) is None
    for bad in ("http", "0", "65536", "-1"):
        assert configured_port({PORT_VAR: bad}) is None
    assert "ignoring BATCHPLANE_CREDENTIALS_PORT='http': not a port number (1-65535)" in credentials_log.text


def test_no_secret_and_no_id_is_logged(
    vendor: LocalCredentialVendor, credentials_log: pytest.LogCaptureFixture
) -> None:
    uri = vendor.grant(spec(), container=False)[FULL_URI_VAR]
    get(uri)
    get(uri + "x")
    vendor.release("job-1#1")
    token = uri.rsplit("/", 1)[1]
    assert "refused a credentials request from 127.0.0.1" in credentials_log.text  # something was logged
    for secret in (KEY_ID, SECRET, TOKEN, token):
        assert secret not in credentials_log.text


def test_botocores_container_provider_resolves_the_credentials(vendor: LocalCredentialVendor) -> None:
    # GIVEN the environment a job with a role gets
    env = vendor.grant(spec(), container=False)

    # WHEN botocore's own container credentials provider loads from it (as every SDK on ECS does)
    creds = ContainerProvider(environ=env).load()

    # THEN it has the server's credentials
    assert creds is not None
    frozen = creds.get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (KEY_ID, SECRET, TOKEN)
    assert creds.method == "container-role"


def test_a_refreshable_sessions_expiry_is_passed_on(tmp_path: Path) -> None:
    # GIVEN a server whose credentials expire (SSO, an assumed role, an instance profile)
    expiry = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    refreshable = RefreshableCredentials(
        KEY_ID, SECRET, TOKEN, expiry, refresh_using=lambda: {}, method="sso", time_fetcher=lambda: expiry
    )
    refreshable._expiry_time = expiry  # botocore keeps it here
    refreshable._refresh = lambda: None  # type: ignore[method-assign]
    vendor = LocalCredentialVendor(FakeSession(refreshable))
    vendor.start()
    try:
        env = vendor.grant(spec(), container=False)
        status, body = get(env[FULL_URI_VAR])
    finally:
        vendor.stop()
    assert status == 200
    assert body["Expiration"] == "2030-01-02T03:04:05Z"


def test_long_term_keys_have_a_null_token_which_botocore_accepts(tmp_path: Path) -> None:
    vendor = LocalCredentialVendor(FakeSession(Credentials(KEY_ID, SECRET)))
    vendor.start()
    try:
        env = vendor.grant(spec(), container=False)
        assert get(env[FULL_URI_VAR])[1]["Token"] is None
        creds = ContainerProvider(environ=env).load()
    finally:
        vendor.stop()
    assert creds is not None
    assert creds.get_frozen_credentials().token is None


def test_container_grants_outlive_a_restart_in_a_private_file(session: FakeSession, tmp_path: Path) -> None:
    # GIVEN a container grant recorded by one vendor (made as a Docker-backed vendor would, without an engine: its
    # stand-in endpoint is on an ephemeral port, as the fallback of ADR 0037 is, so the grant is a full URI)
    grants_file = tmp_path / "credentials.json"
    first = LocalCredentialVendor(session, grants_file=grants_file)
    first.start()
    try:
        first._container = first._loopback  # stands in for the container endpoint: only the bookkeeping is tested
        port = first._container.server_address[1]
        env = first.grant(spec(), container=True)
        first._container = None
    finally:
        first.stop()
    assert list(env) == [FULL_URI_VAR]
    assert env[FULL_URI_VAR].startswith(f"http://169.254.170.2:{port}/v2/credentials/")
    assert stat.S_IMODE(os.stat(grants_file).st_mode) == 0o600
    assert KEY_ID not in grants_file.read_text() and SECRET not in grants_file.read_text()

    # WHEN the server restarts
    second = LocalCredentialVendor(session, grants_file=grants_file)
    second.start()
    try:
        # THEN the grant is known again (the same URI for the same attempt), until it is released, and the port its
        # URI names is the one the fallback endpoint tries first
        assert second._saved_port == port
        second._container = second._loopback
        assert second.grant(spec(), container=True) == env
        second._container = None
        second.release("job-1#1")
        assert json.loads(grants_file.read_text()) == []
    finally:
        second.stop()


def test_grants_recorded_before_the_fallback_existed_are_relative_uris(session: FakeSession, tmp_path: Path) -> None:
    grants_file = tmp_path / "credentials.json"
    grants_file.write_text(json.dumps([{"key": "job-1#1", "token": "tok", "role": ROLE}]))
    vendor = LocalCredentialVendor(session, grants_file=grants_file)
    vendor.start()
    try:
        assert vendor.grant(spec(), container=True) == {RELATIVE_URI_VAR: "/v2/credentials/tok"}
        assert vendor._saved_port is None
    finally:
        vendor.stop()


def test_an_unreadable_grants_file_is_ignored_with_a_warning(
    session: FakeSession, tmp_path: Path, credentials_log: pytest.LogCaptureFixture
) -> None:
    grants_file = tmp_path / "credentials.json"
    grants_file.write_text('[{"key": "job-1#1"}]')  # no token: written by something else, or damaged
    vendor = LocalCredentialVendor(session, grants_file=grants_file)
    vendor.start()
    try:
        assert vendor.grant(spec(), container=False)  # the vendor works
    finally:
        vendor.stop()
    assert "ignoring the unreadable credentials grants file" in credentials_log.text
