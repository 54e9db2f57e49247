"""The `roachctl local` verbs as functions: up, start, stop, down, sql (status/list: report.py).

`up` is all-or-nothing: it either leaves a ready cluster or nothing at all (no half state dir,
no stray process). `start` restarts an existing cluster on its data without `init`. `stop` and
`down` stop nodes one at a time in quorum order (LocalCluster.stop): gracefully while a majority
runs, the final minority after a bounded grace.

Each of them that changes processes is journaled like a remote command (LocalCluster.journaled:
`<home>/local/<name>/journal.jsonl`, shown by `roachctl local history`). The journal is intent and
history; what runs is the truth: a `start` after an interrupted one starts what is not running and
leaves running nodes alone. An `up` that fails or is interrupted deletes everything, its journal
included; a foreground `up` or `start` journals the stop at Ctrl-C as its own `stop`.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from roachctl import release as rel
from roachctl.errors import InterruptedByUser, RefusedError, RemoteCommandError, RoachctlError, UsageError
from roachctl.fsutil import private_dir
from roachctl.local import certs, process
from roachctl.local.cluster import GRACE, LocalCluster, now_iso
from roachctl.local.interrupts import ForceStop, SignalCounter, StopRequested
from roachctl.local.layout import ClusterPaths, check_name, check_nodes
from roachctl.local.ports import DEFAULT_HTTP_BASE, DEFAULT_SQL_BASE, check_base, plan_ports
from roachctl.local.state import LocalState, NodeState, reserved_ports, save, state_lock
from roachctl.model import versions
from roachctl.plan.clientargv import client_args
from roachctl.plan.sqlinput import sql_stdin
from roachctl.release.model import Release
from roachctl.release.names import TARBALL_VERSION
from roachctl.ui.console import console

READY_TIMEOUT = 90.0


@dataclass(frozen=True)
class ReleaseChoice:
    """Where the binary comes from (at most one of binary / tarball; mirror only for downloads)."""

    version: str | None = None
    binary: Path | None = None
    tarball: Path | None = None
    sha256: str | None = None
    mirror: str | None = None
    allow_insecure_mirror: bool = False

    def resolve(self, home: Path) -> Release:
        if self.binary and (self.tarball or self.mirror or self.sha256):
            raise UsageError(
                "--binary cannot be combined with --tarball, --mirror or --sha256",
                hint="choose one release source",
            )
        if self.tarball and self.mirror:
            raise UsageError("--tarball and --mirror are alternatives", hint="choose one release source")
        if self.version:
            _refuse_below_floor(rel.normalize_version(self.version), "--version")
        if self.tarball and (tagged := TARBALL_VERSION.match(self.tarball.name)):
            _refuse_below_floor(tagged[1], "--tarball")  # a malformed name: obtain() explains
        if self.binary:
            found = rel.from_binary(self.binary)
            if self.version and rel.normalize_version(self.version) != found.version:
                raise UsageError(
                    f"--binary is {found.version}, not {self.version}",
                    where="--binary",
                    hint="drop --version or use a binary of that version",
                )
            _refuse_below_floor(found.version, "--binary")
            return found
        return rel.obtain(
            self.version,
            home=home,
            mirror=self.mirror,
            tarball=self.tarball,
            sha256=self.sha256,
            allow_insecure_mirror=self.allow_insecure_mirror,
        )


def _refuse_below_floor(version: str, where: str) -> None:
    """Before anything is downloaded or started: roachctl cannot read an older node's status."""
    if versions.below_floor(version):
        raise UsageError(versions.floor_message(version), where=where, hint=versions.floor_hint())


@dataclass(frozen=True)
class UpOptions:
    name: str
    nodes: int = 3
    insecure: bool = False
    sql_base: int = DEFAULT_SQL_BASE
    http_base: int = DEFAULT_HTTP_BASE
    explicit_sql: bool = False
    explicit_http: bool = False
    source: ReleaseChoice = ReleaseChoice()
    detach: bool = False
    timeout: float = READY_TIMEOUT


