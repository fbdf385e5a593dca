"""Pulling from ECR with the server's own AWS credentials (compute/docker_engine.ecr_auth), on moto's ECR."""

from __future__ import annotations

import pytest

pytest.importorskip("docker")

from moto import mock_aws

from chalicelib.compute.docker_engine import ECR_HOST, ecr_auth

REGISTRY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"


@pytest.mark.parametrize(
    ("host", "region"),
    [
        (REGISTRY, "eu-west-1"),
        ("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
        ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", "cn-north-1"),
    ],
)
def test_ecr_registry_hosts_are_recognised_with_their_region(host: str, region: str) -> None:
    match = ECR_HOST.match(host)
    assert match is not None and match.group(3) == region


@pytest.mark.parametrize("host", ["docker.io", "public.ecr.aws", "nonexistent.invalid", "12.dkr.ecr.x.amazonaws.com"])
def test_other_registries_get_no_ecr_credentials(host: str) -> None:
    assert ecr_auth(host) is None


def test_an_ecr_registry_gets_a_token_from_the_servers_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        auth = ecr_auth(REGISTRY)
    assert auth is not None
    assert auth["username"] == "AWS" and auth["password"] and auth["serveraddress"] == REGISTRY


def test_without_credentials_the_pull_is_anonymous(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert ecr_auth(REGISTRY) is None
