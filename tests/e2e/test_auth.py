"""`batchplane up --auth FILE`: only requests SigV4-signed by a key in FILE are answered (docs/adr/0019).

Through every door a user has: stock boto3 (batch and logs), raw HTTP (tampered and replayed requests), the
`batchplane` CLI with a profile, the AWS CLI with a profile, and `batchplane up` itself (binding beyond loopback).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore import auth as botocore_auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from app import app
from chalicelib.cli import main
from chalicelib.runtime.local import LocalConfig, LocalRuntime
from chalicelib.runtime.plane import build_local
from tests.e2e.conftest import REGION, register, setup_queue, sh, submit, wait_terminal
from tests.runtimes import stop_runtime

pytestmark = pytest.mark.e2e

CLIENT_CONFIG = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30)
ALICE = ("AKIDALICE0000000001", "alice/secret+key0000000000000000000000001")
BOB = ("AKIDBOB00000000000002", "bob-secret-key-000000000000000000000000002")
MALLORY = ("AKIDMALLORY000000003", "mallory-secret-0000000000000000000000003")
KEYS_FILE = f"""\
[alice]
aws_access_key_id = {ALICE[0]}
aws_secret_access_key = {ALICE[1]}

[bob]
aws_access_key_id = {BOB[0]}
aws_secret_access_key = {BOB[1]}
"""
Client = Any


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "batchplane-keys"
    path.write_text(KEYS_FILE)
    path.chmod(0o600)
    return path


@pytest.fixture
def secured(tmp_path: Path, keys_file: Path) -> Iterator[LocalRuntime]:
    rt = build_local(LocalConfig(state_dir=tmp_path / "state", port=0, auth_file=keys_file, grace_seconds=1.0), app)
    rt.start()
    try:
        yield rt
    finally:
        stop_runtime(rt, 15.0)


@pytest.fixture
def client(secured: LocalRuntime) -> Iterator[Callable[..., Client]]:
    """client(service, (key id, secret), **config) -> a stock boto3 client on the secured runtime."""
    built: list[Client] = []

    def build(service: str, key: tuple[str, str] | None, config: Config = CLIENT_CONFIG) -> Client:
        session = boto3.session.Session(
            aws_access_key_id=key[0] if key else "unused",
            aws_secret_access_key=key[1] if key else "unused",
            region_name=REGION,
        )
        c = session.client(service, endpoint_url=secured.endpoint, config=config)
        built.append(c)
        return c

    yield build
    for c in built:
        c.close()


def error_of(call: Callable[[], Any]) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as info:
        call()
    err = info.value.response
    return err["Error"]["Code"], err["Error"]["Message"], err["ResponseMetadata"]["HTTPStatusCode"]


# -- stock boto3 -----------------------------------------------------------------------------------------------


def test_any_key_of_the_file_is_answered_for_batch_and_logs(client: Callable[..., Client]) -> None:
    # GIVEN a server started with a keys file of two keys
    alice, bob = client("batch", ALICE), client("batch", BOB)
    # WHEN alice creates a queue and bob reads it, and both read the logs API
    queue, _ = setup_queue(alice)
    # THEN both are answered
    assert [q["jobQueueName"] for q in bob.describe_job_queues()["jobQueues"]] == [queue]
    for key in (ALICE, BOB):
        assert "logGroups" in client("logs", key).describe_log_groups()


def test_an_unknown_key_or_a_wrong_secret_is_refused_as_aws_does_and_nothing_is_done(
    client: Callable[..., Client],
) -> None:
    # GIVEN clients signing with a key id the server does not know, and with alice's id but bob's secret
    unknown, forged = client("batch", MALLORY), client("batch", (ALICE[0], BOB[1]))
    # WHEN they try to create a compute environment
    for batch in (unknown, forged):
        with pytest.raises(ClientError):
            setup_queue(batch, name="ce-not-allowed")
    # THEN they get AWS's answers, as botocore parses them
    assert error_of(unknown.describe_job_queues) == (
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
        403,
    )
    code, message, status = error_of(forged.describe_job_queues)
    assert (code, status) == ("InvalidSignatureException", 403)
    assert message.startswith("The request signature we calculated does not match the signature you provided.")
    # AND the logs API (JSON 1.1, another botocore parser) answers the same way
    assert error_of(client("logs", MALLORY).describe_log_groups)[0] == "UnrecognizedClientException"
    assert error_of(client("logs", (ALICE[0], BOB[1])).describe_log_groups)[0] == "InvalidSignatureException"
    # AND nothing was created
    assert client("batch", ALICE).describe_compute_environments()["computeEnvironments"] == []


def test_an_unsigned_request_is_refused_with_a_missing_token(
    client: Callable[..., Client], secured: LocalRuntime
) -> None:
    unsigned = client("batch", None, CLIENT_CONFIG.merge(Config(signature_version=UNSIGNED)))
    assert error_of(unsigned.describe_job_queues) == (
        "MissingAuthenticationTokenException",
        "Request is missing Authentication Token",
        403,
    )
    status, headers, body = post(secured.endpoint + "/v1/describejobqueues", b"{}", {})
    assert status == 403
    assert headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert headers["x-amzn-RequestId"]
    assert json.loads(body)["__type"] == "MissingAuthenticationTokenException"


def test_a_request_signed_more_than_five_minutes_ago_is_refused(
    client: Callable[..., Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a client whose clock is six minutes behind (botocore reads its signing time from this hook)
    behind = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=6)
    monkeypatch.setattr(botocore_auth, "get_current_datetime", lambda: behind)
    # WHEN it calls THEN AWS's "Signature expired" is the answer
    code, message, status = error_of(client("batch", ALICE).describe_job_queues)
    assert (code, status) == ("InvalidSignatureException", 403)
    assert re.fullmatch(
        r"Signature expired: \d{8}T\d{6}Z is now earlier than \d{8}T\d{6}Z \(\d{8}T\d{6}Z - 5 min\.\)", message
    )


# -- raw HTTP: tampering and replay ----------------------------------------------------------------------------


def signed_request(endpoint: str, operation: str, body: bytes, key: tuple[str, str] = ALICE) -> AWSRequest:
    request = AWSRequest(
        method="POST", url=f"{endpoint}/v1/{operation}", data=body, headers={"Content-Type": "application/json"}
    )
    SigV4Auth(Credentials(*key), "batch", REGION).add_auth(request)
    return request


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers.items()), err.read()


def definition(name: str) -> bytes:
    return json.dumps(
        {
            "jobDefinitionName": name,
            "type": "container",
            "containerProperties": {"image": "busybox", "command": ["true"]},
        }
    ).encode()


def test_a_tampered_body_is_refused_and_nothing_is_registered(
    client: Callable[..., Client], secured: LocalRuntime
) -> None:
    # GIVEN a request alice signed to register "jd-good"
    request = signed_request(secured.endpoint, "registerjobdefinition", definition("jd-good"))
    headers = dict(request.headers.items())
    # WHEN someone on the way swaps the body for another definition
    status, _, body = post(request.url, definition("jd-evil"), headers)
    # THEN the signature does not match, and nothing was registered
    assert (status, json.loads(body)["__type"]) == (403, "InvalidSignatureException")
    alice = client("batch", ALICE)
    assert alice.describe_job_definitions()["jobDefinitions"] == []
    # AND the untouched request is answered
    assert post(request.url, definition("jd-good"), headers)[0] == 200
    assert [d["jobDefinitionName"] for d in alice.describe_job_definitions()["jobDefinitions"]] == ["jd-good"]


def test_with_auth_any_host_is_accepted_but_not_another_origin(secured: LocalRuntime) -> None:
    """--auth: the signature protects, so the Host is not checked (a server reached by another name, e.g. behind a
    proxy, still answers); a signed request a page on another site replays is still refused (origin_guard)."""
    request = signed_request(secured.endpoint, "describejobqueues", b"{}")
    headers = dict(request.headers.items())
    assert post(request.url, b"{}", headers)[0] == 200
    status, _, body = post(request.url, b"{}", {**headers, "Origin": "http://evil.example"})
    assert (status, json.loads(body)["__type"]) == (403, "AccessDeniedException")
    status, _, body = post(request.url, b"{}", {**headers, "Sec-Fetch-Site": "cross-site"})
    assert (status, json.loads(body)["__type"]) == (403, "AccessDeniedException")
    port = secured.endpoint.rsplit(":", 1)[1]
    renamed = signed_request(f"http://batch.example.internal:{port}", "describejobqueues", b"{}")
    renamed_headers = {**dict(renamed.headers.items()), "Host": f"batch.example.internal:{port}"}
    assert post(request.url, b"{}", renamed_headers)[0] == 200  # sent to 127.0.0.1 with the Host it was signed for


def test_a_replay_is_answered_within_the_window_and_refused_after_it(
    client: Callable[..., Client], secured: LocalRuntime
) -> None:
    # GIVEN a request alice signed
    request = signed_request(secured.endpoint, "registerjobdefinition", definition("jd-replayed"))
    headers, body = dict(request.headers.items()), definition("jd-replayed")
    # WHEN it is sent twice within five minutes THEN both are answered, as AWS answers them (no replay cache)
    assert post(request.url, body, headers)[0] == 200
    assert post(request.url, body, headers)[0] == 200
    revisions = client("batch", ALICE).describe_job_definitions(jobDefinitionName="jd-replayed")["jobDefinitions"]
    assert sorted(d["revision"] for d in revisions) == [1, 2]
    # WHEN the server's clock has moved six minutes on THEN the same bytes are refused
    gate = secured.server.gate
    assert gate is not None
    gate.clock = lambda: dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6)
    status, _, answer = post(request.url, body, headers)
    assert status == 403
    assert json.loads(answer)["message"].startswith("Signature expired:")


# -- the batchplane CLI and the AWS CLI, with profiles ---------------------------------------------------------


@pytest.fixture
def profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An AWS shared credentials file with profiles `alice` (a key of the server) and `mallory` (not one)."""
    path = tmp_path / "aws-credentials"
    path.write_text(
        f"[alice]\naws_access_key_id = {ALICE[0]}\naws_secret_access_key = {ALICE[1]}\n\n"
        f"[mallory]\naws_access_key_id = {MALLORY[0]}\naws_secret_access_key = {MALLORY[1]}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return path


def test_the_batchplane_cli_signs_with_the_users_profile(
    client: Callable[..., Client],
    secured: LocalRuntime,
    profiles: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a job that ran on the secured server
    monkeypatch.setenv("COLUMNS", "200")
    alice = client("batch", ALICE)
    queue, _ = setup_queue(alice)
    job_id = submit(alice, queue, register(alice, "say", sh("echo signed-hello")), name="signed-job")
    wait_terminal(alice, [job_id])
    base = ["--endpoint", secured.endpoint, "--region", REGION]
    # WHEN the user runs the CLI with their profile THEN describe, logs and batchplane's own operations answer
    capsys.readouterr()
    assert main(["describe", job_id, *base, "--profile", "alice"]) == 0
    assert "signed-job" in capsys.readouterr().out
    assert main(["logs", job_id, *base, "--profile", "alice"]) == 0
    assert "signed-hello" in capsys.readouterr().out
    assert main(["triggers", "list", *base, "--profile", "alice"]) == 0  # a signed POST of its own (call())
    capsys.readouterr()
    # AND $AWS_PROFILE is the default profile
    monkeypatch.setenv("AWS_PROFILE", "alice")
    assert main(["dag", job_id, "--no-svg", *base]) == 0
    monkeypatch.delenv("AWS_PROFILE")
    capsys.readouterr()
    # WHEN a key the server does not know signs THEN the CLI says so, and how to sign with a right one
    assert main(["describe", job_id, *base, "--profile", "mallory"]) == 1
    err = capsys.readouterr().err
    assert "UnrecognizedClientException" in err
    assert "--profile" in err
    assert main(["triggers", "list", *base, "--profile", "mallory"]) == 1
    assert "UnrecognizedClientException" in capsys.readouterr().err


def aws_cli() -> str:
    path = Path(sys.executable).with_name("aws")
    assert path.exists(), "the AWS CLI (awscli, pinned in requirements-dev.txt) is not installed in this venv"
    return str(path)


def test_the_aws_cli_with_a_profile_is_answered_and_a_wrong_profile_refused(
    client: Callable[..., Client], secured: LocalRuntime, profiles: Path
) -> None:
    queue, _ = setup_queue(client("batch", ALICE))
    env = {**os.environ, "AWS_DEFAULT_REGION": REGION, "AWS_PAGER": ""}

    def aws(*args: str, profile: str) -> subprocess.CompletedProcess[str]:
        argv = [aws_cli(), *args, "--endpoint-url", secured.endpoint, "--profile", profile, "--output", "json"]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)

    ok = aws("batch", "describe-job-queues", profile="alice")
    assert ok.returncode == 0, ok.stderr
    assert [q["jobQueueName"] for q in json.loads(ok.stdout)["jobQueues"]] == [queue]
    logs = aws("logs", "describe-log-groups", profile="alice")
    assert logs.returncode == 0, logs.stderr
    refused = aws("batch", "describe-job-queues", profile="mallory")
    assert refused.returncode != 0
    assert "(UnrecognizedClientException)" in refused.stderr
    assert "The security token included in the request is invalid." in refused.stderr


# -- the web console's signer ---------------------------------------------------------------------------------

AWS4FETCH = Path(__file__).resolve().parents[2] / "chalicelib/console_web/static/assets/vendor/aws4fetch.esm.mjs"
CONSOLE_SIGNS = """
import { AwsClient } from %(lib)s;
const [ep, id, secret] = process.argv.slice(2);
const batch = new AwsClient({ accessKeyId: id, secretAccessKey: secret, service: 'batch', region: 'us-east-1' });
const logs = new AwsClient({ accessKeyId: id, secretAccessKey: secret, service: 'logs', region: 'us-east-1' });
const out = [];
let r = await batch.fetch(ep + '/v1/describejobqueues', { method: 'POST', body: '{}',
  headers: { 'Content-Type': 'application/json' } });
out.push([r.status, await r.json()]);
r = await batch.fetch(ep + '/v1/tags/arn%%3Aaws%%3Abatch%%3Aus-east-1%%3A1%%3Ajob-queue%%2Fq?tagKeys=a+b&tagKeys=c',
  { method: 'DELETE' });
out.push([r.status, await r.json()]);
r = await logs.fetch(ep + '/', { method: 'POST', body: '{}', headers: {
  'Content-Type': 'application/x-amz-json-1.1', 'X-Amz-Target': 'Logs_20140328.DescribeLogGroups' } });
out.push([r.status, await r.json()]);
console.log(JSON.stringify(out));
"""


@pytest.mark.skipif(not AWS4FETCH.exists(), reason="the web console (and its vendored aws4fetch) is not in this tree")
def test_the_consoles_browser_signer_is_accepted_and_a_wrong_secret_refused(
    secured: LocalRuntime, tmp_path: Path
) -> None:
    node = shutil.which("node")
    assert node, "node runs the console's signer (aws4fetch) as the browser would"
    script = tmp_path / "console-signs.mjs"
    script.write_text(CONSOLE_SIGNS % {"lib": json.dumps(AWS4FETCH.as_uri())})

    def run(secret: str) -> list[tuple[int, dict[str, Any]]]:
        done = subprocess.run(
            [node, str(script), secured.endpoint, ALICE[0], secret], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return [(status, body) for status, body in json.loads(done.stdout)]

    queues, untag, groups = run(ALICE[1])
    assert queues[0] == 200 and queues[1]["jobQueues"] == []
    assert untag[0] == 400 and untag[1]["__type"] == "ClientException"  # past the gate: the queue does not exist
    assert groups[0] == 200 and groups[1]["logGroups"]
    assert {status for status, _ in run("wrong-secret")} == {403}


# -- batchplane up ---------------------------------------------------------------------------------------------

UP_LINE = re.compile(r"the AWS Batch API at (http://\S+)")


def run_up(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "app", "up", "--port", "0", *args],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_up_refuses_to_listen_beyond_loopback_without_auth(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {"BATCHPLANE_AUTH_FILE": ""}
    proc = run_up("--host", "0.0.0.0", "--state-dir", str(state), env=env)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert "refusing to listen on 0.0.0.0 without authentication" in out
    assert "--auth FILE" in out and "Run it for a team on one server" in out
    assert not state.exists()  # refused before anything was created


def test_up_refuses_a_keys_file_it_cannot_use_without_echoing_secrets(tmp_path: Path) -> None:
    bad = tmp_path / "keys"
    bad.write_text("[alice]\naws_secret_access_key = s3cr3t-never-printed\n")
    proc = run_up("--state-dir", str(tmp_path / "state"), env={"BATCHPLANE_AUTH_FILE": str(bad)})
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert "[alice] has no aws_access_key_id" in out
    assert "s3cr3t" not in out


def test_up_with_auth_answers_only_signed_requests(tmp_path: Path, keys_file: Path) -> None:
    proc = run_up("--auth", str(keys_file), "--state-dir", str(tmp_path / "state"))
    try:
        endpoint = wait_up(proc)
        status, _, body = post(endpoint + "/v1/describejobqueues", b"{}", {"Content-Type": "application/json"})
        assert (status, json.loads(body)["__type"]) == (403, "MissingAuthenticationTokenException")
        request = signed_request(endpoint, "describejobqueues", b"{}", BOB)
        assert post(request.url, b"{}", dict(request.headers.items()))[0] == 200
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
        if proc.poll() is None:
            proc.kill()
        assert proc.stdout is not None
        proc.stdout.close()


def wait_up(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    assert proc.stdout is not None
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            seen.append(line)
            if match := UP_LINE.search(line):
                return match.group(1)
            if not line and proc.poll() is not None:
                break
    raise AssertionError(f"`batchplane up --auth` did not come up: {''.join(seen)!r}")
