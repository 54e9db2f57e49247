"""Talking to local nodes: HTTP readiness probes and `cockroach` client commands (init, drain, ...).

Readiness is ``GET /health?ready=1`` (200 only when the node is live and accepts SQL;
cockroach-contract.md §6), over HTTPS verified against the cluster's ca.crt — the same check a
load balancer makes. Client commands run the cluster's own binary with explicit ``--host`` and
``--certs-dir`` (or ``--insecure``), in their own session so a Ctrl-C in roachctl's terminal
never cuts them in half; roachctl decides what an interrupt means.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from roachctl.cluster.nodestatus import parse_node_status_json
from roachctl.errors import RemoteCommandError
from roachctl.local.state import HOST, NodeState
from roachctl.model.netaddr import host_port
from roachctl.plan.clientargv import client_args

PROBE_TIMEOUT = 2.0


@dataclass(frozen=True)
class HealthProbe:
    """The answer of one /health probe: up = HTTP answered; ready = 200 on ?ready=1."""

    up: bool
    ready: bool
    detail: str


@dataclass(frozen=True)
class Endpoint:
    """How to reach a cluster: secure (certs dir with ca.crt + client.root.*) or insecure."""

    certs_dir: Path | None

    @property
    def scheme(self) -> str:
        return "https" if self.certs_dir else "http"

    def http_url(self, node: NodeState) -> str:
        return f"{self.scheme}://{host_port(HOST, node.http_port)}"

    def sql_url(self, node: NodeState, user: str = "root") -> str:
        """A libpq URL like the one cockroach prints (params sorted; absolute cert paths)."""
        if self.certs_dir is None:
            params = {"sslmode": "disable"}
        else:
            params = {
                "sslcert": str(self.certs_dir / f"client.{user}.crt"),
                "sslkey": str(self.certs_dir / f"client.{user}.key"),
                "sslmode": "verify-full",
                "sslrootcert": str(self.certs_dir / "ca.crt"),
            }
        query = urllib.parse.urlencode(sorted(params.items()), safe="")
        return f"postgresql://{user}@{host_port(HOST, node.sql_port)}/defaultdb?{query}"

    def flags(self) -> list[str]:
        return [f"--certs-dir={self.certs_dir}"] if self.certs_dir else ["--insecure"]

    def _ssl(self) -> ssl.SSLContext | None:
        if self.certs_dir is None:
            return None
        return ssl.create_default_context(cafile=str(self.certs_dir / "ca.crt"))

    def probe(self, node: NodeState, *, ready: bool = True, timeout: float = PROBE_TIMEOUT) -> HealthProbe:
        """HealthProbe /health (or /health?ready=1) of `node`; never raises."""
        url = self.http_url(node) + ("/health?ready=1" if ready else "/health")
        try:
            with urllib.request.urlopen(url, timeout=timeout, context=self._ssl()) as resp:
                resp.read()
                return HealthProbe(True, ready and resp.status == 200, "ready" if ready else "up")
        except urllib.error.HTTPError as exc:
            return HealthProbe(True, False, _health_error(exc))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return HealthProbe(False, False, f"not answering: {reason}")


def _health_error(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read().decode() or "{}")
        return str(body.get("error") or body.get("message") or f"HTTP {exc.code}")
    except (ValueError, OSError):
        return f"HTTP {exc.code}"


@dataclass(frozen=True)
class ClientResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def summary(self) -> str:
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return " / ".join(text[-3:]) if text else f"exit {self.returncode}"


def run_client(
    binary: Path, args: list[str], endpoint: Endpoint, node: NodeState, *, cwd: Path, timeout: float
) -> ClientResult:
    """Run ``cockroach <args> --host=<node> <cert flags>``; a timeout is a failed ClientResult.

    Local clusters are started without `--cluster-name`, so no client command passes one.
    """
    argv = [str(binary), *client_args(args, host=node.sql_addr, cluster_name=None), *endpoint.flags()]
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return ClientResult(124, out, f"timed out after {timeout:.0f}s")
    except OSError as exc:
        return ClientResult(127, "", str(exc))
    return ClientResult(done.returncode, done.stdout, done.stderr)


def liveness(
    binary: Path, endpoint: Endpoint, node: NodeState, *, cwd: Path, timeout: float = 15.0
) -> dict[str, tuple[int, bool]] | None:
    """The cluster's own view (``node status --format=json``): address -> (node id, is_live).

    None when the query fails (e.g. no quorum): liveness is then unknown, not false.
    """
    res = run_client(binary, ["node", "status", "--format=json"], endpoint, node, cwd=cwd, timeout=timeout)
    if not res.ok:
        return None
    try:
        rows = parse_node_status_json(res.stdout)
    except RemoteCommandError:
        return None
    return {row.address: (row.node_id, row.is_live) for row in rows}
