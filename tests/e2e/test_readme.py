"""The README's first example, run as a new user would run it: the "Use it from boto3" program, unchanged but for
the endpoint, against `batchplane up` (a subprocess, the process executor). The README must stay true."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.e2e.conftest import CliServer

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_program(section: str) -> str:
    """The first ```python block under the heading `section`."""
    text = README.read_text()
    start = text.index(f"\n## {section}\n")
    match = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert match is not None, f"no python block under {section!r}"
    return match.group(1)


def test_the_readme_boto3_example_runs_and_prints_the_jobs_log(
    cli_server: Callable[..., CliServer], tmp_path: Path
) -> None:
    server = cli_server(tmp_path / "state")
    program = readme_program("Use it from boto3")
    assert "http://127.0.0.1:8000" in program
    script = tmp_path / "example.py"
    script.write_text(program.replace("http://127.0.0.1:8000", server.endpoint))

    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "SUCCEEDED"
    assert "'message': 'hello world'" in lines[1]