def _refuse_existing(paths: ClusterPaths) -> None:
    if paths.state.exists():
        raise UsageError(
            f"local cluster {paths.name!r} already exists",
            where=str(paths.dir),
            hint=f"start it with `roachctl local start --name {paths.name}`, or remove it "
            f"with `roachctl local down --name {paths.name} --wipe`",
        )


def _node_state(paths: ClusterPaths, index: int, sql_port: int, http_port: int) -> NodeState:
    np = paths.node(index)
    return NodeState(
        index,
        sql_port,
        http_port,
        dir=str(np.dir),
        store=str(np.store),
        log_dir=str(np.logs),
        temp_dir=str(np.temp),
        pid_file=str(np.pid_file),
        output=str(np.output),
    )


def create_cluster(home: Path, opts: UpOptions, release: Release) -> LocalCluster:
    """Plan ports, create dirs and certs, and write the state (the port reservation), atomically."""
    paths = ClusterPaths(home, opts.name)
    with state_lock(home):
        _refuse_existing(paths)
        if paths.dir.exists():  # left by a roachctl killed mid-`up` (no state = never usable)
            shutil.rmtree(paths.dir)
        plan = plan_ports(
            opts.nodes,
            sql_base=opts.sql_base,
            http_base=opts.http_base,
            explicit_sql=opts.explicit_sql,
            explicit_http=opts.explicit_http,
            reserved=reserved_ports(home, except_name=opts.name),
        )
        try:
            private_dir(paths.dir)
            if not opts.insecure:
                certs.create(paths)
            nodes = [_node_state(paths, i, p.sql, p.http) for i, p in enumerate(plan, 1)]
            state = LocalState(
                name=opts.name,
                secure=not opts.insecure,
                release=release.to_dict(),
                nodes=nodes,
                created_at=now_iso(),
            )
            save(paths, state)
        except BaseException:
            shutil.rmtree(paths.dir, ignore_errors=True)
            raise
    return LocalCluster(paths, state)


def _wipe(cluster: LocalCluster) -> None:
    with state_lock(cluster.paths.home):
        shutil.rmtree(cluster.paths.dir, ignore_errors=True)


def up(home: Path, opts: UpOptions, *, on_ready: Callable[[LocalCluster], None]) -> None:
    """Create, start and initialize a new local cluster; foreground unless `opts.detach`.

    All or nothing: on any failure or Ctrl-C before every node is ready, the started processes are
    stopped and ``<home>/local/<name>`` is deleted. Returns when detached, or (foreground) after a
    stop by SIGTERM or from elsewhere; raises InterruptedByUser (exit 130) after Ctrl-C.
    """
    check_name(opts.name)
    check_nodes(opts.nodes)
    check_base("--base-port", opts.sql_base)
    check_base("--http-base-port", opts.http_base)
    _refuse_existing(ClusterPaths(home, opts.name))  # before any download
    release = opts.source.resolve(home)
    if opts.insecure:
        console().print(
            "[bold yellow]warning:[/] --insecure: no TLS and no authentication; anyone "
            "who can reach these ports on this machine has full control of the cluster"
        )
    try:
        cluster = create_cluster(home, opts, release)
    except OSError as exc:
        if exc.errno is None:
            raise
        raise UsageError(
            f"cannot create the cluster's files: {exc.strerror}: {exc.filename}",
            where=str(ClusterPaths(home, opts.name).dir),
            hint="check that --home (or ROACHCTL_HOME) is writable",
        ) from None
    args = {"nodes": opts.nodes, "insecure": opts.insecure, "detach": opts.detach, "timeout": opts.timeout}
    with SignalCounter("stopping the nodes that were starting; press Ctrl-C again to kill them") as intr:
        with cluster.journaled("up", args):
            try:
                cluster.bring_up(opts.timeout, intr)
            except (StopRequested, ForceStop):
                _abandon(cluster)
                raise InterruptedByUser("interrupted; nothing was kept") from None
            except BaseException:
                _abandon(cluster)
                raise
        on_ready(cluster)
        if not opts.detach:
            supervise(cluster, intr)


