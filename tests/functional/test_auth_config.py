"""The keys file of `batchplane up --auth` and the loopback rule (chalicelib/runtime/auth.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import app
from chalicelib.runtime.auth import AuthConfigError, exposure_error, is_loopback, load_keys, readable_by_others
from chalicelib.runtime.local import LocalConfig
from chalicelib.runtime.plane import build_local


def keys(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keys"
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_every_section_is_a_key_named_after_it(tmp_path: Path) -> None:
    path = keys(
        tmp_path,
        "[alice]\naws_access_key_id = AKIDA\naws_secret_access_key = a%b=c\n\n"
        "[ci]\naws_access_key_id=AKIDC\naws_secret_access_key=s\naws_session_token=tok\nregion = us-east-1\n",
    )
    loaded = load_keys(path)
    assert [(k.name, k.access_key_id, k.secret_access_key, k.session_token) for k in loaded] == [
        ("alice", "AKIDA", "a%b=c", None),  # no interpolation: '%' is a character of the secret
        ("ci", "AKIDC", "s", "tok"),
    ]
    assert "a%b=c" not in repr(loaded)  # secrets stay out of reprs (and so out of logs and tracebacks)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "has no keys"),
        ("[alice]\naws_secret_access_key = s3cr3t\n", "[alice] has no aws_access_key_id"),
        ("[alice]\naws_access_key_id = A\n", "[alice] has no aws_secret_access_key"),
        ("[a]\naws_access_key_id = A\naws_secret_access_key = s3cr3t\n[b]\naws_access_key_id = A\n"
         "aws_secret_access_key = s3cr3t2\n", "[b] repeats the access key id of [a]"),
        ("aws_secret_access_key = s3cr3t\n", "is not an AWS credentials (INI) file"),
        ("[a]\naws_access_key_id = A/B\naws_secret_access_key = s3cr3t\n", "must not contain '/'"),
    ],
)  # fmt: skip
def test_a_keys_file_that_cannot_be_used_is_refused_without_showing_secrets(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(AuthConfigError) as info:
        load_keys(keys(tmp_path, text))
    assert message in str(info.value)
    assert "s3cr3t" not in str(info.value)


def test_a_missing_keys_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError, match=r"cannot read the keys file .*nope"):
        load_keys(tmp_path / "nope")


def test_a_keys_file_others_can_read_is_noticed(tmp_path: Path) -> None:
    path = keys(tmp_path, "[a]\naws_access_key_id = A\naws_secret_access_key = s\n")
    assert not readable_by_others(path)
    path.chmod(0o644)
    assert readable_by_others(path)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_addresses_need_no_keys(host: str) -> None:
    assert is_loopback(host)
    assert exposure_error(host) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "10.1.2.3", "192.168.0.10"])
def test_any_other_address_needs_keys(host: str) -> None:
    assert not is_loopback(host)
    why = exposure_error(host)
    assert why is not None and "--auth FILE" in why


def test_the_runtime_refuses_a_public_address_without_keys_before_creating_anything(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with pytest.raises(AuthConfigError, match=r"refusing to listen on 0\.0\.0\.0"):
        build_local(LocalConfig(state_dir=state, host="0.0.0.0", port=0), app)
    assert not state.exists()
