"""Choosing ports for a new local cluster: pure planning plus a probe of what the machine uses.

Policy (TiUP playground's "alloc_free" for defaults; explicit requests honoured or refused):
``--base-port`` / ``--http-base-port`` are starting points. Each node takes the next port at or
above the previous one that is not reserved by another local cluster (their state files) and
not in use on the machine. When the user *explicitly* asked for a base port, a port in use by
some other program is an error rather than silently skipped: the user asked for that port and
should know why they didn't get it. Ports of other roachctl clusters are always skipped, so two
local clusters never collide.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from roachctl.errors import RefusedError, UsageError

DEFAULT_SQL_BASE = 26257
DEFAULT_HTTP_BASE = 8080
MAX_PORT = 65535


@dataclass(frozen=True)
class NodePorts:
    sql: int
    http: int


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True if `port` cannot be bound on `host` right now (something listens on it).

    SO_REUSEADDR matches what cockroach itself does, so sockets in TIME_WAIT don't count.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def check_base(flag: str, base: int) -> None:
    if not 1024 <= base <= MAX_PORT:
        raise UsageError(
            f"{flag} {base} is out of range", where=flag, hint="use a port between 1024 and 65535"
        )


def plan_ports(
    count: int,
    *,
    sql_base: int = DEFAULT_SQL_BASE,
    http_base: int = DEFAULT_HTTP_BASE,
    explicit_sql: bool = False,
    explicit_http: bool = False,
    reserved: Mapping[int, str] | None = None,
    in_use: Callable[[int], bool] = port_in_use,
) -> list[NodePorts]:
    """Choose (sql, http) ports for `count` nodes; pure except for the injected `in_use` probe.

    Args:
        reserved: ports held by other local clusters (port -> cluster name); always skipped.
        explicit_sql / explicit_http: the base was given by the user: a port in use by
            another program is an error (RefusedError) instead of being skipped.
    """
    check_base("--base-port", sql_base)
    check_base("--http-base-port", http_base)
    held = dict(reserved or {})
    taken: set[int] = set()

    def pick(start: int, flag: str, explicit: bool, what: str) -> int:
        port = start
        while port <= MAX_PORT:
            if port in held or port in taken:
                port += 1
                continue
            if in_use(port):
                if explicit:
                    raise RefusedError(
                        f"port {port} ({what}) is already in use by another program",
                        where=flag,
                        hint=f"stop that program, pick another {flag}, or omit {flag} to let roachctl "
                        "choose free ports",
                    )
                port += 1
                continue
            taken.add(port)
            return port
        raise RefusedError(
            f"no free port at or above {start} for {what}", where=flag, hint=f"pick a lower {flag}"
        )

    plan: list[NodePorts] = []
    for i in range(1, count + 1):
        sql_start = plan[-1].sql + 1 if plan else sql_base
        http_start = plan[-1].http + 1 if plan else http_base
        sql = pick(sql_start, "--base-port", explicit_sql, f"node {i} SQL/RPC")
        http = pick(http_start, "--http-base-port", explicit_http, f"node {i} HTTP")
        plan.append(NodePorts(sql, http))
    return plan
