"""`batchplane dag` names batchplane's conditional dependencies (AFTER_ANY, AFTER_NOT_OK) on their edges: in the
tree, the SVG and the DOT file (docs/adr/0029)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import Client, register, setup_queue, submit
from tests.e2e.test_cli import Cli, arrows_in, cli, texts_of, wide  # noqa: F401 (fixtures)

pytestmark = pytest.mark.e2e


def test_dag_shows_the_condition_of_each_conditional_dependency(batch: Client, cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    # GIVEN a job with a plain, an AFTER_ANY and an AFTER_NOT_OK dependent, all waiting
    queue, ce = setup_queue(batch)
    batch.update_compute_environment(computeEnvironment=ce, state="DISABLED")
    jd = register(batch, "work", ["true"])
    train = submit(batch, queue, jd, "train")
    submit(batch, queue, jd, "publish", dependsOn=[{"jobId": train}])
    submit(batch, queue, jd, "cleanup", dependsOn=[{"jobId": train, "type": "AFTER_ANY"}])
    alert = submit(batch, queue, jd, "alert", dependsOn=[{"jobId": train, "type": "AFTER_NOT_OK"}])
    svg, dot = tmp_path / "dag.svg", tmp_path / "dag.dot"

    # WHEN the graph is drawn from the dependency, and from a conditional dependent
    code, out, _ = cli("dag", train, "--svg", str(svg), "--dot", str(dot))
    up_code, up, _ = cli("dag", alert, "--no-svg")

    # THEN each conditional edge says its condition, in the tree, the picture and the DOT file; a plain one does not
    assert code == up_code == 0
    lines = {line.split(" (")[0].strip(" │├└─"): line for line in out.splitlines() if " (" in line}
    assert "[AFTER_ANY: after any end]" in lines["cleanup"]
    assert "[AFTER_NOT_OK: only if it failed]" in lines["alert"]
    assert "[" not in lines["publish"]
    assert "[AFTER_NOT_OK: only if it failed]" in next(line for line in up.splitlines() if "train (" in line)
    assert {"AFTER_ANY", "AFTER_NOT_OK"} <= texts_of(svg) and arrows_in(svg) == 3
    assert f'"{train}" -> "{alert}" [label="AFTER_NOT_OK", style=dashed];' in dot.read_text()
