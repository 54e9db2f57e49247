"""On-disk layout of certificates: node certs dirs, client certs dirs, and the CA key kept apart.

CockroachDB file names (docs/cockroach-contract.md §7): ca.crt, node.crt, node.key,
client.<user>.crt, client.<user>.key. ca.key must never be inside a certs dir.
Keys are written 0600, certificates 0644, atomically.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from roachctl.fsutil import atomic_write, private_dir
from roachctl.tls import pki

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
NODE_CERT = "node.crt"
NODE_KEY = "node.key"


def client_cert_name(user: str) -> str:
    return f"client.{user}.crt"


def client_key_name(user: str) -> str:
    return f"client.{user}.key"


def load_or_create_ca(ca_dir: Path) -> pki.KeyPair:
    """Load the CA from `ca_dir` (ca.crt + ca.key), creating it on first use.

    `ca_dir` is roachctl's private state dir; it is made 0700 and the key 0600.
    """
    private_dir(ca_dir)
    cert_path, key_path = ca_dir / CA_CERT, ca_dir / CA_KEY
    if cert_path.exists() and key_path.exists():
        return pki.load_keypair(cert_path.read_bytes(), key_path.read_bytes())
    ca = pki.create_ca()
    atomic_write(key_path, ca.key_pem(), 0o600)
    atomic_write(cert_path, ca.cert_pem(), 0o644)
    return ca


def write_node_certs(certs_dir: Path, ca: pki.KeyPair, hosts: Iterable[str]) -> pki.KeyPair:
    """Write ca.crt, node.crt and node.key (0600) for a node reachable as `hosts`."""
    private_dir(certs_dir)
    node = pki.create_node_cert(ca, hosts)
    atomic_write(certs_dir / CA_CERT, ca.cert_pem(), 0o644)
    atomic_write(certs_dir / NODE_KEY, node.key_pem(), 0o600)
    atomic_write(certs_dir / NODE_CERT, node.cert_pem(), 0o644)
    return node


def write_client_certs(certs_dir: Path, ca: pki.KeyPair, user: str = "root") -> pki.KeyPair:
    """Write ca.crt, client.<user>.crt and client.<user>.key (0600)."""
    private_dir(certs_dir)
    client = pki.create_client_cert(ca, user)
    atomic_write(certs_dir / CA_CERT, ca.cert_pem(), 0o644)
    atomic_write(certs_dir / client_key_name(user), client.key_pem(), 0o600)
    atomic_write(certs_dir / client_cert_name(user), client.cert_pem(), 0o644)
    return client
