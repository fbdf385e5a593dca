"""The web console, clicked through in chromium against a LocalRuntime running real processes: dashboard -> a
queue's FAILED count -> the job -> its log; a running job's log lines appearing live; cancelling jobs picked in the
list; submitting from the form (and the API's own error shown); hostile strings shown as text, never markup."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from chalicelib.domain.jobs import CANCEL_PENDING
from tests.e2e.conftest import describe, register, setup_queue, sh, submit, unique, wait_status, wait_terminal

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips (or fails in CI)
    expect = None

HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def queue(batch: Any) -> str:
    name, _ = setup_queue(batch, max_vcpus=4, name=unique("console"))
    return name


def test_dashboard_to_a_failed_job_and_its_log(page: Any, runtime: Any, batch: Any, queue: str, shot: Any) -> None:
    jd = register(batch, unique("fails"), sh("echo about to fail; echo boom >&2; exit 3"))
    job_id = submit(batch, queue, jd, "nightly-report")
    assert wait_terminal(batch, [job_id])[job_id]["status"] == "FAILED"

    page.goto(f"{runtime.endpoint}/console/")
    failed = page.get_by_role("link", name=re.compile(rf"^\d+\+? FAILED jobs in {re.escape(queue)}$"))
    expect(failed).to_have_text(re.compile(r"^[1-9]"))
    shot(page, "dashboard")
    failed.click()
    expect(page).to_have_url(re.compile(r"/console/jobs\?queue=.*status=FAILED"))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"FAILED jobs in {queue}")
    page.get_by_role("link", name="nightly-report").click()

    expect(page).to_have_url(f"{runtime.endpoint}/console/jobs/{job_id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("nightly-report")
    expect(page.get_by_role("heading", level=1)).to_contain_text("FAILED")
    log = page.get_by_label("Log lines")
    expect(log).to_contain_text("about to fail")
    expect(log).to_contain_text("boom")
    expect(page.get_by_role("table", name=re.compile("Attempts"))).to_contain_text("3")  # the exit code
    # its finished attempt's resource-seconds (batchplaneCost; nothing is priced locally)
    expect(page.get_by_text(re.compile(r"^\d+\.\d s vCPU · \d+\.\d s GiB$"))).to_be_visible()
    page.reload()  # a deep link survives a reload
    expect(page.get_by_role("heading", level=1)).to_contain_text("nightly-report")
    expect(page.get_by_role("button", name="Cancel")).to_be_disabled()


def test_log_lines_appear_while_the_job_runs(
    page: Any, runtime: Any, batch: Any, queue: str, tmp_path: Path, shot: Any
) -> None:
    gate = tmp_path / "go-on"
    script = f"echo first line; while [ ! -e {gate} ]; do sleep 0.1; done; echo second line"
    upstream = submit(batch, queue, register(batch, unique("prep"), sh("echo prepared")), "prepare")
    jd = register(batch, unique("waits"), sh(script), parameters={"input": "s3://bucket/in.csv"})
    job_id = submit(batch, queue, jd, "train", dependsOn=[{"jobId": upstream}])
    after = submit(batch, queue, jd, "publish", dependsOn=[{"jobId": job_id}])

    page.goto(f"{runtime.endpoint}/console/jobs/{job_id}")
    log = page.get_by_label("Log lines")
    expect(log).to_contain_text("first line")
    assert wait_status(batch, [job_id], "RUNNING")[job_id]["status"] == "RUNNING"
    expect(page.get_by_role("heading", level=1)).to_contain_text("RUNNING")
    expect(log).not_to_contain_text("second line")
    graph = page.get_by_role("group", name="Dependency graph")
    expect(graph.get_by_role("link", name=re.compile("^prepare, SUCCEEDED"))).to_be_visible()
    expect(graph.get_by_role("link", name=re.compile("^publish, PENDING"))).to_be_visible()
    shot(page, "job-running")

    gate.touch()
    expect(log).to_contain_text("second line")  # followed live, no reload
    expect(page.get_by_role("heading", level=1)).to_contain_text("SUCCEEDED")
    graph.get_by_role("link", name=re.compile("^publish,")).click()
    expect(page).to_have_url(f"{runtime.endpoint}/console/jobs/{after}")
    gate.unlink()  # publish runs the same script: let it finish
    gate.touch()


def test_cancel_jobs_selected_in_the_list(page: Any, runtime: Any, batch: Any, queue: str, tmp_path: Path) -> None:
    gate = tmp_path / "go"
    blocker = submit(batch, queue, register(batch, unique("block"), sh(f"while [ ! -e {gate} ]; do sleep 0.1; done")))
    jd = register(batch, unique("after"), sh("echo after the blocker"))
    first = submit(batch, queue, jd, "cancel-me-1", dependsOn=[{"jobId": blocker}])
    second = submit(batch, queue, jd, "cancel-me-2", dependsOn=[{"jobId": blocker}])
    keep = submit(batch, queue, jd, "keep-me", dependsOn=[{"jobId": blocker}])
    wait_status(batch, [first, second, keep], "PENDING")

    page.goto(f"{runtime.endpoint}/console/jobs?queue={queue}&name=cancel-me")
    page.get_by_role("checkbox", name="Select cancel-me-1").check()
    page.get_by_role("checkbox", name="Select cancel-me-2").check()
    page.get_by_role("button", name="Cancel selected").click()
    page.keyboard.press("Escape")  # backing out does nothing
    expect(page.get_by_role("dialog")).to_have_count(0)
    page.get_by_role("button", name="Cancel selected").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Cancel 2 jobs?")
    dialog.get_by_label("Reason").fill("not needed any more")
    dialog.get_by_role("button", name="Cancel", exact=True).click()
    expect(page.get_by_text("Cancel requested for 2 jobs.")).to_be_visible()

    # THEN both wait for their dependency, as on AWS ("A PENDING job is canceled after all dependency jobs are
    # completed"), and the list says the cancel is pending
    pending = CANCEL_PENDING + "not needed any more"
    for name in ("cancel-me-1", "cancel-me-2"):
        expect(page.get_by_role("row").filter(has_text=name)).to_contain_text(pending)
    jobs = describe(batch, [first, second, keep])
    assert {(jobs[j]["status"], jobs[j]["statusReason"]) for j in (first, second)} == {("PENDING", pending)}
    assert jobs[keep]["status"] == "PENDING"

    # WHEN the dependency completes THEN the two fail with the cancel's reason, and the job not selected runs
    gate.touch()
    done = wait_terminal(batch, [blocker, first, second, keep])
    assert done[blocker]["status"] == "SUCCEEDED"
    assert {(done[j]["status"], done[j]["statusReason"]) for j in (first, second)} == {
        ("FAILED", "not needed any more")
    }
    assert done[keep]["status"] == "SUCCEEDED"
    for name in ("cancel-me-1", "cancel-me-2"):
        expect(page.get_by_role("row").filter(has_text=name)).to_contain_text("FAILED")


def test_submit_from_the_form(page: Any, runtime: Any, batch: Any, queue: str, shot: Any) -> None:
    name = unique("greet")
    register(batch, name, ["echo", "hello", "Ref::who"], parameters={"who": "world"})

    page.goto(f"{runtime.endpoint}/console/job-definitions/{name}")
    page.get_by_role("link", name="Submit a job from this revision").click()
    expect(page).to_have_url(re.compile(r"/console/submit\?definition="))
    page.get_by_label("Job name").fill("bad name!")
    page.get_by_label("Job queue").select_option(queue)
    page.get_by_role("button", name="Submit job").click()
    alert = page.locator("main").get_by_role("alert")
    expect(alert).to_contain_text("ClientException: jobName")  # the API's own message

    page.get_by_label("Job name").fill("greeting")
    expect(page.get_by_label("parameter 1 value")).to_have_value("world")  # the definition's default
    page.get_by_label("parameter 1 value").fill("console")
    page.get_by_role("button", name="Add variable").click()
    page.get_by_label("variable 1 name").fill("MOOD")
    page.get_by_label("variable 1 value").fill("cheerful")
    shot(page, "submit")
    page.get_by_role("button", name="Submit job").click()

    expect(page).to_have_url(re.compile(r"/console/jobs/[0-9a-f-]{36}$"))
    job_id = page.url.rsplit("/", 1)[1]
    job = wait_terminal(batch, [job_id])[job_id]
    assert job["jobName"] == "greeting" and job["parameters"] == {"who": "console"}
    assert {"name": "MOOD", "value": "cheerful"} in job["container"]["environment"]
    expect(page.get_by_label("Log lines")).to_contain_text("hello console")


def test_hostile_strings_are_text(page: Any, runtime: Any, batch: Any, queue: str) -> None:
    # Job names are validated by the API (letters, digits, - and _), so the markup goes where any text is allowed:
    # parameters, environment values, log lines and status reasons.
    jd = register(batch, unique("evil"), sh(f"echo '{HOSTILE}'"), parameters={"payload": HOSTILE})
    ran = submit(batch, queue, jd, "evil-ran", containerOverrides={"environment": [{"name": "X", "value": HOSTILE}]})
    wait_terminal(batch, [ran])
    gate = submit(batch, queue, jd, "evil-gate", dependsOn=[{"jobId": ran}])
    pending = submit(batch, queue, jd, "evil-cancelled", dependsOn=[{"jobId": gate}])
    batch.terminate_job(jobId=pending, reason=HOSTILE)
    wait_terminal(batch, [pending, gate])

    page.goto(f"{runtime.endpoint}/console/jobs/{ran}")
    expect(page.get_by_label("Log lines")).to_have_text(re.compile(re.escape(HOSTILE)))
    expect(page.get_by_role("table", name="Parameters")).to_contain_text(HOSTILE)
    expect(page.get_by_role("table", name="Environment")).to_contain_text(HOSTILE)
    page.goto(f"{runtime.endpoint}/console/jobs?queue={queue}&status=FAILED")
    expect(page.get_by_role("table").first).to_contain_text(HOSTILE)
    page.goto(f"{runtime.endpoint}/console/jobs/{pending}")
    expect(page.get_by_text(HOSTILE).first).to_be_visible()
    assert page.locator("img").count() == 0  # the text never became an element (and no alert() ran: `page`)


def test_every_page_draws(page: Any, runtime: Any, batch: Any, queue: str, shot: Any) -> None:
    for path, heading, name in [
        ("/console/queues", "Job queues", "queues"),
        (f"/console/queues/{queue}", f"Queue {queue}", "queue"),
        ("/console/compute-environments", "Compute environments", "compute-environments"),
        ("/console/job-definitions", "Job definitions", "job-definitions"),
        ("/console/scheduling-policies", "Scheduling policies", "scheduling-policies"),
        ("/console/no-such-page", "Not found", None),
    ]:
        page.goto(f"{runtime.endpoint}{path}")
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        expect(page.get_by_text("Loading…")).to_have_count(0)
        if name:
            shot(page, name)


def test_keyboard_only(page: Any, runtime: Any, batch: Any, queue: str) -> None:
    """Tab reaches every control in order; Enter follows a link; the new page's content takes the focus."""
    page.goto(f"{runtime.endpoint}/console/")
    target = f"FAILED jobs in {queue}"
    expect(page.get_by_role("link", name=re.compile(re.escape(target)))).to_be_visible()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    for _ in range(80):
        page.keyboard.press("Tab")
        label = page.evaluate("document.activeElement.getAttribute('aria-label') || ''")
        if label.endswith(target):
            break
    else:
        pytest.fail(f"Tab never reached the {target} count")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/console/jobs\?queue=.*status=FAILED"))
    expect(page.locator("main")).to_be_focused()
