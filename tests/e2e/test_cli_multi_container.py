"""The CLI on multi-container jobs: `describe` lists the containers, `logs --container` reads one container's stream,
`watch` shows the containers' exits (docs/adr/0028)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.runtime.local import LocalRuntime
from tests.e2e.conftest import Client, setup_queue, submit, wait_terminal
from tests.e2e.test_cli import Cli
from tests.e2e.test_multi_container import register_task, sidecar_demo

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")


@pytest.fixture
def cli(runtime: LocalRuntime, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(runtime.endpoint, capsys)


def test_describe_logs_watch_and_dag_show_the_containers(batch: Client, cli: Cli, tmp_path: Path) -> None:
    # GIVEN a finished job of two containers, the sidecar failing (non-essential)
    jd = register_task(batch, *sidecar_demo(), prefix="clim")
    queue, _ = setup_queue(batch)
    job_id = submit(batch, queue, jd)
    assert wait_terminal(batch, [job_id])[job_id]["status"] == "SUCCEEDED"
    # WHEN / THEN describe lists both containers with their exits and dependencies
    code, out, _ = cli("describe", job_id)
    assert code == 0
    rows = out[out.index("Containers") :].splitlines()
    side = next(r for r in rows if "│ side" in r)
    main = next(r for r in rows if "│ main" in r)
    assert "│ no " in side and "│ 5 " in side
    assert "side COMPLETE" in main and "│ 0 " in main
    assert "main=0" in out[out.index("Attempts") :]
    # ... logs reads the first essential container by default, another with --container
    assert cli("logs", job_id)[:2] == (0, "main-out\n")
    assert cli("logs", job_id, "--container", "side")[:2] == (0, "side-out\n")
    code, _, err = cli("logs", job_id, "--container", "nope")
    assert code == 1 and "no container 'nope' (it has side, main)" in err
    # ... and watch shows the containers' exits
    code, out, _ = cli("watch", job_id, "--plain", "--once")
    assert code == 0 and "[side=5 main=0]" in out
    # ... and dag shows the containers under the job, with their roles, order and exits
    code, out, _ = cli("dag", job_id, "--svg", str(tmp_path / "dag.svg"))
    assert code == 0
    lines = out.splitlines()
    side = next(line for line in lines if "container side" in line)
    main = next(line for line in lines if "container main" in line)
    assert "non-essential" in side and "exit 5" in side
    assert " essential" in main and "after side COMPLETE" in main and "exit 0" in main
    assert "container main essential" in (tmp_path / "dag.svg").read_text()  # in the node's tooltip