def _abandon(cluster: LocalCluster) -> None:
    """After a failed or interrupted `up`: stop what started and delete it all (another Ctrl-C
    only makes the stop immediate)."""
    try:
        cluster.terminate_quietly()
    except ForceStop:
        cluster.kill()
    _wipe(cluster)


def start(
    home: Path, name: str, *, timeout: float, foreground: bool, on_ready: Callable[[LocalCluster], None]
) -> None:
    """Start an existing cluster's stopped nodes on their data (no init), and wait until ready."""
    cluster = LocalCluster.load(ClusterPaths(home, check_name(name)))
    already = {n.index for n, _ in cluster.running_nodes()}
    with SignalCounter("stopping the nodes this command started; press Ctrl-C again to kill them") as intr:
        with cluster.journaled("start", {"timeout": timeout, "foreground": foreground}):
            try:
                cluster.bring_up(timeout, intr)
            except (StopRequested, ForceStop):
                _stop_started(cluster, already)
                raise InterruptedByUser("interrupted; the data is kept") from None
            except BaseException:
                _stop_started(cluster, already)
                raise
        on_ready(cluster)
        if foreground:
            supervise(cluster, intr)


def _stop_started(cluster: LocalCluster, already: set[int]) -> None:
    """After a failed `start`: stop only the nodes this command started (data is kept)."""
    for node, proc in cluster.running_nodes():
        if node.index not in already:
            try:
                process.terminate(proc, grace=30.0)
            except ForceStop:
                process.sigkill_all([proc])
                process.wait_gone(proc, 5.0)
            cluster.children.pop(node.index, None)
            node.forget_process()
            cluster.step("stop", node, result="stopped", reason="the start did not finish")
    cluster.save()


def supervise(cluster: LocalCluster, intr: SignalCounter) -> None:
    """Foreground: wait for Ctrl-C (or SIGTERM), then stop the cluster as `local stop` does (one node
    at a time; the final minority after a bounded grace); a 2nd Ctrl-C kills at once.

    `intr` is the caller's interrupt counter, installed since before the nodes started, so no
    Ctrl-C is ever lost between "ready" and supervision. Raises InterruptedByUser (exit 130, as
    interface.md and `cockroach start` treat Ctrl-C) after SIGINT; returns normally (exit 0) after
    SIGTERM or when every node was stopped from elsewhere (`roachctl local stop`).
    """
    intr.first_message = "stopping gracefully; press Ctrl-C again to stop at once"
    reported: set[int] = set()
    try:
        while not intr.requested:
            running = {n.index for n, _ in cluster.running_nodes()}
            for node in cluster.state.nodes:
                if node.index not in running and node.index not in reported:
                    reported.add(node.index)
                    console().print(f"[red]node n{node.index} exited[/]\n{cluster.log_tail(node, 10)}")
            if not running:
                console().print("every node has stopped")
                cluster.reload()
                cluster.forget_dead()
                return
            time.sleep(0.25)
        with cluster.journaled("stop", {"by": intr.first_signal.name if intr.first_signal else "signal"}):
            _stop_or_kill(cluster, intr)
    except ForceStop:
        raise InterruptedByUser("stopped every node at once (second interrupt)") from None
    console().print("every node stopped; data kept (`roachctl local start` resumes)")
    if intr.first_signal == signal.SIGINT:
        raise InterruptedByUser("stopped by Ctrl-C")


def _stop_or_kill(cluster: LocalCluster, intr: SignalCounter) -> None:
    """The ordered stop; if it fails, kill the rest — the foreground roachctl is going away and must
    not leave processes behind."""
    try:
        cluster.stop(interrupts=intr)
    except ForceStop:  # the nodes were killed; the journal's stop ends "interrupted"
        raise InterruptedByUser("stopped every node at once (second interrupt)") from None
    except (RemoteCommandError, RefusedError) as exc:
        console().print(f"[bold red]error:[/] {exc.render()}\nkilling the remaining nodes")
        cluster.kill()
        raise


