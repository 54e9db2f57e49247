"""Harness for running stand-in `cockroach` processes locally (no containers, no root).

Each cluster binds on its own 127.0.1.X address (X random in 2..250) with OS-assigned free ports so that
parallel test runs of other engineers do not collide. Timing env tunables are shortened (README).
Every process started here is killed in the fixture's teardown.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import json
import os
import random
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from roachctl.tls import pki, store

STANDIN = Path(__file__).resolve().parents[1] / "standin" / "cockroach"

FAST_ENV = {
    "COCKROACH_STANDIN_HEARTBEAT_SECS": "0.25",
    "COCKROACH_STANDIN_LIVENESS_SECS": "3",
    "COCKROACH_STANDIN_JOIN_POLL_SECS": "0.25",
    "COCKROACH_STANDIN_DRAIN_PHASE_SECS": "0.05",
    "COCKROACH_STANDIN_LEASE_ITERATION_SECS": "0.2",
    "COCKROACH_STANDIN_LEASE_TRANSFER_SECS": "0.1",
    "COCKROACH_STANDIN_DIAL_TIMEOUT_SECS": "2",
    "COCKROACH_STANDIN_INIT_WAIT_SECS": "3",
    "COCKROACH_STANDIN_SQL_WAIT_SECS": "3",
    "COCKROACH_STANDIN_DECOMMISSION_SECS": "0.5",
    "COCKROACH_STANDIN_METRICS_SAMPLE_SECS": "1",
}


def load_standin() -> ModuleType:
    """Import the stand-in file as a module (for unit tests of its pure helpers)."""
    loader = importlib.machinery.SourceFileLoader("standin_cockroach", str(STANDIN))
    spec = importlib.util.spec_from_loader("standin_cockroach", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COCKROACH_", "NOTIFY_SOCKET"))}
    env.update(FAST_ENV)
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(STANDIN), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or base_env(),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


def pick_ip() -> str:
    return f"127.0.1.{random.randint(2, 250)}"


_HANDED_OUT: set[tuple[str, int]] = set()


def free_port(ip: str) -> int:
    """An OS-assigned free port on `ip`, never the same one twice in this test process."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((ip, 0))
            port = int(s.getsockname()[1])
        if (ip, port) not in _HANDED_OUT:
            _HANDED_OUT.add((ip, port))
            return port


def wait_for(cond: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class StandinNode:
    """One `cockroach start` process with its own dir, store, certs and output files."""

    def __init__(
        self, cluster: Cluster, idx: int, certs_hosts: list[str] | None = None, ca: pki.KeyPair | None = None
    ) -> None:
        self.cluster, self.idx = cluster, idx
        self.dir = cluster.tmp / f"n{idx}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.store = self.dir / "data"
        self.rpc_port = free_port(cluster.ip)
        self.http_port = free_port(cluster.ip)
        self.certs = self.dir / "certs"
        if cluster.secure:
            store.write_node_certs(self.certs, ca or cluster.ca, certs_hosts or [cluster.ip])
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.env_extra: dict[str, str] = {}

    @property
    def addr(self) -> str:
        return f"{self.cluster.ip}:{self.rpc_port}"

    def argv(self, *extra: str) -> list[str]:
        sec = [f"--certs-dir={self.certs}"] if self.cluster.secure else ["--insecure"]
        return [
            str(STANDIN),
            "start",
            *sec,
            f"--store={self.store}",
            f"--listen-addr={self.addr}",
            f"--http-addr={self.cluster.ip}:{self.http_port}",
            f"--join={self.cluster.join}",
            *extra,
        ]

    def start(self, *extra: str, env: dict[str, str] | None = None) -> StandinNode:
        self.runs += 1
        self.stdout_path = self.dir / f"stdout.{self.runs}"
        self.stderr_path = self.dir / f"stderr.{self.runs}"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.argv(*extra),
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                cwd=self.dir,
                env=env or base_env(**self.env_extra),
            )
        self.cluster.procs.append(self.proc)
        return self

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 15) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def events(self) -> list[dict]:
        path = self.store / "standin-events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def event_names(self, pid: int | None = None) -> list[str]:
        return [e["event"] for e in self.events() if pid is None or e["pid"] == pid]

    def log_text(self) -> str:
        path = self.store / "logs" / "cockroach.log"
        return path.read_text() if path.exists() else ""

    def health(self, ready: bool = True) -> tuple[int, str]:
        scheme = "https" if self.cluster.secure else "http"
        url = f"{scheme}://{self.cluster.ip}:{self.http_port}/health" + ("?ready=1" if ready else "")
        ctx = (
            ssl.create_default_context(cafile=str(self.cluster.client_certs / "ca.crt"))
            if self.cluster.secure
            else None
        )
        try:
            with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return 0, ""

    def is_ready(self) -> bool:
        return self.health()[0] == 200

    def wait_ready(self, timeout: float = 15) -> None:
        wait_for(self.is_ready, timeout, f"n{self.idx} ready")


