"""Certificates of a local cluster, made with roachctl's own PKI (tls/).

Layout: ``ca/ca.crt`` + ``ca/ca.key`` (dir 0700, key 0600 — never in a certs dir) and one shared
``certs/`` dir (0700) with ca.crt, node.crt/node.key and client.root.crt/key (keys 0600) that
every node and client command uses. The node cert names every address a node is reached by
here: ``localhost`` and ``127.0.0.1`` (nodes listen and advertise on 127.0.0.1).
"""

from __future__ import annotations

import datetime as dt

from roachctl.local.layout import ClusterPaths
from roachctl.local.state import HOST
from roachctl.tls import pki, store

NODE_HOSTS = ("localhost", HOST)


def create(paths: ClusterPaths) -> None:
    """Create the CA, the node cert and the root client cert of a new local cluster.

    The CA dir is new (`local up` refuses an existing cluster): the CA is created exclusively.
    """
    ca = store.create_ca(paths.ca_dir)
    store.write_node_certs(paths.certs, ca, NODE_HOSTS)
    store.write_client_certs(paths.certs, ca, "root")


def expiry(paths: ClusterPaths) -> dict[str, dt.datetime]:
    """Expiry (UTC) of each certificate in the certs dir: ca, node, client.root."""
    found: dict[str, dt.datetime] = {}
    for label, name in (
        ("ca", store.CA_CERT),
        ("node", store.NODE_CERT),
        ("client.root", store.client_cert_name("root")),
    ):
        path = paths.certs / name
        if path.is_file():
            found[label] = pki.cert_not_after(path.read_bytes())
    return found


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
