"""The local port planner: starting points, other clusters skipped, explicit busy ports refused."""

from __future__ import annotations

import socket

import pytest

from roachctl.errors import ExitCode, RefusedError, UsageError
from roachctl.local.ports import NodePorts, plan_ports, port_in_use


def test_consecutive_ports_from_the_bases() -> None:
    plan = plan_ports(3, sql_base=30000, http_base=31000, in_use=lambda p: False)
    assert plan == [NodePorts(30000, 31000), NodePorts(30001, 31001), NodePorts(30002, 31002)]


def test_ports_of_other_clusters_are_skipped_even_when_explicit() -> None:
    reserved = {30000: "a", 30001: "a", 31000: "a"}
    plan = plan_ports(
        2,
        sql_base=30000,
        http_base=31000,
        explicit_sql=True,
        explicit_http=True,
        reserved=reserved,
        in_use=lambda p: False,
    )
    assert plan == [NodePorts(30002, 31001), NodePorts(30003, 31002)]


def test_busy_ports_are_skipped_by_default() -> None:
    busy = {26257, 26259, 8081}
    plan = plan_ports(3, in_use=busy.__contains__)
    assert [p.sql for p in plan] == [26258, 26260, 26261]
    assert [p.http for p in plan] == [8080, 8082, 8083]


def test_explicitly_requested_busy_port_is_an_error() -> None:
    with pytest.raises(RefusedError, match=r"port 30001 \(node 2 SQL/RPC\) is already in use") as err:
        plan_ports(3, sql_base=30000, http_base=31000, explicit_sql=True, in_use={30001}.__contains__)
    assert err.value.exit_code == ExitCode.REFUSED
    assert "--base-port" in err.value.render()


def test_sql_and_http_ranges_never_overlap() -> None:
    plan = plan_ports(3, sql_base=30000, http_base=30001, in_use=lambda p: False)
    ports = [p for n in plan for p in (n.sql, n.http)]
    assert len(set(ports)) == 6


def test_out_of_range_base_is_bad_input() -> None:
    with pytest.raises(UsageError):
        plan_ports(1, sql_base=80)


def test_port_in_use_probe_sees_a_listener() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert port_in_use(port)
    assert not port_in_use(port)
