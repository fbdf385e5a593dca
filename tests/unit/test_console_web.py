"""The console's files: how /console/ paths resolve, that pip ships every file, and that the app never turns data
into markup (a cheap guard next to the browser tests' hostile strings)."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest

from chalicelib import console_web

ROOT = Path(__file__).resolve().parents[2]
APP_JS = [p for p in (console_web.STATIC / "assets" / "js").rglob("*.js")]


def test_every_page_path_is_the_app_and_assets_are_files() -> None:
    index = (console_web.STATIC / "index.html").read_bytes()
    for path in ("/console/", "/console/jobs/abc-123:4", "/console/queues/q?x=1", "/console/anything/else"):
        status, kind, body, _ = console_web.resolve(path)
        assert (status, kind, body) == (200, "text/html; charset=utf-8", index), path
    status, kind, body, _ = console_web.resolve("/console/assets/js/app.js")
    assert status == 200 and kind.startswith("text/javascript") and b"ROUTES" in body
    status, kind, _, _ = console_web.resolve("/console/assets/vendor/aws4fetch.esm.mjs")
    assert status == 200 and kind.startswith("text/javascript")  # a module script must not be octet-stream
    status, _, _, headers = console_web.resolve("/console")
    assert (status, headers) == (308, {"Location": "/console/"})


@pytest.mark.parametrize(
    "path",
    [
        "/console/assets/missing.js",
        "/console/assets/../index.html",
        "/console/assets/%2e%2e/%2e%2e/__init__.py",
        "/console/assets/js/../../../__init__.py",
    ],
)
def test_no_asset_outside_the_assets_directory(path: str) -> None:
    assert console_web.resolve(path)[0] == 404


def test_handles_only_console_paths() -> None:
    assert console_web.handles("/console") and console_web.handles("/console/jobs?x=1")
    assert not console_web.handles("/consoles") and not console_web.handles("/v1/listjobs")


def test_package_data_ships_every_static_file() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    globs = patterns["chalicelib.console_web"]
    base = console_web.STATIC.parent
    for file in console_web.STATIC.rglob("*"):
        if file.is_file():
            rel = file.relative_to(base).as_posix()
            assert any(fnmatch.fnmatch(rel, g) and rel.count("/") == g.count("/") for g in globs), rel


def test_the_app_builds_the_dom_from_text_only() -> None:
    assert APP_JS
    for file in APP_JS:
        source = file.read_text()
        found = re.findall(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function", source)
        assert not found, f"{file.name}: {found}"


def test_vendored_libraries_carry_their_licences_and_versions() -> None:
    vendor = console_web.STATIC / "assets" / "vendor"
    versions = (vendor / "VERSIONS.txt").read_text()
    script = (ROOT / "scripts" / "vendor-console.sh").read_text()
    for name, var in (("aws4fetch", "AWS4FETCH"), ("@dagrejs/dagre", "DAGRE")):
        pinned = re.search(rf"^{var}=(\S+)$", script, re.M)
        assert pinned and f"{name} {pinned.group(1)} (npm)" in versions
    assert (vendor / "aws4fetch.LICENSE.txt").is_file() and (vendor / "dagre.LICENSE.txt").is_file()
