"""The Docker launcher's recovery after a restart (the protocol of ADR 0016; compute/docker.py `DockerLauncher`
delegates `recover` and `reap` here).

- `recover`: was an attempt ever started? A container found is watched again (re-attached to while it runs,
  settled with its real exit code and OOM flag once it has ended, started when it was only created); a journalled
  container the engine lost fails as a lost host; one never started is launched again under the same key (its
  marker cleared), unless a stop was asked before its start (kept in its marker: docs/adr/0033): as live, it then
  never runs and ends with the stop's reason. An attempt the process executor of the same state started (before a
  switch of executors) is recovered as that executor would (compute/local.py).
- `reap`: removes this state's ended containers that nothing watches or will ask about any more.

Both go through the launcher's interface for the attempts in progress (`hold`, `in_progress`, `watch`,
`report_end`, `relaunchable`, `let_go`, `settled`), never its internals.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from docker.errors import DockerException, NotFound

from chalicelib.compute import docker_attempt
from chalicelib.compute.docker_attempt import Attempt
from chalicelib.compute.docker_state import (
    LABEL_ATTEMPT,
    LABEL_JOB,
    LABEL_STATE,
    LABEL_STREAM,
    LOST_HOST,
    last_logged,
    stopped_after,
)
from chalicelib.domain.lifecycle import TaskStopped

if TYPE_CHECKING:
    from chalicelib.compute.docker import DockerLauncher


def recover(launcher: DockerLauncher, job_id: str, attempt: int) -> bool:
    """After a restart (or for a claim a sweep finds old): was this attempt ever started? A container found is
    watched again and its real end reported; a journalled container the engine lost fails as a lost host."""
    key = f"{job_id}#{attempt}"
    if not launcher.hold(key):
        return True  # in progress here: this server launched or recovered it and watches it
    lost = TaskStopped(attempt, None, status_reason=LOST_HOST)  # (settled once recorded: `report_end`)
    try:
        grouped = launcher.groups.recover(job_id, attempt)  # a multi-container attempt (docs/adr/0028)
        if grouped is not None:
            if not grouped:
                launcher.relaunchable(key)  # prepared, never started: the sweep launches it now, same key
            return grouped
        info = launcher.client.inspect_container(launcher.name(job_id, attempt))
    except NotFound:
        if launcher.processes is not None and launcher.processes.work_dir(job_id, attempt).is_dir():
            # started by the process executor before a switch of executors: recovered as it would recover it
            launcher.processes.recover(job_id, attempt)  # (kills it; an exit 0 it recorded is reported as such)
            launcher.report_end(job_id, lost)
            return True
        if not launcher.journal.was_started(key):
            # never created, or created but never started: it never ran
            stop = launcher.journal.stop_of(key)
            if stop is not None:  # stopped first: as live, it never runs (nor is it launched again)
                launcher.report_end(job_id, docker_attempt.stopped_before_start(attempt, stop[1]))
                return True
            launcher.relaunchable(key)  # the sweep launches it now, same key
            return False
        # It may have run: lost. (Or its end is recorded, its container removed: by this server since a sweep
        # read the job, or by an earlier run. Then the report is stale: ignored by the lifecycle, and what a
        # multi-node group recovering its nodes needs.)
        launcher.report_end(job_id, lost)
        return True
    except Exception:  # the engine does not answer: the next sweep asks again
        launcher.let_go(key)
        raise
    labels = info["Config"].get("Labels") or {}
    grace = float(info["Config"].get("StopTimeout") or launcher.grace_seconds)
    a = Attempt(job_id, attempt, labels.get(LABEL_STREAM, ""), grace)
    a.container = info["Id"]
    a.volumes = [m["Name"] for m in info.get("Mounts") or [] if m.get("Type") == "volume" and m.get("Name")]
    a.last_ms = last_logged(launcher.logs, a.log_stream)
    a.since = a.last_ms / 1000 if a.last_ms else None
    # A stop in flight when the server died (it ended the container, or it still runs): its end is the stop's, as
    # the live watcher reports it; one still running is stopped again (the engine finishes the first stop too). A
    # container created, never started, with a stop kept (asked before its start) is removed unstarted (`_start`).
    a.stop_reason = stopped_after(info, launcher.journal.stop_of(key))
    launcher.watch(a, created=info["State"]["Status"] == "created")
    if a.stop_reason is not None and info["State"]["Status"] != "created":
        docker_attempt.stop(launcher.client, a)
    return True


def reap(launcher: DockerLauncher) -> int:
    """Remove this state's containers that ended and that nothing watches or will ask about (after the sweep at
    start has recovered every active attempt): an end recorded just before a crash, before its removal."""
    label = f"{LABEL_STATE}={launcher.state_id}"
    ended = launcher.client.containers(all=True, filters={"label": label, "status": "exited"})
    # Read after the list, not before: a launch marks its key before it creates its container, so every
    # container listed that a launch made is known by now (read first, a job launched since, which ran and
    # exited before the list came back, would be removed under its watcher, and fail as a lost host).
    # A key leaves the set only once its attempt is done with (`settled`: its end recorded, then its container
    # removed), so a listed container whose key is gone by now was removed already, or its removal failed (then
    # removing it is reap's job). A launch its marker refuses creates nothing.
    known = launcher.in_progress()
    # The network holders of multi-container tasks ended while the server was down (they never exit by themselves)
    ended += launcher.client.containers(all=True, filters={"label": [label, "batchplane.container=-net"]})
    removed = 0
    for c in ended:
        labels = c.get("Labels") or {}
        if f"{labels.get(LABEL_JOB)}#{labels.get(LABEL_ATTEMPT)}" in known:
            continue
        with contextlib.suppress(DockerException):
            launcher.client.remove_container(c["Id"], v=True, force=True)
            removed += 1
    return removed