class Cluster:
    def __init__(self, tmp: Path, ca: pki.KeyPair, *, secure: bool = True, nodes: int = 3) -> None:
        self.tmp, self.ca, self.secure = tmp, ca, secure
        self.ip = pick_ip()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.client_certs = tmp / "client-certs"
        if secure:
            store.write_client_certs(self.client_certs, ca, "root")
        self.nodes: list[StandinNode] = []
        self.join = ""
        for i in range(1, nodes + 1):
            self.add_node(i)
        self.join = ",".join(n.addr for n in self.nodes)

    def add_node(self, idx: int, **kw: object) -> StandinNode:
        node = StandinNode(self, idx, **kw)  # type: ignore[arg-type]
        self.nodes.append(node)
        return node

    def sec_flags(self) -> list[str]:
        return [f"--certs-dir={self.client_certs}"] if self.secure else ["--insecure"]

    def cli(
        self, *args: str, node: StandinNode | None = None, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        target = node or self.nodes[0]
        return run_cli(*args, f"--host={target.addr}", *self.sec_flags(), timeout=timeout)

    def start_all(self) -> None:
        for n in self.nodes:
            n.start()

    def init(self, node: StandinNode | None = None) -> subprocess.CompletedProcess[str]:
        return self.cli("init", node=node)

    def up(self) -> Cluster:
        """Start every node, init through the first, wait until all are ready."""
        self.start_all()
        res = self.init()
        assert res.returncode == 0, res.stderr
        for n in self.nodes:
            n.wait_ready()
        return self

    def status_json(self, *flags: str, node: StandinNode | None = None) -> list[dict]:
        res = self.cli("node", "status", "--format=json", *flags, node=node)
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)

    def kill_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGKILL)
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(5)


@pytest.fixture(scope="session")
def standin_ca() -> pki.KeyPair:
    return pki.create_ca()


@pytest.fixture
def make_cluster(tmp_path: Path, standin_ca: pki.KeyPair) -> Iterator[Callable[..., Cluster]]:
    clusters: list[Cluster] = []

    def make(nodes: int = 3, secure: bool = True, sub: str = "c") -> Cluster:
        c = Cluster(tmp_path / f"{sub}{len(clusters)}", standin_ca, secure=secure, nodes=nodes)
        clusters.append(c)
        return c

    try:
        yield make
    finally:
        for c in clusters:
            c.kill_all()


MakeCluster = Callable[..., Cluster]


def sql(c: Cluster, stmt: str, node: StandinNode | None = None) -> str:
    res = c.cli("sql", "-e", stmt, node=node)
    assert res.returncode == 0, res.stderr
    return res.stdout


def rolling_restart(c: Cluster, version: str) -> None:
    for n in c.nodes:
        n.signal(signal.SIGTERM)
        assert n.wait() == 0
        n.env_extra = {**n.env_extra, "COCKROACH_STANDIN_VERSION": version}
        n.start()
        n.wait_ready()
