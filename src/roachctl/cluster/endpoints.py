"""Where the operator connects to a cluster's nodes: SQL URLs with the client certs under the home,
and DB Console URLs. Its own module because `start` and `status` both print them, and `start` should
not import the status report's layers to do so."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable

from roachctl.cluster.nodes import NodeTarget, targets
from roachctl.operation.session import Session
from roachctl.tls import store


def sql_url(session: Session, target: NodeTarget) -> str:
    """A postgresql:// URL for the operator, with the client certs under roachctl's home."""
    base = f"postgresql://root@{target.rpc_addr}/defaultdb"
    if not session.topology.secure:
        return base + "?sslmode=disable"
    certs = session.home.certs_dir
    query = urllib.parse.urlencode(
        {
            "sslcert": str(certs / store.client_cert_name("root")),
            "sslkey": str(certs / store.client_key_name("root")),
            "sslmode": "verify-full",
            "sslrootcert": str(certs / store.CA_CERT),
        }
    )
    return f"{base}?{query}"


def http_url(session: Session, target: NodeTarget) -> str:
    scheme = "https" if session.topology.secure else "http"
    return f"{scheme}://{target.http_addr}"


def endpoints(session: Session, hosts: Iterable[str]) -> list[dict[str, str]]:
    """Where to connect to `hosts` (topology order): SQL URL and DB Console URL per node.

    The SQL URLs point at the operator's client certs under the home, renewed here first.
    """
    if session.topology.secure:
        session.home.operator_certs()
    chosen = set(hosts)
    return [
        {"host": t.host, "sql_url": sql_url(session, t), "http_url": http_url(session, t)}
        for t in targets(session)
        if t.host in chosen
    ]
