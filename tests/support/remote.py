"""Shared helpers for the remote-cluster integration tests (no tests here).

The CLI runs as a real subprocess (`.venv/bin/roachctl --home H --ssh-config BED --yes ...`);
what it did is checked on the hosts with `bed.exec` (nsenter into the host as root: ~6 ms a
command against ~270 ms for a fresh `bed.ssh` login), never through roachctl's code. Every wait
is a bounded poll of a condition.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from roachctl.exec.openssh import OpenSSH
from roachctl.model.loader import load_topology
from roachctl.operation.session import ssh_options
from tests.support.bed import Bed
from tests.support.release_fixtures import Releases
from tests.support.stopcheck import assert_stop_sequence

T = TypeVar("T")

ROACHCTL = Path(sys.executable).with_name("roachctl")
DATA = "/var/lib/cockroach"
STORE = f"{DATA}/cockroach-data"
EVENTS = f"{STORE}/standin-events.jsonl"
HOME = "/opt/cockroach"
CERTS = f"{HOME}/certs"
UNIT = "cockroach"
SQL_PORT, HTTP_PORT = 26257, 8080


def topology_text(name: str, hosts: Iterable[str], version: str, *, extra: str = "") -> str:
    """A topology for the bed: the `deploy` user with sudo, nodes by their ssh names."""
    nodes = "".join(f"  - host: {h}\n" for h in hosts)
    return f"name: {name}\nversion: {version}\nssh:\n  user: deploy\n  sudo: true\n{extra}nodes:\n{nodes}"


@dataclass
class Remote:
    """One cluster driven through the CLI: its home, topology file and bed."""

    bed: Bed
    work: Path
    name: str
    version: str
    tarball: Path | None = None
    hosts: list[str] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.work / "home"

    @property
    def topology(self) -> Path:
        return self.work / f"{self.name}.yaml"

    def write_topology(self, extra: str = "") -> Path:
        self.topology.write_text(topology_text(self.name, self.hosts, self.version, extra=extra))
        return self.topology

    def run(
        self,
        *args: str,
        timeout: float = 240,
        ssh_config: Path | None = None,
        env: dict[str, str] | None = None,
        input: str | None = None,
    ) -> Completed:
        """`roachctl --home H --ssh-config C --yes ARGS` (stdout: JSON data; stderr: human output).

        stdin is empty, or `input` (a pipe: never a terminal)."""
        config = ssh_config or self.bed.ssh_config
        argv = [str(ROACHCTL), "--home", str(self.home), "--ssh-config", str(config), "--yes", "--no-color"]
        started = time.time()
        res = subprocess.run(
            [*argv, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input or "",
            env={**os.environ, "COLUMNS": "200", **(env or {})},
            check=False,
        )
        done = Completed(list(args), res.returncode, res.stdout, res.stderr, started, time.time())
        print(f"[{done.ended - started:5.1f}s] roachctl {' '.join(args)} -> {res.returncode}")  # in reports
        return done

    def deploy(
        self, *extra: str, env: dict[str, str] | None = None, ssh_config: Path | None = None
    ) -> Completed:
        source = ["--tarball", str(self.tarball)] if self.tarball else []
        return self.run("deploy", str(self.topology), *source, *extra, env=env, ssh_config=ssh_config)

    def drop_connections(self) -> None:
        """Close the ssh masters earlier commands left for this home (docs/interface.md "ssh
        connections"), as if `ssh.persist` had passed: the next command connects anew, so it sees
        what sshd allows now (a connection keeps the settings it was made with)."""
        options = ssh_options(load_topology(self.topology), ssh_config=self.bed.ssh_config)
        ssh = OpenSSH(options, share_key=str(self.home.resolve()))  # only for the dir it would use
        try:
            for sock in (p for p in ssh.control_dir.iterdir() if p.is_socket()):
                subprocess.run(
                    ["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"], capture_output=True, check=False
                )
        finally:
            asyncio.run(ssh.close())  # a private dir (sharing not possible) is removed, not leaked

    def status(self, *flags: str) -> dict[str, Any]:
        res = self.run("--json", "status", self.name, *flags)
        assert res.rc == 0, res.text
        data: dict[str, Any] = json.loads(res.out)
        return data

    def sh(self, host: str, cmd: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`sh -c CMD` as root inside the host (BedError when `check` and it fails)."""
        return sh(self.bed, host, cmd, check=check)

    def events(self, host: str) -> list[dict[str, Any]]:
        """The stand-in's event log of the node on `host` (oldest first)."""
        out = self.sh(host, f"cat {EVENTS} 2>/dev/null || true").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def all_events(self) -> dict[str, list[dict[str, Any]]]:
        return {h: self.events(h) for h in self.hosts}

    def assert_stops(self, since: float, *, graceful: list[str], hard: list[str], grace: float) -> None:
        """`assert_stop_sequence` on this cluster's event logs since `since`, each hard stop timed by
        the SIGKILL in its host's journal (`kills`)."""
        events = self.all_events()
        assert_stop_sequence(
            events, since, graceful=graceful, hard=hard, grace=grace, killed=self.kills(since, hard)
        )

    def kills(self, since: float, expect: Iterable[str]) -> dict[str, float]:
        """{host: when systemd saw its node's main process die of SIGKILL} since `since` (epoch s), from
        each host's journal (it outlives the unit: `destroy` removes that). journald may log a moment
        after the command returned: waits (bounded) until every host in `expect` has its entry."""

        def read() -> dict[str, float]:
            found: dict[str, float] = {}
            for host in self.hosts:
                cmd = f"journalctl -q -u {UNIT} -o json --since @{since:.3f}"
                for line in self.sh(host, cmd, check=False).stdout.splitlines():
                    entry = json.loads(line) if line.startswith("{") else {}
                    if "code=killed, status=9/KILL" in str(entry.get("MESSAGE", "")):
                        found.setdefault(host, int(entry["__REALTIME_TIMESTAMP"]) / 1e6)
            return found

        wanted = set(expect)
        deadline = time.monotonic() + 15
        found = read()
        while not wanted <= set(found) and time.monotonic() < deadline:
            time.sleep(0.5)
            found = read()
        return found

    def show(self, host: str, *props: str, unit: str = UNIT) -> dict[str, str]:
        """`systemctl show UNIT -p ...` on the host, as a dict."""
        out = self.sh(host, f"systemctl show {unit} -p {','.join(props)}").stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@dataclass
class Completed:
    """A finished CLI run, with its wall-clock window (to pick events that happened during it)."""

    args: list[str]
    rc: int
    out: str
    err: str
    started: float
    ended: float

    @property
    def text(self) -> str:
        return f"roachctl {' '.join(self.args)} -> exit {self.rc}\nstdout:\n{self.out}\nstderr:\n{self.err}"


def sh(bed: Bed, host: str, cmd: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`sh -c CMD` as root inside `host` via nsenter (works while the host is cut off the network)."""
    return bed.exec(host, ["sh", "-c", cmd], check=check)


def wait_for(what: str, fn: Callable[[], T | None], timeout: float = 60, interval: float = 0.5) -> T:
    """Poll `fn` until it returns something truthy; fail naming `what` (and the last value)."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def names(events: list[dict[str, Any]], since: float = 0.0) -> list[str]:
    return [e["event"] for e in events if e["ts"] >= since]


def cluster_ids(events: dict[str, list[dict[str, Any]]], since: float = 0.0) -> set[str]:
    """Every cluster id the nodes reported (init/joined/ready) since `since`."""
    return {
        e["cluster_id"] for evs in events.values() for e in evs if e["ts"] >= since and e.get("cluster_id")
    }


def down_intervals(events: list[dict[str, Any]], since: float) -> list[tuple[float, float]]:
    """When this node was not serving: from a `drain_begin`/`exit` to the next `ready`.

    An interval still open at the end of the log ends at +inf (the node never came back).
    """
    intervals: list[tuple[float, float]] = []
    down: float | None = None
    for e in events:
        if e["ts"] < since:
            continue
        if e["event"] in ("drain_begin", "exit", "hard_shutdown", "start") and down is None:
            down = e["ts"]
        elif e["event"] == "ready" and down is not None:
            intervals.append((down, e["ts"]))
            down = None
    if down is not None:
        intervals.append((down, float("inf")))
    return intervals


def stat_listing(bed: Bed, host: str, paths: Iterable[str]) -> dict[str, str]:
    """path -> "type inode mtime ctime mode owner group [link target]" for every path below `paths`."""
    roots = " ".join(paths)
    cmd = f"find {roots} -xdev -printf '%p\\t%y %i %T@ %C@ %m %u %g %l\\n' 2>/dev/null || true"
    out = sh(bed, host, cmd).stdout
    return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)


def new_remote(
    bed: Bed, releases: Releases, work: Path, name: str, *, extra: str = "", hosts: list[str] | None = None
) -> Remote:
    """A cluster on `bed`'s hosts (or `hosts`) with the stand-in release, its topology written."""
    remote = Remote(
        bed,
        work,
        name,
        releases.new,
        tarball=releases.tarball(releases.new),
        hosts=hosts if hosts is not None else [h.name for h in bed.hosts],
    )
    remote.write_topology(extra)
    return remote


def running_remote(bed: Bed, releases: Releases, work: Path, name: str, *, extra: str = "") -> Remote:
    """`new_remote`, deployed and started (every node ready)."""
    remote = new_remote(bed, releases, work, name, extra=extra)
    deployed = remote.deploy()
    assert deployed.rc == 0, deployed.text
    started = remote.run("start", name)
    assert started.rc == 0, started.text
    return remote


class Running:
    """A CLI run in the background whose stderr is read line by line (to act at the right moment)."""

    def __init__(self, rc: Remote, *args: str) -> None:
        argv = [str(ROACHCTL), "--home", str(rc.home), "--ssh-config", str(rc.bed.ssh_config), "--yes"]
        self.proc = subprocess.Popen(
            [*argv, "--no-color", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # deploy's data goes to stdout only with --json
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)

    def wait_line(self, pattern: str, timeout: float = 60) -> str:
        """Block until a stderr line matches `pattern` (regex); fail with what was seen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r} within {timeout}s; saw:\n{''.join(self.seen)}")

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        """Wait for exit; (exit code, all of stderr). Only the reader thread reads the pipe."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        self._reader.join(timeout=10)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return self.proc.returncode, "".join(self.seen)
