"""A local cluster's processes: spawn nodes, initialize once, wait for readiness, stop in order.

`LocalCluster` pairs the on-disk layout with the state file. Every process it touches is first
re-identified by pid + create time + argv (local/process.py), so a pid reused by an unrelated
process is never signalled. The state file is saved after every change to the set of running
processes, so a roachctl that dies midway leaves pids another roachctl can find.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil

from roachctl.errors import RefusedError, RemoteCommandError
from roachctl.fsutil import sha256_file
from roachctl.local import process
from roachctl.local.client import Endpoint, HealthProbe, liveness, run_client
from roachctl.local.interrupts import ForceStop, SignalCounter, StopRequested
from roachctl.local.layout import ClusterPaths
from roachctl.local.ports import port_in_use
from roachctl.local.state import HOST, LocalState, NodeState, save, state_lock
from roachctl.local.state import load as load_state
from roachctl.operation.journal import Operation
from roachctl.operation.lock import file_lock
from roachctl.plan import drainlog
from roachctl.plan.argv import StartSpec, start_argv
from roachctl.plan.drainlog import drain_verdict
from roachctl.plan.stoporder import StopStep, stop_steps
from roachctl.ui.console import console

POLL = 0.2
INIT_ATTEMPT_TIMEOUT = 30.0
DRAIN_TIMEOUT = 60.0
"""Seconds a node that can drain (a majority is running) gets to exit after SIGTERM (`--timeout`)."""
GRACE = 10.0
"""Seconds the final minority gets after SIGTERM before SIGKILL (`--grace`)."""
JOIN_MAX = 3
"""--join lists the first three nodes on every node (3-5 initial nodes, the same list everywhere)."""
NODE_CACHE = "128MiB"
NODE_SQL_MEMORY = "128MiB"
_CLUSTER_ID_RE = re.compile(r"^clusterID:\s+(\S+)", re.MULTILINE)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LocalCluster:
    """Operations on one local cluster (its state file is the source of truth)."""

    def __init__(self, paths: ClusterPaths, state: LocalState) -> None:
        self.paths = paths
        self.state = state
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self.output_offsets: dict[int, int] = {}  # where this run's output starts, per node
        self.operation: Operation | None = None  # the journaled command running on it, if any

    @classmethod
    def load(cls, paths: ClusterPaths) -> LocalCluster:
        return cls(paths, load_state(paths))

    # -- the journal ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def journaled(self, verb: str, args: dict[str, Any]) -> Iterator[Operation]:
        """Run a mutating command as one Operation in `<home>/local/<name>/journal.jsonl`: begin,
        a step per node started, ready or stopped, and how it ended (as remote commands do).

        One mutating operation per cluster at a time: the block holds the cluster's operation lock,
        and another `local` command that changes this cluster is refused (exit 30) naming the holder."""
        with (
            file_lock(self.paths.op_lock, f"local/{self.paths.name}", verb),
            Operation(self.paths.journal, verb, args) as operation,
        ):
            self.operation = operation
            try:
                yield operation
            finally:
                self.operation = None

    def step(self, name: str, node: NodeState | None = None, **detail: Any) -> None:
        """One thing done on one node (or on the cluster), when a journaled command runs."""
        if self.operation is not None:
            self.operation.step(name, host=None if node is None else f"n{node.index}", **detail)

    # -- identity and paths ---------------------------------------------------------------------
    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.paths.certs if self.state.secure else None)

    @property
    def binary(self) -> Path:
        return Path(self.state.release["binary"])

    def reload(self) -> None:
        """Re-read the state file (another roachctl may have changed it)."""
        self.state = load_state(self.paths)

    def save(self) -> None:
        with state_lock(self.paths.home):
            save(self.paths, self.state)

    def node_argv(self, node: NodeState, binary: Path | None = None) -> list[str]:
        """The node's `cockroach start` argv: absolute paths everywhere, loopback only.

        `binary`: another release's binary (`local upgrade` restarts one node at a time on it).
        """
        np = self.paths.node(node.index)
        join = tuple(n.sql_addr for n in self.state.nodes[:JOIN_MAX])
        spec = StartSpec(
            binary=str(binary or self.binary),
            stores=(str(np.store),),
            listen_addr=node.sql_addr,
            http_addr=node.http_addr,
            join=join,
            certs_dir=str(self.paths.certs) if self.state.secure else None,
            cache=NODE_CACHE,
            max_sql_memory=NODE_SQL_MEMORY,
            log_dir=str(np.logs),
            temp_dir=str(np.temp),
            external_io_dir=str(np.extern),
            pid_file=str(np.pid_file),
        )
        return start_argv(spec)

    def running(self, node: NodeState) -> psutil.Process | None:
        """The node's live process, verified by create time and argv; None if it is not running."""
        child = self.children.get(node.index)
        if child is not None and child.poll() is not None:
            del self.children[node.index]  # reaped our own child
        return process.find(node.pid, node.create_time, node.argv)

    def running_nodes(self) -> list[tuple[NodeState, psutil.Process]]:
        found = []
        for node in self.state.nodes:
            proc = self.running(node)
            if proc is not None:
                found.append((node, proc))
        return found

    def log_tail(self, node: NodeState, lines: int = 15) -> str:
        return process.tail(self.paths.node(node.index).output, lines)

    def _node_failure(self, node: NodeState, message: str, hint: str) -> RemoteCommandError:
        tail = self.log_tail(node) or "(no output)"
        text = f"{message}\n--- last lines of {self.paths.node(node.index).output} ---\n{tail}"
        return RemoteCommandError(text, where=f"local node n{node.index}", hint=hint)

    # -- starting ---------------------------------------------------------------------------------
    def spawn(self, nodes: Sequence[NodeState], binary: Path | None = None) -> None:
        """Start every given node that is not already running; ports must be free."""
        for node in nodes:
            if self.running(node) is not None:
                continue
            for port, what in ((node.sql_port, "SQL/RPC"), (node.http_port, "HTTP")):
                if port_in_use(port, HOST):
                    raise RefusedError(
                        f"port {port} ({what} of node n{node.index}) is in use by another program",
                        where=f"local cluster {self.state.name}",
                        hint="stop that program, then run `roachctl local start` again",
                    )
        for node in nodes:
            if self.running(node) is not None:
                continue
            np = self.paths.node(node.index)
            np.make()
            np.pid_file.unlink(missing_ok=True)
            self.output_offsets[node.index] = np.output.stat().st_size if np.output.exists() else 0
            node.argv = self.node_argv(node, binary)
            proc, created = process.spawn(node.argv, cwd=np.dir, output=np.output)
            self.children[node.index] = proc
            node.pid, node.create_time, node.started_at = proc.pid, created, now_iso()
            self.save()
            self.step("start", node, pid=proc.pid)

    def wait_for(
        self,
        nodes: Sequence[NodeState],
        what: str,
        check: Callable[[NodeState], HealthProbe],
        timeout: float,
        interrupts: SignalCounter | None,
        record: str | None = None,
    ) -> None:
        """Poll until `check` passes on every node; a dead node or the deadline is an error.
        `record`: the journal step written as each node passes."""
        deadline = time.monotonic() + timeout
        pending = list(nodes)
        last: dict[int, str] = {}
        while True:
            if interrupts is not None and interrupts.requested:
                raise StopRequested()
            for node in list(pending):
                result = check(node)
                last[node.index] = result.detail
                if result.ready:
                    pending.remove(node)
                    if record:
                        self.step(record, node)
                elif self.running(node) is None:
                    raise self._node_failure(
                        node,
                        f"node n{node.index} exited while {what}",
                        "fix the cause shown in the log, then retry",
                    )
            if not pending:
                return
            if time.monotonic() >= deadline:
                node = pending[0]
                raise self._node_failure(
                    node,
                    f"timed out after {timeout:.0f}s waiting for node n{node.index} to be {what} "
                    f"(last answer: {last.get(node.index, 'none')})",
                    "see the node's log; raise --timeout if the machine is slow",
                )
            time.sleep(POLL)

    def wait_listening(self, timeout: float, interrupts: SignalCounter | None) -> None:
        def up(node: NodeState) -> HealthProbe:
            probe = self.endpoint.probe(node, ready=False)
            return HealthProbe(probe.up, probe.up, probe.detail)

        self.wait_for(self.state.nodes, "listening", up, timeout, interrupts)

    def wait_ready(self, timeout: float, interrupts: SignalCounter | None) -> None:
        self.wait_for(
            self.state.nodes, "ready (/health?ready=1)", self.endpoint.probe, timeout, interrupts, "ready"
        )

    def init_once(self, timeout: float, interrupts: SignalCounter | None) -> None:
        """Run `cockroach init` unless the state says it already ran — once per cluster, ever."""
        if self.state.initialized:
            return
        node = self.state.nodes[0]
        deadline = time.monotonic() + timeout
        while True:
            if interrupts is not None and interrupts.requested:
                raise StopRequested()
            res = run_client(
                self.binary,
                ["init"],
                self.endpoint,
                node,
                cwd=self.paths.dir,
                timeout=min(INIT_ATTEMPT_TIMEOUT, max(1.0, deadline - time.monotonic())),
            )
            if res.ok or "already been initialized" in res.stderr + res.stdout:
                break
            if time.monotonic() >= deadline or self.running(node) is None:
                raise self._node_failure(
                    node,
                    f"`cockroach init` failed: {res.summary()}",
                    "see the node's log; the cluster was not initialized",
                )
            time.sleep(1.0)
        self.state.initialized, self.state.initialized_at = True, now_iso()
        self.save()
        self.step("init", node)

    def record_cluster_id(self, wait: float = 5.0) -> None:
        """Remember the cluster ID the nodes print once serving (to show it, and to notice a change).

        A restarted node printing another ID than the recorded one means its store belongs to a
        different cluster: that is worth a loud warning.
        """
        deadline = time.monotonic() + wait
        while True:
            for node in self.state.nodes:
                found = _CLUSTER_ID_RE.findall(self._output_since_spawn(node))
                if found:
                    if self.state.cluster_id and found[-1] != self.state.cluster_id:
                        console().print(
                            f"[bold red]warning:[/] n{node.index} reports cluster ID "
                            f"{found[-1]}, but this cluster was {self.state.cluster_id}"
                        )
                    self.state.cluster_id = found[-1]
                    self.save()
                    self.step("cluster-id", node, cluster_id=found[-1])
                    return
            if time.monotonic() >= deadline:
                return
            time.sleep(POLL)

    def _output_since_spawn(self, node: NodeState, limit: int = 256 << 10) -> str:
        path = self.paths.node(node.index).output
        try:
            with path.open("rb") as handle:
                handle.seek(self.output_offsets.get(node.index, 0))
                return handle.read(limit).decode("utf-8", errors="replace")
        except OSError:
            return ""

    def check_binary(self) -> None:
        """Refuse to start nodes from a binary that vanished or changed since the cluster was made."""
        binary, want = self.binary, self.state.release.get("binary_sha256")
        if not binary.is_file():
            raise RefusedError(
                f"the cluster's cockroach binary {binary} is gone",
                where=f"local cluster {self.state.name}",
                hint="restore it (e.g. run `roachctl local up` for another cluster with the "
                "same release to refill the cache)",
            )
        if want and sha256_file(binary) != want:
            raise RefusedError(
                f"the cluster's cockroach binary {binary} changed since the cluster was created",
                where=f"local cluster {self.state.name}",
                hint="restore the original binary; roachctl will not run an unverified one",
            )

    def bring_up(self, timeout: float, interrupts: SignalCounter | None) -> None:
        """Spawn the nodes, init once, and wait until every node answers /health?ready=1."""
        if any(self.running(n) is None for n in self.state.nodes):
            self.check_binary()
        self.spawn(self.state.nodes)
        self.wait_listening(timeout, interrupts)
        self.init_once(timeout, interrupts)
        self.wait_ready(timeout, interrupts)
        self.record_cluster_id()

    # -- stopping ---------------------------------------------------------------------------------
    def forget(self, node: NodeState) -> None:
        node.forget_process()
        self.children.pop(node.index, None)
        self.save()

    def stop(
        self,
        *,
        interrupts: SignalCounter | None = None,
        drain_timeout: float = DRAIN_TIMEOUT,
        grace: float = GRACE,
    ) -> list[dict[str, object]]:
        """Stop every running node, one at a time, in the order plan/stoporder.py gives.

        Each node gets SIGTERM — cockroach's own graceful drain (contract §4) — and is waited for.
        A node stopped while the running nodes, itself included, are a majority (and its ranges keep
        a lease target) can drain: it gets `drain_timeout` seconds. The final minority cannot
        (contract §4.1): SIGTERM, `grace` seconds, then SIGKILL — crash-safe, the next start
        replays the log. Never are two nodes draining gracefully at once. (The seed stopped all
        three at once and found node 3 hard-shut down without knowing why.)
        Returns one result per node (printed as it happens); a second interrupt (ForceStop) kills
        whatever is left.
        """
        nodes = self.running_nodes()
        if not nodes:
            self.forget_dead()
            return []
        by_index = {n.index: (n, p) for n, p in nodes}
        probes = {n.index: self.endpoint.probe(n) for n, _ in nodes}
        answering = {i for i, probe in probes.items() if probe.up}
        # already draining (someone ran `node drain`): readiness says so (contract §6); they go first
        draining = {str(i) for i, probe in probes.items() if probe.detail == drainlog.DRAINING_READINESS}
        order = [str(n.index) for n, _ in nodes]
        steps = stop_steps(order, {str(i) for i in answering}, len(self.state.nodes), draining)
        results: list[dict[str, object]] = []
        try:
            for step in steps:
                bound = drain_timeout if step.drain else grace
                batch = [by_index[int(h)] for h in step.hosts]
                results += self._stop_together(batch, step, bound)
        except ForceStop:
            self.kill()
            raise
        self.forget_dead()
        return results

    def stop_one(self, node: NodeState, proc: psutil.Process, *, why: str) -> dict[str, object]:
        """Stop one node while the others run (a majority: it can drain): SIGTERM, bounded as
        `stop` bounds a draining node, SIGKILL after. `local upgrade` restarts nodes this way."""
        (result,) = self._stop_together(
            [(node, proc)], StopStep((str(node.index),), True, why), DRAIN_TIMEOUT
        )
        return result

    def _stop_together(
        self, batch: list[tuple[NodeState, psutil.Process]], step: StopStep, bound: float
    ) -> list[dict[str, object]]:
        """SIGTERM the batch, wait up to `bound` s for each to exit, SIGKILL the rest."""
        began = time.monotonic()
        offsets = {node.index: self._log_size(node) for node, _ in batch}
        for node, proc in batch:
            how = (
                f"{step.why}: drains gracefully"
                if step.drain
                else f"{step.why}: it cannot drain; hard stop after {bound:g}s"
            )
            console().print(f"stopping n{node.index} (pid {proc.pid}; {how})")
            process.send(proc, signal.SIGTERM)
        results = []
        for node, proc in batch:
            exited, code = self._wait_exit(node, proc, max(0.0, began + bound - time.monotonic()))
            hard = not exited
            if hard:
                process.send_group(proc, signal.SIGKILL)
                if not process.wait_gone(proc, 10.0):
                    raise self._node_failure(
                        node,
                        f"node n{node.index} (pid {proc.pid}) is still running after SIGKILL",
                        "check the process by hand",
                    )
            seconds = round(time.monotonic() - began, 1)
            if hard:
                why = (
                    f"its drain did not finish within {bound:g}s"
                    if step.drain
                    else "it was not answering"
                    if step.why == "not answering"
                    else "no majority left"
                )
                line = f"stopped without drain — {why} (crash-safe; the next start replays its log)"
                result: dict[str, object] = {"node": node.index, "result": "hard", "reason": why}
            elif code not in (None, 0):
                line = f"exited with code {code} after SIGTERM ({seconds}s)"
                result = {"node": node.index, "result": "exited", "code": code}
            else:  # exit 0 alone does not prove a drain: the node's log must (contract §4)
                verdict = drain_verdict(self._log_since(node, offsets[node.index]))
                ended = f"{'exit 0, ' if code == 0 else ''}{seconds}s"
                if verdict.confirmed:
                    line = f"drained and stopped ({ended})"
                    result = {"node": node.index, "result": "drained"}
                else:
                    line = f"stopped ({ended}); drain not confirmed: {verdict.why}"
                    result = {"node": node.index, "result": "unconfirmed", "reason": verdict.why}
            result["seconds"] = seconds
            console().print(f"n{node.index}: {line}")
            results.append(result)
            self.forget(node)
            self.step("stop", node, **{k: v for k, v in result.items() if k != "node"})
        return results

    def _log_file(self, node: NodeState) -> Path:
        return self.paths.node(node.index).logs / drainlog.LOG_FILE

    def _log_size(self, node: NodeState) -> int:
        try:
            return self._log_file(node).stat().st_size
        except OSError:
            return 0

    def _log_since(self, node: NodeState, offset: int, limit: int = 1 << 20) -> list[str]:
        """The node's log lines written since `offset`, as far as its drain verdict needs them."""
        try:
            with self._log_file(node).open("rb") as handle:
                handle.seek(offset)
                text = handle.read(limit).decode("utf-8", errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if re.search(drainlog.PATTERN, line)]

    def _wait_exit(self, node: NodeState, proc: psutil.Process, timeout: float) -> tuple[bool, int | None]:
        """Wait for the node to exit: (exited, exit status when known — only for our own child)."""
        child = self.children.get(node.index)
        if child is None:
            return process.wait_gone(proc, timeout), None
        deadline = time.monotonic() + timeout
        while child.poll() is None:  # polling, not wait(): a second Ctrl-C must get through
            if time.monotonic() >= deadline:
                return False, None
            time.sleep(0.05)
        return True, child.returncode

    def kill(self) -> list[dict[str, object]]:
        """SIGKILL every running node at once (second Ctrl-C, --force): no drain."""
        nodes = self.running_nodes()
        process.sigkill_all([p for _, p in nodes])
        results: list[dict[str, object]] = []
        for node, proc in nodes:
            process.wait_gone(proc, 10.0)
            console().print(
                f"n{node.index}: killed (pid {proc.pid}; no drain — crash-safe, the next "
                "start replays its log)"
            )
            results.append({"node": node.index, "result": "hard", "reason": "killed at once"})
            self.forget(node)
            self.step("stop", node, result="hard", reason="killed at once")
        self.forget_dead()
        return results

    def terminate_quietly(self, grace: float = 10.0) -> None:
        """Best-effort cleanup after a failed `up`: SIGTERM, then SIGKILL after `grace` seconds."""
        nodes = self.running_nodes()
        for _, proc in nodes:
            process.send_group(proc, signal.SIGTERM)
        for _, proc in nodes:
            process.terminate(proc, grace=grace)
        for node in self.state.nodes:
            self.children.pop(node.index, None)
            node.forget_process()

    def forget_dead(self) -> None:
        changed = False
        for node in self.state.nodes:
            if node.pid is not None and self.running(node) is None:
                node.forget_process()
                changed = True
        if changed:
            self.save()

    # -- observing --------------------------------------------------------------------------------
    def liveness(self) -> dict[str, tuple[int, bool]] | None:
        for node, _ in self.running_nodes():
            if self.endpoint.probe(node).ready:
                return liveness(self.binary, self.endpoint, node, cwd=self.paths.dir)
        return None
