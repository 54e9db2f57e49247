"""IPv6 advertise addresses: every `host:port` roachctl builds is bracketed (docs/findings.md F-M3).

`--host` for client commands, `node status` address matching, the operator's URLs and the
`ssh -W` readiness pipe all go through `model.netaddr.host_port`; these tests check each use, and
that the real consumers (OpenSSH, the stand-in, which is as strict as cockroach's
`addr.SplitHostPort`, docs/cockroach-contract.md §2.1) refuse the unbracketed form.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import urllib.parse
from pathlib import Path
from types import SimpleNamespace

import pytest

from roachctl.cluster import endpoints
from roachctl.cluster.lifecycle import refuse_if_quorum_lost
from roachctl.cluster.nodes import NodeTarget
from roachctl.cluster.nodestatus import NodeStatus
from roachctl.errors import RefusedError
from roachctl.exec.openssh import OpenSSH
from roachctl.model.loader import load_text
from roachctl.model.netaddr import host_port
from roachctl.plan.render import join_list
from tests.support.standin_harness import run_cli

V6 = {"h1": "fd00::11", "h2": "fd00::12", "h3": "fd00::13"}
TARGETS = [
    NodeTarget(h, a, 26257, 8080, "cockroach.service", "/opt/cockroach/cockroach") for h, a in V6.items()
]


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("10.0.0.11", "10.0.0.11:26257"),
        ("store-1.example.com", "store-1.example.com:26257"),
        ("fd00::11", "[fd00::11]:26257"),
        ("::1", "[::1]:26257"),
        ("2001:db8::ffff:10.0.0.1", "[2001:db8::ffff:10.0.0.1]:26257"),
    ],
)
def test_host_port_brackets_ipv6_only(address: str, expected: str) -> None:
    assert host_port(address, 26257) == expected


def test_node_targets_bracket_ipv6() -> None:
    assert TARGETS[0].rpc_addr == "[fd00::11]:26257"
    assert TARGETS[0].http_addr == "[fd00::11]:8080"
    v4 = NodeTarget("h", "10.0.0.1", 26257, 8080, "u", "b")
    assert (v4.rpc_addr, v4.http_addr) == ("10.0.0.1:26257", "10.0.0.1:8080")


def test_operator_urls_bracket_ipv6() -> None:
    insecure = SimpleNamespace(topology=SimpleNamespace(secure=False))
    sql = endpoints.sql_url(insecure, TARGETS[0])  # type: ignore[arg-type]
    assert sql == "postgresql://root@[fd00::11]:26257/defaultdb?sslmode=disable"
    parsed = urllib.parse.urlsplit(sql)
    assert (parsed.hostname, parsed.port) == ("fd00::11", 26257)
    secure = SimpleNamespace(topology=SimpleNamespace(secure=True))
    http = urllib.parse.urlsplit(endpoints.http_url(secure, TARGETS[0]))  # type: ignore[arg-type]
    assert (http.scheme, http.hostname, http.port) == ("https", "fd00::11", 8080)


def test_join_and_advertise_use_the_same_helper() -> None:
    topology = load_text(
        "name: p\nversion: v25.4.0\nnodes:\n"
        + "".join(f"  - {{host: {h}, advertise: '{a}'}}\n" for h, a in V6.items())
    )
    assert join_list(topology) == tuple(t.rpc_addr for t in TARGETS)


@pytest.mark.skipif(shutil.which("ssh") is None, reason="no OpenSSH client")
def test_ssh_pipe_target_is_one_openssh_accepts() -> None:
    """`ssh -G` parses -W like a real connection would, without connecting."""

    async def argv(target: str) -> list[str]:
        async with OpenSSH() as ssh:
            full = ssh.executor("h1").pipe_argv(target)
        return [full[0], "-G", *full[1:]]

    def parses(target: str) -> bool:
        return subprocess.run(asyncio.run(argv(target)), capture_output=True, check=False).returncode == 0

    assert parses(TARGETS[0].http_addr)
    assert not parses("fd00::11:8080"), "the unbracketed form must be what OpenSSH refuses"


def test_the_standin_refuses_an_unbracketed_ipv6_host_like_cockroach(tmp_path: Path) -> None:
    res = run_cli("node", "status", "--insecure", "--host=fd00::11:26257")
    assert res.returncode != 0
    assert 'invalid address format: "fd00::11:26257"' in res.stderr, res.stderr
    assert "enclose IPv6 addresses within [...]" in res.stderr


class _Rows:
    """`node status` as cockroach reports it for IPv6 advertise addresses: bracketed."""

    def __init__(self, live: set[str]) -> None:
        self.rows = [
            NodeStatus(i + 1, f"[{a}]:26257", f"[{a}]:26257", "v25.4.0", True, h in live, membership="active")
            for i, (h, a) in enumerate(V6.items())
        ]

    async def status_from_any(
        self, candidates: list[NodeTarget], *, ranges: bool = False
    ) -> list[NodeStatus]:
        return self.rows


def test_quorum_check_matches_bracketed_node_status_addresses() -> None:
    """h1 is down but its liveness record still says live: it must not be counted (needs matching)."""
    client = _Rows({"h1", "h2", "h3"})
    with pytest.raises(RefusedError, match=r"leave 1 of 3 nodes up \(h1 not running\)"):
        asyncio.run(refuse_if_quorum_lost(client, TARGETS, TARGETS[1], {"h2", "h3"}))  # type: ignore[arg-type]


def test_unbracketed_ipv6_join_targets_are_refused_in_the_topology() -> None:
    from roachctl.errors import TopologyError

    text = "name: p\nversion: v25.4.0\njoin: ['fd00::11:26257']\nnodes:\n  - host: h1\n"
    with pytest.raises(TopologyError) as info:
        load_text(text)
    assert "needs brackets" in info.value.render() and "[fd00::11]:26257" in info.value.render()
    ok = load_text(text.replace("'fd00::11:26257'", "'[fd00::11]:26257'"))
    assert ok.join == ("[fd00::11]:26257",)
