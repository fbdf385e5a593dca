"""The process launcher's recovery of a single-container attempt after a restart (compute/local.py `recover`, which
first asks compute/local_group.py about a multi-container one): its process found and killed, its end settled from
the journal (compute/local_journal.py) as the live watcher would have reported it. An array child that ran on a
runner (compute/local_runs.py) is recovered the same way: the runner journals as the supervisor does."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from chalicelib.compute.local_processes import (
    PID_FILE,
    RECOVER_WAIT_S,
    docker_created,
    processes_of,
    recorded_exit,
    wait_gone,
)
from chalicelib.compute.port import local_container_instance_arn
from chalicelib.domain.jobs import TIMEOUT_REASON
from chalicelib.domain.lifecycle import TaskStarted, TaskStopped
from chalicelib.domain.nodes import split_node_id
from chalicelib.domain.reasons import host_terminated_reason
from chalicelib.domain.records import replace

if TYPE_CHECKING:
    from chalicelib.compute.local import LocalLauncher


def recover_process(launcher: LocalLauncher, job_id: str, attempt: int) -> bool:
    """`LocalLauncher.recover` of a single-container attempt (its docstring says what is decided)."""
    key, workdir = f"{job_id}#{attempt}", launcher.work_dir(job_id, attempt)
    killed = False  # a process of it was still there (killed here), or its pid was recorded
    if _exit_of(launcher, key, workdir) is None:
        pid = launcher.journal.pids.get(key)
        if pid is None and key in launcher.journal.queued:
            reached = _never_reached(launcher, job_id, attempt, workdir)
            if reached is not None:
                return reached
        if pid is None:  # an earlier version's pidfile
            with contextlib.suppress(OSError, ValueError):
                pid = int((workdir / PID_FILE).read_text())
        if pid is not None:
            pids = [pid]
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)  # its own session: pid == pgid (no group, nothing killed)
        elif workdir.is_dir():
            pids = processes_of(job_id, attempt)  # the whole group carries the variables
            for found in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(found, signal.SIGKILL)
        else:
            # started in a container by the Docker executor before a switch of executors (compute/docker.py
            # journals each container it creates): started, so never launched again under this number
            return docker_created(launcher.docker_journal, key)
        killed = bool(pids)
        wait_gone(pids, RECOVER_WAIT_S)  # then the exit status, if any, is complete: it was written before
    code = _exit_of(launcher, key, workdir)
    stop = _stop_before_exit(launcher, key, code, killed)
    if stop is not None:  # its end is the stop's, as live: the exit it recorded after the stop, or our SIGKILL's
        code = 128 + signal.SIGKILL if code is None else code
        _report_end(launcher, job_id, TaskStopped(attempt, code, status_reason=stop, timed_out=stop == TIMEOUT_REASON))
    elif code == 0:
        _report_end(launcher, job_id, TaskStopped(attempt, 0))
    elif launcher.lost_host is not None and split_node_id(job_id) is None:  # (a node's: its job's, compute/nodes.py)
        lost = TaskStopped(attempt, None, status_reason=host_terminated_reason(launcher.lost_host))
        _report_end(launcher, job_id, lost, started=False)  # (no start time: RUNNING at the crash, it had its start)
    return True


def _never_reached(launcher: LocalLauncher, job_id: str, attempt: int, workdir: Path) -> bool | None:
    """An array child handed to a runner that never reached it (a "queued" line, no pid: compute/local_journal.py
    `record_handed`): its command never ran. Stopped meanwhile, it ends with the stop (as `stopped_before_start`
    live: True); else its empty work dir goes and it is launched again under the same number (False). None when
    its work dir is not empty after all (something ran in it): it is recovered as any attempt without a pid."""
    key = f"{job_id}#{attempt}"
    if launcher.holds(key):
        # Queued on a live runner of this server (the periodic sweep asks about a child STARTING for long behind a
        # slow one): nothing to recover; the sweep's launch of it is a no-op (LocalLauncher.launch: launched once).
        return False
    stop = launcher.journal.stop_of(key)
    if stop is not None:
        stopped = TaskStopped(attempt, None, status_reason=stop, timed_out=stop == TIMEOUT_REASON)
        _report_end(launcher, job_id, stopped, started=False)
        return True
    try:
        workdir.rmdir()
    except FileNotFoundError:
        pass
    except OSError:
        return None
    return False


def _report_end(launcher: LocalLauncher, job_id: str, stopped: TaskStopped, *, started: bool = True) -> None:
    """A recovered attempt's end, as the live watcher reports it: with its task's ARNs, after its start (a no-op
    once applied; the start a crash lost gives the attempt its task and start time) unless not `started` (a lost
    host: the ARNs only). An earlier version's attempt (no ARN journaled): its end only. A multi-node job's node:
    no start (compute/nodes.py starts the job)."""
    arn = launcher.journal.arns.get(f"{job_id}#{stopped.attempt}")
    if arn is not None:
        stopped = replace(stopped, task_arn=arn, container_instance_arn=local_container_instance_arn(arn))
        if started and split_node_id(job_id) is None:
            launcher.on_event(
                job_id, TaskStarted(stopped.attempt, arn, container_instance_arn=stopped.container_instance_arn)
            )
    launcher.on_event(job_id, stopped)


def _stop_before_exit(launcher: LocalLauncher, key: str, code: int | None, killed: bool) -> str | None:
    """The reason of a stop journaled before the attempt's command ended (it ended after the stop, or it was
    still running, or killed unrecorded by a shutdown, and killed now: as the grace period's SIGKILL would have);
    None without a stop, when its exit came before the stop (that exit decides, as live), or when no process
    of it ever ran."""
    stop = launcher.journal.stop_of(key)
    if stop is None:
        return None
    if code is None:
        return stop if killed else None
    return None if launcher.journal.exited_before_stop(key, key) else stop


def _exit_of(launcher: LocalLauncher, key: str, workdir: Path) -> int | None:
    """The exit status the attempt's supervisor recorded; None if it did not (running, killed, never started)."""
    launcher.journal.refresh()
    code = launcher.journal.exits.get(key)
    return code if code is not None else recorded_exit(workdir)
