"""Container credentials on a real Docker engine: a container on the `batchplane-credentials` network reads its
attempt's credentials at http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, as on ECS, and cannot read
another attempt's even when it knows the URI (docs/adr/0017); with port 80 held, at
$AWS_CONTAINER_CREDENTIALS_FULL_URI on another port of that address, under the same checks (docs/adr/0037).
Containers are started with docker-py directly.

Skips without an engine (run `bash scripts/docker-up.sh`); fails instead when CI is set.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.credentials import Credentials

from chalicelib.compute.credentials import FULL_URI_VAR, RELATIVE_URI_VAR, LocalCredentialVendor
from chalicelib.compute.credentials_network import ECS_CREDENTIALS_ADDRESS, NETWORK_NAME
from chalicelib.compute.port import CredentialsUnavailable
from tests.docker_support import holds_the_credentials_endpoint, port_80_held
from tests.functional.test_credentials import KEY_ID, SECRET, TOKEN, FakeSession, credentials_log, spec

pytestmark = pytest.mark.e2e

IMAGE = "busybox:latest"  # built locally by scripts/docker-up.sh
LABEL = "batchplane.test"  # every container this module starts, removed at teardown
WAIT_S = 30.0
__all__ = ["credentials_log"]  # a fixture


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    """A docker-py APIClient of an engine that answers (the launcher branch's `docker_engine` fixture does the same:
    use it once both are merged)."""
    why = None
    try:
        import docker

        client = docker.APIClient(**docker.utils.kwargs_from_env(), timeout=60)
        client.ping()
        client.inspect_image(IMAGE)
    except Exception as e:
        why = f"{type(e).__name__}: {e}"
    if why is not None:
        message = f"no Docker engine answers ({why}); start one with `bash scripts/docker-up.sh`"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so the container tests must run: {message}")
        pytest.skip(message)
    yield client
    for c in client.containers(all=True, filters={"label": f"{LABEL}=credentials"}):
        with contextlib.suppress(Exception):
            client.remove_container(c["Id"], force=True)
    client.close()


@pytest.fixture
def vendor(engine: Any) -> Iterator[LocalCredentialVendor]:
    v = LocalCredentialVendor(FakeSession(Credentials(KEY_ID, SECRET, TOKEN)), docker_client=engine)
    v.start()
    try:
        holds_the_credentials_endpoint(v)
        yield v
    finally:
        v.stop()


def start(
    engine: Any,
    env: dict[str, str],
    script: str,
    address: str | None = None,
    network: str = NETWORK_NAME,
    binds: dict[str, dict[str, str]] | None = None,
) -> str:
    """A busybox container on the credentials network (at `address` if given) running `sh -c script`; its id. As the
    launcher starts one there: without NET_RAW."""
    networking = None
    if address is not None:
        endpoint = engine.create_endpoint_config(ipv4_address=address)
        networking = engine.create_networking_config({network: endpoint})
    container = engine.create_container(
        IMAGE,
        command=["sh", "-c", script],
        environment=env,
        labels={LABEL: "credentials"},
        host_config=engine.create_host_config(network_mode=network, cap_drop=["NET_RAW"], binds=binds),
        networking_config=networking,
    )
    engine.start(container["Id"])
    return str(container["Id"])


def finish(engine: Any, container: str) -> tuple[int, str]:
    """Its exit code and output, once it ended."""
    code = engine.wait(container, timeout=WAIT_S)["StatusCode"]
    return int(code), engine.logs(container).decode()


def wait_for_output(engine: Any, container: str, text: str) -> str:
    deadline = time.monotonic() + WAIT_S
    while text not in (out := engine.logs(container).decode()):
        assert time.monotonic() < deadline, f"the container never printed {text!r}: {out!r}"
        time.sleep(0.05)
    return out


FETCH = "wget -qO- "  # busybox's wget: exit 1 on an HTTP error
# What an SDK fetches: the full URI when the container has one, else ECS's address and the relative URI
OWN = f"${{{FULL_URI_VAR}:-http://{ECS_CREDENTIALS_ADDRESS}${RELATIVE_URI_VAR}}}"


def url_of(env: dict[str, str]) -> str:
    return env.get(FULL_URI_VAR) or f"http://{ECS_CREDENTIALS_ADDRESS}{env[RELATIVE_URI_VAR]}"


def on_port_80(vendor: LocalCredentialVendor) -> bool:
    return vendor._container is not None and vendor._container.server_address[1] == 80


def test_the_network_gateway_is_the_ecs_credentials_address(engine: Any, vendor: LocalCredentialVendor) -> None:
    assert vendor.network == NETWORK_NAME
    [network] = [n for n in engine.networks(names=[NETWORK_NAME]) if n["Name"] == NETWORK_NAME]
    assert [c["Gateway"] for c in network["IPAM"]["Config"]] == [ECS_CREDENTIALS_ADDRESS]


def test_a_container_reads_its_credentials_as_on_ecs(engine: Any, vendor: LocalCredentialVendor) -> None:
    # GIVEN an attempt granted credentials for its container: only the relative URI, as ECS sets it (the full URI
    # when another process holds port 80: the fallback of ADR 0037, tested below)
    env = vendor.grant(spec(job_id="reader"), container=True)
    assert list(env) == [RELATIVE_URI_VAR if on_port_80(vendor) else FULL_URI_VAR]

    # WHEN its container fetches http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
    code, out = finish(engine, start(engine, env, f"{FETCH}{OWN}"))

    # THEN it reads the server's credentials in ECS's shape
    assert code == 0, out
    body = json.loads(out)
    assert (body["AccessKeyId"], body["SecretAccessKey"], body["Token"]) == (KEY_ID, SECRET, TOKEN)
    assert body["RoleArn"] == "arn:aws:iam::123456789012:role/job-role"


def test_a_container_cannot_read_another_attempts_credentials(engine: Any, vendor: LocalCredentialVendor) -> None:
    # GIVEN two attempts' containers on the network, each with its own grant
    env_a = vendor.grant(spec(job_id="victim"), container=True)
    env_b = vendor.grant(spec(job_id="thief"), container=True)
    victim = start(engine, env_a, f"{FETCH}{OWN} >/dev/null && echo fetched; sleep 30")
    wait_for_output(engine, victim, "fetched")  # the victim read its own: its grant is bound to its address

    # WHEN the other container, which learned the victim's URI, asks for it (and then for its own)
    script = f"{FETCH}{url_of(env_a)} || echo refused; {FETCH}{OWN} >/dev/null && echo own"
    code, out = finish(engine, start(engine, env_b, script))

    # THEN the victim's URI is refused to it, and its own answers
    assert code == 0, out
    assert "refused" in out and "own" in out and KEY_ID not in out


def test_a_uri_is_refused_to_a_container_that_does_not_hold_it_even_before_its_owner_asked(
    engine: Any, vendor: LocalCredentialVendor
) -> None:
    # GIVEN an attempt whose container has not fetched its credentials yet
    env_a = vendor.grant(spec(job_id="not-yet"), container=True)

    # WHEN another container asks for its URI first
    env_b = vendor.grant(spec(job_id="early"), container=True)
    code, out = finish(engine, start(engine, env_b, f"{FETCH}{url_of(env_a)} || echo refused"))

    # THEN it is refused (the container at its address does not hold that URI) ...
    assert code == 0 and "refused" in out and KEY_ID not in out, out
    # ... and the owner still reads it afterwards
    code, out = finish(engine, start(engine, env_a, f"{FETCH}{OWN}"))
    assert code == 0 and KEY_ID in out, out


def test_a_container_given_the_address_of_an_ended_holder_cannot_read_its_credentials(
    engine: Any, vendor: LocalCredentialVendor
) -> None:
    # GIVEN a container that read its credentials and ended, its grant not yet released (the launcher releases it
    # once the end is recorded)
    address = "169.254.170.201"
    env = vendor.grant(spec(job_id="ended-holder"), container=True)
    first = start(engine, env, f"{FETCH}{OWN}", address=address)
    assert finish(engine, first)[0] == 0
    engine.remove_container(first, force=True)

    # WHEN a new container gets the same address and asks for that URI
    code, out = finish(engine, start(engine, {}, f"{FETCH}{url_of(env)} || echo refused", address=address))

    # THEN it is refused: the grant belongs to the container, not to the address
    assert code == 0 and "refused" in out and KEY_ID not in out, out


def test_a_container_off_the_network_is_refused_even_with_the_uri(engine: Any, vendor: LocalCredentialVendor) -> None:
    # GIVEN a container on Docker's default bridge: 169.254.170.2 is a host address, so it can reach the endpoint
    env = vendor.grant(spec(job_id="off-network"), container=True)

    # WHEN it asks for a URI, even one in its own environment
    code, out = finish(engine, start(engine, env, f"{FETCH}{OWN} || echo refused", network="bridge"))

    # THEN it is refused (by the endpoint: 400): only containers on the credentials network are answered
    assert code == 0 and "refused" in out and "400 Bad Request" in out and KEY_ID not in out, out


def test_a_released_attempts_uri_is_refused_to_its_own_container(engine: Any, vendor: LocalCredentialVendor) -> None:
    env = vendor.grant(spec(job_id="released"), container=True)
    vendor.release("released#1")
    code, out = finish(engine, start(engine, env, f"{FETCH}{OWN} || echo refused"))
    assert code == 0 and "refused" in out and KEY_ID not in out, out


# -- when port 80 cannot be bound (docs/adr/0037) ----------------------------------------------------------------


@pytest.fixture
def fallback(engine: Any, credentials_log: pytest.LogCaptureFixture) -> Iterator[LocalCredentialVendor]:
    """A vendor started while 169.254.170.2:80 is held (by this test, or another server): it listens on another port
    of that address."""
    with port_80_held(engine):
        v = LocalCredentialVendor(FakeSession(Credentials(KEY_ID, SECRET, TOKEN)), docker_client=engine)
        v.start()
        try:
            yield v
        finally:
            v.stop()


def test_with_port_80_held_a_container_reads_its_credentials_from_a_full_uri_on_another_port(
    engine: Any, fallback: LocalCredentialVendor, credentials_log: pytest.LogCaptureFixture
) -> None:
    # GIVEN a vendor that could not bind 169.254.170.2:80: it still serves containers, and said where and why once
    assert fallback.network == NETWORK_NAME and not on_port_80(fallback)
    assert fallback._container is not None
    port = fallback._container.server_address[1]
    where = f"AWS_CONTAINER_CREDENTIALS_FULL_URI=http://169.254.170.2:{port}/v2/credentials/<id>, because "
    assert fallback.note.startswith("containers get " + where + "169.254.170.2:80 cannot be bound (")
    assert fallback.note.endswith(
        "another batchplane server on this machine may hold it, or this server may not bind ports below 1024"
    )
    said = [r.getMessage() for r in credentials_log.get_records("setup") if where in r.getMessage()]
    assert len(said) == 1, said

    # WHEN an attempt is granted credentials: the full URI, naming that port, and nothing else
    env = fallback.grant(spec(job_id="fallback-reader"), container=True)
    assert list(env) == [FULL_URI_VAR]
    assert env[FULL_URI_VAR].startswith(f"http://169.254.170.2:{port}/v2/credentials/")

    # THEN its container reads the server's credentials there, in ECS's shape
    code, out = finish(engine, start(engine, env, f"{FETCH}${FULL_URI_VAR}"))
    assert code == 0, out
    body = json.loads(out)
    assert (body["AccessKeyId"], body["SecretAccessKey"], body["Token"]) == (KEY_ID, SECRET, TOKEN)


def test_on_the_fallback_port_a_uri_is_refused_to_another_container_and_to_the_host(
    engine: Any, fallback: LocalCredentialVendor
) -> None:
    # GIVEN two attempts' containers, the victim having read its own credentials (it is its grant's holder)
    env_a = fallback.grant(spec(job_id="fallback-victim"), container=True)
    env_b = fallback.grant(spec(job_id="fallback-thief"), container=True)
    victim = start(engine, env_a, f"{FETCH}{OWN} >/dev/null && echo fetched; sleep 30")
    wait_for_output(engine, victim, "fetched")

    # WHEN the other container asks for the victim's URI (and then for its own)
    script = f"{FETCH}{url_of(env_a)} || echo refused; {FETCH}{OWN} >/dev/null && echo own"
    code, out = finish(engine, start(engine, env_b, script))

    # THEN it is refused, and its own answers
    assert code == 0, out
    assert "refused" in out and "own" in out and KEY_ID not in out

    # AND a process of the host asking for it is refused too (it is no container on the network)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url_of(env_a), timeout=5)
    assert refused.value.code == 400 and KEY_ID not in refused.value.read().decode()


# botocore's default chain, run in the container by the host's own interpreter (its root mounted read-only at /host:
# busybox has no Python); nothing else in the chain may find credentials
PROBE = (
    "import os, boto3\n"
    "creds = boto3.session.Session().get_credentials()\n"
    "print('method', creds.method if creds else None)\n"
    "print('key', creds.get_frozen_credentials().access_key if creds else None)\n"
)
NO_OTHER_SOURCE = {
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
    "AWS_CONFIG_FILE": "/nonexistent/config",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def test_boto3_in_a_container_resolves_the_credentials_from_the_fallback_port(
    engine: Any, fallback: LocalCredentialVendor
) -> None:
    # GIVEN a container granted credentials on the fallback port
    env = fallback.grant(spec(job_id="fallback-boto3"), container=True)
    assert list(env) == [FULL_URI_VAR]

    # WHEN boto3's default credential chain runs in it
    script = f"chroot /host {shlex.quote(sys.executable)} -c {shlex.quote(PROBE)}"
    binds = {"/": {"bind": "/host", "mode": "ro"}}
    code, out = finish(engine, start(engine, {**env, **NO_OTHER_SOURCE}, script, binds=binds))

    # THEN its container credentials provider accepted the full URI (plain http, ECS's address, another port) and
    # resolved the server's credentials
    assert code == 0, out
    assert out.splitlines() == ["method container-role", f"key {KEY_ID}"], out


def test_when_no_port_can_be_bound_a_job_with_a_role_is_refused_and_the_reason_names_both(
    engine: Any, credentials_log: pytest.LogCaptureFixture
) -> None:
    # GIVEN port 80 held, and the configured fallback port held too
    with port_80_held(engine), socket.socket() as other:
        other.bind((ECS_CREDENTIALS_ADDRESS, 0))
        other.listen(1)
        port = other.getsockname()[1]
        vendor = LocalCredentialVendor(
            FakeSession(Credentials(KEY_ID, SECRET, TOKEN)), docker_client=engine, fallback_port=port
        )
        vendor.start()
        try:
            # WHEN a container attempt with a role asks for credentials
            with pytest.raises(CredentialsUnavailable) as refused:
                vendor.grant(spec(job_id="nowhere"), container=True)
            note = vendor.note
        finally:
            vendor.stop()

    # THEN it is refused (its start fails with this reason), which says why for both ports
    assert vendor.network is None
    assert str(refused.value).startswith(
        "ResourceInitializationError: no AWS credentials can be served for jobRoleArn "
        "arn:aws:iam::123456789012:role/job-role: 169.254.170.2:80 cannot be bound ("
    )
    assert f"; 169.254.170.2:{port} cannot be bound either (Address already in use)" in str(refused.value)
    assert note.startswith("none can be served to containers (169.254.170.2:80 cannot be bound")
