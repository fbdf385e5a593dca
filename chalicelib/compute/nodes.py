"""Multi-node parallel jobs on a local launcher (docs/adr/0027): one attempt, one task per node.

`NodeLauncher` wraps the process or Docker launcher. A job's attempt is launched as its main node first; once the
main node runs, its address is known and the other nodes are launched with it in
`AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS` (AWS Batch: "the main node ... is launched first. After the main node
is up, the child nodes are launched"). The nodes report to this wrapper (their job ids are `<jobId>#<index>`), which
reports the job's own events: started when the main node started; a node that ended on its own as `NodeStopped`;
stopped once the main node ended and the others were stopped ("The job is finished only if the main node exits.
All child nodes are then stopped."). A node that fails to start fails the attempt: all nodes run, or none.

Addresses: with the process executor every node is a process on 127.0.0.1; with Docker the nodes are containers on
a bridge network of their own per attempt (`batchplane-<state>-<jobId>-<attempt>-nodes`, labelled with the state),
removed when the attempt ends, and by `reap` when a crash left it behind.

After a restart (`recover`: compute/nodes_recovery.py, through `nodes.journal`, compacted at each start to the active
jobs' lines, and while the server runs to those of the attempts whose end is not recorded yet, docs/adr/0036): node
containers outlived the server and are re-assembled into their attempt, which goes on and ends with its main node
(nodes a crash kept from being created are launched then: `complete`); node processes did not, and the attempt is a
lost host. Either way its events carry the task its live ones did (the journal keeps its ARN).
A node container is removed once its end is recorded (its NodeStopped, or the job's TaskStopped), never before.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from chalicelib.compute import nodes_recovery
from chalicelib.compute.journal_files import OwnJournal, job_of
from chalicelib.compute.node_group import RESTARTED as RESTARTED
from chalicelib.compute.node_group import NodeGroup, ending_reason
from chalicelib.compute.node_group import attempt_spec as attempt_spec
from chalicelib.compute.node_network import LABEL_NODES as LABEL_NODES
from chalicelib.compute.node_network import DockerNodes as DockerNodes
from chalicelib.compute.node_network import Loopback as Loopback
from chalicelib.compute.node_network import NodeNetwork
from chalicelib.compute.port import Launcher, TaskSpec
from chalicelib.domain import nodes
from chalicelib.domain.jobs import Job
from chalicelib.domain.lifecycle import NodeStopped, TaskStarted, TaskStopped

log = logging.getLogger("batchplane.nodes")

MAIN_ADDRESS = "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"
# "<jobId>#<attempt> <numNodes> <mainNode> <task ARN> <main node's log stream>" per multi-node attempt launched
JOURNAL = "nodes.journal"


def _job_of_line(line: bytes) -> str:
    return job_of(line.split(b" ", 1)[0].decode("utf-8", "replace"))


Sink = Callable[..., None]  # RecordingSink: (job_id, event, recorded=None)


class NodeLauncher:
    """The Launcher port for every job: a multi-node attempt is run here, any other goes to the wrapped launcher."""

    def __init__(self, sink: Sink, state_dir: Path) -> None:
        self.sink = sink
        self.inner: Any = None  # LocalLauncher | DockerLauncher, given by `attach` (it reports to `on_event`)
        self.network: NodeNetwork = Loopback()
        self._lock = threading.Lock()
        self._groups: dict[str, NodeGroup] = {}
        state_dir.mkdir(parents=True, exist_ok=True)
        self._journal_path = state_dir / JOURNAL
        # compacted while the server runs too, to the lines of `_journal_jobs` (docs/adr/0036)
        self.journal = OwnJournal(self._journal_path, self._journal_jobs, _job_of_line)
        self._attempts: set[str] = set()  # launched, their end not recorded yet (`_finish`): their lines are kept
        self._asked: set[str] = set()  # the jobs recovery asked about: their lines are kept too (for good)

    def attach(self, inner: Launcher, network: NodeNetwork) -> None:
        self.inner, self.network = inner, network

    # -- the Launcher port --------------------------------------------------------------------------------------

    def launch(self, spec: TaskSpec) -> None:
        if not spec.nodes:
            self.inner.launch(spec)
            return
        with self._lock:
            group = self._groups.get(spec.key)
            adopt = group is not None and not group.adopted
            if group is not None and adopt:  # recovered, its nodes never created awaiting their spec: this one
                group.spec, group.adopted = spec, True
            elif group is None:
                group = self._groups[spec.key] = NodeGroup(spec)
                self._attempts.add(spec.key)  # before its journal line: a live compaction keeps it (_journal_jobs)
            else:
                return  # launched or recovered here already
        if adopt:
            self.complete(group)
            return
        main_stream = spec.nodes[spec.main_node].log_stream
        line = f"{spec.key} {len(spec.nodes)} {spec.main_node} {spec.local_task_arn} {main_stream}\n"
        self.journal.append(line.encode())
        try:
            group.network = self.network.create(spec)
        except Exception as e:
            log.exception("creating the node network of %s failed", spec.key)
            self._finish(group, TaskStopped(spec.attempt, None, status_reason=f"CannotCreateContainerError: {e}"))
            return
        self._launch_node(group, group.main, None)

    def stop(self, job_id: str, attempt: int, reason: str) -> None:
        with self._lock:
            group = self._groups.get(f"{job_id}#{attempt}")
        if group is None:
            self.inner.stop(job_id, attempt, reason)
            return
        with self._lock:
            group.stop_reason = group.stop_reason or reason
            # ending: a node the main node's start is still launching is not launched, and one that reports its
            # start after this is stopped at once (the nodes launched so far are stopped below)
            group.ending = True
        self.stop_nodes(group, reason, include_main=True)

    def recover(self, job_id: str, attempt: int) -> bool:
        """After a restart: the attempt's nodes, found through the journal (compute/nodes_recovery.py). The job's
        lines are kept by live compactions from now on (`_asked`)."""
        with self._lock:
            self._asked.add(job_of(job_id))
        return nodes_recovery.recover(self, job_id, attempt)

    def complete(self, group: NodeGroup) -> None:
        """A recovered gang whose launch the crash cut short after its main node: its nodes never created are
        launched now (under the same attempt: none of them ran), once their spec is known and the main node runs."""
        with self._lock:
            ready = group.adopted and group.main in group.started and not group.ending
            todo, group.awaiting = (sorted(group.awaiting), set()) if ready else ([], group.awaiting)
        if todo:
            try:
                address = self.network.address(replace(group.spec.nodes[group.main], network=group.network))
            except Exception as e:
                log.exception("the address of %s's main node is unknown", group.spec.key)
                with self._lock:
                    group.failure, group.ending = f"CannotStartContainerError: main node address: {e}", True
                self.stop_nodes(group, group.failure or "", include_main=True)
                todo = []
            for i in todo:
                self._launch_node(group, i, address)
        self.maybe_finish(group)

    def hold(self, group: NodeGroup) -> bool:
        """Recovery: the group is watched here from now on; False when one of its key is already."""
        with self._lock:
            return self._groups.setdefault(group.spec.key, group) is group

    def group(self, key: str) -> NodeGroup | None:
        with self._lock:
            return self._groups.get(key)

    def let_go(self, key: str) -> None:
        with self._lock:
            self._groups.pop(key, None)

    def compact_journal(self, active_jobs: Iterable[str]) -> None:
        """At start, before the recovery and any launch (runtime/local.py): the journal keeps only the lines of
        `active_jobs`, the jobs the store has STARTING or RUNNING (the only ones recovery asks about: docs/adr/0035).
        Only the server appends to it (`launch`; no supervisor does): a plain write-new, fsync, rename is enough (no
        old inode kept for late appends, unlike the process journal). Likewise while the server runs, once it grew
        (journal_files.OwnJournal), to the lines of the attempts whose end is not recorded yet."""
        self.journal.compact(set(active_jobs))

    def _journal_jobs(self) -> set[str]:
        with self._lock:
            return {job_of(key) for key in self._attempts} | self._asked

    def forget(self, job: Job) -> None:
        self.inner.forget(job)
        if job.node_properties is not None:
            for i in range(nodes.num_nodes(job.node_properties)):
                self.inner.forget(replace(job, job_id=nodes.node_id(job.job_id, i)))

    # -- the nodes' events --------------------------------------------------------------------------------------

    def on_event(
        self, job_id: str, event: TaskStarted | TaskStopped, recorded: Callable[[], None] | None = None
    ) -> None:
        parsed = nodes.split_node_id(job_id)
        if parsed is None:
            self.sink(job_id, event, recorded)
            return
        try:
            recorded = self._node_event(parsed[0], parsed[1], event, recorded)
        finally:
            if recorded is not None:
                recorded()

    def _node_event(
        self, job_id: str, index: int, event: TaskStarted | TaskStopped, recorded: Callable[[], None] | None
    ) -> Callable[[], None] | None:
        """Returns `recorded` (a node container's removal, compute/docker.py) unless it is run later: once the
        node's end is recorded (its NodeStopped, or the job's TaskStopped). Run at once, the container was removed
        before a crash could record its end, and the next start would find it gone: a lost host."""
        with self._lock:
            group = self._groups.get(f"{job_id}#{event.attempt}")
        if group is not None and group.collected is not None:  # (recovering processes: nodes_recovery.py)
            if isinstance(event, TaskStopped):
                group.collected.setdefault(index, event)
            return recorded
        if group is None or group.done:
            if isinstance(event, TaskStarted):  # a node nothing waits for (an attempt already settled)
                self.inner.stop(nodes.node_id(job_id, index), event.attempt, RESTARTED)
            return recorded
        if isinstance(event, TaskStarted):
            with self._lock:
                group.started.add(index)
                launch_others = index == group.main and not group.ending and not group.recovered
                reattached = index == group.main and not group.ending and group.recovered
            if group.ending:  # (a stop before its start, e.g. a re-attached node's, found no container to stop)
                self.inner.stop(nodes.node_id(job_id, index), event.attempt, ending_reason(group))
            if launch_others:
                self._main_started(group)
            if reattached:  # (stale when the job was RUNNING already)
                self.sink(job_id, TaskStarted(event.attempt, **group.task()))
                self.complete(group)
            return recorded
        with self._lock:
            if group.done:
                return recorded
            group.ended.setdefault(index, event)
            main_ended = index == group.main and group.main_end is None
            if main_ended:
                group.main_end = event
            early = not main_ended and not group.ending
            # (a recovered node may have started before the crash: one whose container is gone is a lost host, an
            # end reported again, or not yet recorded, but no failure to start)
            if early and index not in group.started and not group.recovered:
                why = event.reason or event.status_reason or "unknown"
                group.failure = f"Node {index} failed to start: {why}"
            first_end = (main_ended or group.failure is not None) and not group.ending
            if first_end:
                group.ending = True
            own = early and group.failure is None
            if own:
                group.early.add(index)
            elif recorded is not None:
                group.removals.append(recorded)  # run once the job's end is recorded (_finish)
                recorded = None
        if own:
            node = NodeStopped(event.attempt, index, event.exit_code, event.reason, event.status_reason)
            self.sink(job_id, node, recorded)
            recorded = None
        if first_end:
            self.stop_nodes(group, group.failure or nodes.STOPPED_WITH_MAIN, include_main=group.failure is not None)
        self.maybe_finish(group)
        return recorded

    def _main_started(self, group: NodeGroup) -> None:
        spec = group.spec
        main_spec = replace(spec.nodes[group.main], network=group.network)
        self.sink(spec.job_id, TaskStarted(spec.attempt, **group.task()))
        try:
            address = self.network.address(main_spec)
        except Exception as e:
            log.exception("the address of %s's main node is unknown", spec.key)
            with self._lock:
                group.failure, group.ending = f"CannotStartContainerError: main node address: {e}", True
            self.stop_nodes(group, group.failure or "", include_main=True)
            return
        for i in range(len(spec.nodes)):
            if i != group.main and not group.ending:
                self._launch_node(group, i, address)

    def _launch_node(self, group: NodeGroup, index: int, address: str | None) -> None:
        node = group.spec.nodes[index]
        if address is not None:
            node = replace(node, environment={**node.environment, MAIN_ADDRESS: address})
        with self._lock:
            if group.ending and index != group.main:
                return  # the main node ended meanwhile: this node is not to run
            group.launched.add(index)
        try:
            self.inner.launch(replace(node, network=group.network))
        except Exception as e:  # (the executor's own failures are its TaskStopped; this is an error of the host)
            log.exception("launching node %d of %s failed", index, group.spec.key)
            self._not_launched(group, index, f"Node {index} failed to start: CannotStartContainerError: {e}")
            return
        with self._lock:
            late = group.ending and index != group.main
        if late:  # the main node ended while this node was being launched: its stop may have missed the task
            self.inner.stop(nodes.node_id(group.spec.job_id, index), group.spec.attempt, ending_reason(group))

    def _not_launched(self, group: NodeGroup, index: int, failure: str) -> None:
        """A node whose launch raised: it never ran, and the attempt fails (as a node that failed to start does),
        its other nodes stopped. Without this its group would wait for ever for the node's end; a main node's
        group would also keep a later launch of the attempt from doing anything."""
        with self._lock:
            group.launched.discard(index)
            group.failure, group.ending = group.failure or failure, True
            main_launched = group.main in group.launched
        if not main_launched:  # nothing of it runs: it ends now
            self._finish(group, TaskStopped(group.spec.attempt, None, status_reason=group.failure))
            return
        self.stop_nodes(group, group.failure or failure, include_main=True)
        self.maybe_finish(group)

    def stop_nodes(self, group: NodeGroup, reason: str, *, include_main: bool) -> None:
        with self._lock:
            targets = [i for i in group.launched if i not in group.ended and (include_main or i != group.main)]
        for i in targets:
            try:
                self.inner.stop(nodes.node_id(group.spec.job_id, i), group.spec.attempt, reason)
            except Exception:
                log.exception("stopping node %d of %s failed", i, group.spec.key)

    def maybe_finish(self, group: NodeGroup) -> None:
        with self._lock:
            if group.done or not group.ending or not group.adopted or any(i not in group.ended for i in group.launched):
                return
            if group.main_end is None and group.main in group.launched:
                return
            group.done = True
        spec = group.spec
        ends: dict[str, dict[str, Any]] = {}
        for i in range(len(spec.nodes)):
            e = group.ended.get(i)
            ends[str(i)] = {
                k: v
                for k, v in {
                    "exitCode": e.exit_code if e else None,
                    "reason": e.reason if e else None,
                    "statusReason": (e.status_reason if e else None) or nodes.STOPPED_WITH_MAIN,
                    "withMain": i != group.main and i not in group.early,
                }.items()
                if v is not None
            }
        main = group.main_end or TaskStopped(spec.attempt, None, status_reason=group.failure)
        status_reason = group.failure or main.status_reason
        exit_code = None if group.failure else main.exit_code
        stopped = TaskStopped(
            spec.attempt,
            exit_code,
            reason=main.reason,
            status_reason=status_reason,
            timed_out=main.timed_out,
            **group.task(),
            nodes=ends,
        )
        self._finish(group, stopped)

    def _finish(self, group: NodeGroup, stopped: TaskStopped) -> None:
        with self._lock:
            group.done = True
            self._groups.pop(group.spec.key, None)
            removals = list(group.removals)
        with contextlib.suppress(Exception):
            self.network.remove(group.spec)

        def recorded() -> None:
            for remove in removals:
                remove()
            with self._lock:  # (its journal line is kept until now: _compact_live)
                self._attempts.discard(group.spec.key)

        self.sink(group.spec.job_id, stopped, recorded)

    def journalled(self, key: str) -> tuple[int, int, tuple[str, str] | None] | None:
        """The attempt's journal line: its node count, main node, and task (ARN, main node's log stream; None in an
        earlier version's line)."""
        try:
            lines = self._journal_path.read_text().splitlines()
        except OSError:
            return None
        for line in reversed(lines):
            parts = line.split()
            if len(parts) in (3, 5) and parts[0] == key and parts[1].isascii() and parts[1].isdigit():
                return int(parts[1]), int(parts[2]), (parts[3], parts[4]) if len(parts) == 5 else None
        return None

    def reap(self) -> int:
        """Node networks a crash left behind (Docker)."""
        reap = getattr(self.network, "reap", None)
        if reap is None:
            return 0
        return int(reap(self._networks))  # (read by the reaper after its list)

    def _networks(self) -> set[str]:
        """The node networks of the attempts watched now (launched, or recovered: they stay)."""
        with self._lock:
            return {g.network for g in self._groups.values() if g.network}

    def shutdown(self, timeout: float = 5.0) -> None:
        self.inner.shutdown(timeout)
        with contextlib.suppress(OSError):
            self.journal.close()
