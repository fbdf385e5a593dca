"""A multi-node attempt after a restart (compute/nodes.py `NodeLauncher.recover`; docs/adr/0027), found through
`nodes.journal`: its node count, main node, task ARN and main node's log stream.

- **Processes** lost their output pipes with the server: the process launcher's recovery kills every node's process
  (and reports a node's end only when one was recorded: its command exited 0, or a stop was in flight). The attempt
  ends as its main node did when that end was recorded (as live: the others stopped with it), else as a lost host
  (`Host EC2 ...`), reported here with the task's ARNs, as its live events carried them (the caller's own lost-host
  report, with none, then changes nothing).
- **Containers** outlive the server (docs/adr/0016): when every node's container is found, the gang is re-assembled:
  each is re-attached (or settled with its real end, if it ended meanwhile), the job runs on and ends as its main
  node does, as if the server had never gone; nothing runs twice. When none is found, nothing of the attempt ran:
  it is launched again under the same key (the caller's launch). When the main node's container is found but some
  other nodes have none (the crash cut the gang's launch short: nodes are launched after the main node runs), those
  never ran: they are launched now, under the same attempt, with the spec the caller's launch gives
  (`NodeLauncher.complete`), as live; nothing runs twice. Any other node missing (one without a container while the
  main node has none) fails the attempt ("the server restarted"), its nodes stopped.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from chalicelib.compute.node_group import RESTARTED, NodeGroup, Task
from chalicelib.compute.node_network import Loopback
from chalicelib.compute.port import TaskSpec
from chalicelib.domain import nodes
from chalicelib.domain.lifecycle import TaskStopped
from chalicelib.domain.reasons import host_terminated_reason

if TYPE_CHECKING:
    from chalicelib.compute.nodes import NodeLauncher


def recover(launcher: NodeLauncher, job_id: str, attempt: int) -> bool:
    """Was the attempt ever started (False: the caller launches it now, under the same key)?"""
    key = f"{job_id}#{attempt}"
    held = launcher.group(key)
    if held is not None:  # watched here; one awaiting its nodes' spec is given it by the caller's launch
        return held.adopted
    shape = launcher.journalled(key)
    if shape is None:
        return bool(launcher.inner.recover(job_id, attempt))
    num, main, task = shape
    spec = TaskSpec(job_id, attempt, "", [], {}, "", 0, 0, "", main_node=main)
    spec = replace(spec, nodes=tuple(replace(spec, job_id=nodes.node_id(job_id, i)) for i in range(num)))
    if isinstance(launcher.network, Loopback):
        return _processes(launcher, NodeGroup(spec, recovered=True, journalled=task, collected={}))
    # Every node counted as launched until found missing: a node's end reported meanwhile waits for them; and the
    # group does not end before its recovery is over (`adopted`), so that none can end it while nodes may be missing.
    network = launcher.network.name(spec)
    group = NodeGroup(spec, network, set(range(num)), recovered=True, journalled=task, adopted=False)
    if not launcher.hold(group):
        return True
    found = [i for i in range(num) if launcher.inner.recover(nodes.node_id(job_id, i), attempt)]
    if not found:  # nothing of it ever ran: launched again under the same key
        launcher.let_go(key)
        return False
    missing = [i for i in range(num) if i not in found]
    with launcher._lock:
        group.launched.difference_update(missing)
        if missing and main in found:  # never created (nor run): launched once the caller's launch gives their spec
            group.awaiting = set(missing)
            return False
        group.adopted = True
    if missing:
        with launcher._lock:
            group.failure, group.ending = group.failure or RESTARTED, True
            for i in missing:
                group.ended.setdefault(i, TaskStopped(attempt, None, status_reason=RESTARTED))
        launcher.stop_nodes(group, RESTARTED, include_main=True)
    launcher.maybe_finish(group)
    return True


def _processes(launcher: NodeLauncher, group: NodeGroup) -> bool:
    """The process executor: the nodes' processes are killed (the process launcher's recovery), their ends recorded
    meanwhile collected; the attempt ends as its main node's recorded end, or as a lost host, with its task."""
    spec = group.spec
    if not launcher.hold(group):
        return True
    try:
        found = [i for i in range(len(spec.nodes)) if launcher.inner.recover(spec.nodes[i].job_id, spec.attempt)]
    finally:
        launcher.let_go(spec.key)
    if not found:  # nothing of it ever ran: launched again under the same key
        return False
    ends = group.collected or {}
    main = ends.get(group.main)
    lost_host: str | None = getattr(launcher.inner, "lost_host", None)
    if main is None and lost_host is None:
        return True  # the caller decides (its report carries no task)
    if main is None:
        assert lost_host is not None
        end = TaskStopped(spec.attempt, None, status_reason=host_terminated_reason(lost_host))
    else:  # as live: the attempt ends as its main node did, the others stopped with it
        end = replace(main, nodes={str(i): _end_of(ends.get(i), i != group.main) for i in range(len(spec.nodes))})
    task = Task(task_arn=None, container_instance_arn=None, log_stream=None)  # (never a node's: the job's, or none)
    task.update(group.task())
    launcher.sink(spec.job_id, replace(end, **task))
    return True


def _end_of(e: TaskStopped | None, with_main: bool) -> dict[str, object]:
    """A node's end in the attempt's (`TaskStopped.nodes`), as `NodeLauncher.maybe_finish` writes it."""
    fields = {
        "exitCode": e.exit_code if e else None,
        "reason": e.reason if e else None,
        "statusReason": (e.status_reason if e else None) or nodes.STOPPED_WITH_MAIN,
        "withMain": with_main,
    }
    return {k: v for k, v in fields.items() if v is not None}