def stop(
    home: Path, name: str, *, timeout: float, force: bool, grace: float = GRACE
) -> list[dict[str, object]]:
    """Stop every node of a running cluster (LocalCluster.stop; all at once with `force`). Data is
    kept. Returns the per-node results."""
    cluster = LocalCluster.load(ClusterPaths(home, check_name(name)))
    args = {"timeout": timeout, "grace": grace, "force": force}
    with cluster.journaled("stop", args):
        return _stop(cluster, timeout=timeout, force=force, grace=grace)


def _stop(cluster: LocalCluster, *, timeout: float, force: bool, grace: float) -> list[dict[str, object]]:
    if force:
        return cluster.kill()
    with SignalCounter("already stopping; press Ctrl-C again to kill the nodes") as intr:
        try:
            return cluster.stop(interrupts=intr, drain_timeout=timeout, grace=grace)
        except ForceStop:
            raise InterruptedByUser("stopped every node at once (second interrupt)") from None


def down(
    home: Path, name: str, *, wipe: bool, confirm: Callable[[str], bool], timeout: float, grace: float = GRACE
) -> list[dict[str, object]]:
    """Stop the cluster and forget its processes; with `wipe`, delete ``<home>/local/<name>``.

    `confirm` receives the cluster name and must return True (typed name or --yes) before a wipe.
    With `wipe` the nodes are still stopped gracefully when they can be; if they cannot (no
    quorum, a node stuck), they are killed — their data is about to be deleted anyway.
    """
    paths = ClusterPaths(home, check_name(name))
    cluster = LocalCluster.load(paths)
    if wipe and not confirm(name):
        raise RefusedError(
            f"not wiping local cluster {name!r}: not confirmed",
            hint="type the cluster name when asked, or pass --yes",
        )
    with cluster.journaled("down", {"wipe": wipe, "timeout": timeout, "grace": grace}):
        if not wipe:
            return _stop(cluster, timeout=timeout, force=False, grace=grace)
        results = _stop_for_wipe(cluster, timeout=timeout, grace=grace)
    _wipe(cluster)  # after the journal's end record: its file goes too, nothing is left
    return results


def _stop_for_wipe(cluster: LocalCluster, *, timeout: float, grace: float) -> list[dict[str, object]]:
    """Stop every node, gracefully when it can, else kill them; refuse if any still runs."""
    name = cluster.state.name
    results: list[dict[str, object]] = []
    with SignalCounter("stopping before the wipe; press Ctrl-C again to kill the nodes") as intr:
        try:
            results = cluster.stop(interrupts=intr, drain_timeout=timeout, grace=grace)
        except (RoachctlError, ForceStop) as exc:
            if isinstance(exc, RoachctlError):
                console().print(f"[yellow]warning:[/] {exc.render()}\nkilling the nodes instead")
            results = cluster.kill()
    cluster.reload()
    if cluster.running_nodes():
        raise RefusedError(
            f"local cluster {name!r} still has running nodes; nothing was deleted",
            hint="run `roachctl local stop --force` first",
        )
    return results


def sql(home: Path, name: str, statements: Sequence[str]) -> None:
    """Run `cockroach sql` against a ready node: with `-e` statements, or interactively."""
    cluster = LocalCluster.load(ClusterPaths(home, check_name(name)))
    cluster.check_binary()
    target = next((n for n, _ in cluster.running_nodes() if cluster.endpoint.probe(n).ready), None)
    if target is None:
        raise RefusedError(
            f"local cluster {name!r} has no ready node",
            hint=f"start it with `roachctl local start --name {name}`",
        )
    argv = [
        str(cluster.binary),
        *client_args(["sql"], host=target.sql_addr, cluster_name=None),
        *cluster.endpoint.flags(),
    ]
    interactive = not statements
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if interactive else None
    try:
        # Statements go on stdin, not in argv (/proc/*/cmdline is world-readable; contract §10).
        done = subprocess.run(
            argv, cwd=cluster.paths.dir, check=False, input=None if interactive else sql_stdin(statements)
        )
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if done.returncode != 0 and not interactive:
        raise RemoteCommandError(
            f"`cockroach sql` exited with {done.returncode}",
            where=f"local node n{target.index}",
            returncode=done.returncode,
        )
