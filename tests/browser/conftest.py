"""The web console in a real browser: Playwright for Python driving Debian's chromium (Playwright's own browser
download cannot be reached; scripts/browser-up.sh installs chromium, `.ci/run` calls it).

Outside CI the tests skip, with a message, when chromium or playwright is missing; in CI (env CI set) they fail.
Fixtures: `runtime` (a LocalRuntime with the process executor on 127.0.0.1:0, for the module), `batch` / `logs`
clients on it, `browser` (one chromium for the session), `page` (a fresh context per test, failing the test on any
JavaScript error or alert()), `shot` (saves a screenshot when CONSOLE_SCREENSHOTS names a directory).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from app import app
from chalicelib.domain.validation import Limits
from chalicelib.runtime.local import LocalConfig, LocalRuntime
from chalicelib.runtime.plane import build_local
from tests.e2e.conftest import CLIENT_CONFIG, REGION, kill_jobs_under
from tests.runtimes import stop_runtime

CHROMIUM_ENV = "BATCHPLANE_CHROMIUM"
SCREENSHOTS_ENV = "CONSOLE_SCREENSHOTS"
VIEWPORT = {"width": 1400, "height": 900}
TIMEOUT_MS = 30_000


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run in CI: {why} (scripts/browser-up.sh installs chromium)")
    pytest.skip(f"browser tests skipped: {why} (run scripts/browser-up.sh)")


def chromium_path() -> str | None:
    return os.environ.get(CHROMIUM_ENV) or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _unavailable("playwright is not installed")
    path = chromium_path()
    if path is None:
        _unavailable(f"no chromium on PATH (or ${CHROMIUM_ENV})")
    expect.set_options(timeout=TIMEOUT_MS)  # a loaded CI machine: jobs take a while to start
    with sync_playwright() as p:
        # --no-sandbox: CI containers run as root, where chromium's sandbox refuses to start.
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    state = tmp_path_factory.mktemp("console") / "state"
    rt = build_local(LocalConfig(state_dir=state, port=0, limits=Limits(min_timeout_seconds=1), grace_seconds=1.0), app)
    rt.start()
    try:
        yield rt
    finally:
        stop_runtime(rt, 15.0)
        kill_jobs_under(state)


def _client(service: str, endpoint: str) -> Any:
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    return session.client(service, endpoint_url=endpoint, config=CLIENT_CONFIG)  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def batch(runtime: LocalRuntime) -> Any:
    return _client("batch", runtime.endpoint)


@pytest.fixture(scope="module")
def logs(runtime: LocalRuntime) -> Any:
    return _client("logs", runtime.endpoint)


class PageErrors(list[str]):
    """JavaScript errors and dialogs (an alert() from injected markup would land here)."""


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    errors = PageErrors()
    pg.on("pageerror", lambda e: errors.append(f"JavaScript error: {e}"))

    def on_dialog(dialog: Any) -> None:
        errors.append(f"a {dialog.type}() ran: {dialog.message}")
        dialog.dismiss()

    pg.on("dialog", on_dialog)
    pg.errors = errors
    try:
        yield pg
    finally:
        context.close()
    assert not errors, errors


@pytest.fixture
def shot() -> Any:
    """shot(page, name): a screenshot into $CONSOLE_SCREENSHOTS/<name>.png, when that is set (docs/console)."""
    target = os.environ.get(SCREENSHOTS_ENV)

    def take(pg: Any, name: str) -> None:
        if target:
            Path(target).mkdir(parents=True, exist_ok=True)
            pg.screenshot(path=str(Path(target) / f"{name}.png"), full_page=True)

    return take
