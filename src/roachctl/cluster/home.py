"""Controller-side state of one remote cluster: `<home>/clusters/<name>/`.

Layout (interface.md, "--home"):
  topology.yaml        the topology last deployed (a copy, so `start CLUSTER` needs no file)
  ca/ca.crt, ca/ca.key the cluster CA; the key is 0600 and never leaves this directory
  certs/               ca.crt + client.root.crt/key for the operator (`roachctl sql`, scripts)
  nodes/<host>/        node.crt + node.key per node, reused across deploys (idempotence)
  state.json           facts roachctl must remember: initialized, cluster id, deployed version
  journal.jsonl        append-only log of operations and their per-host outcome
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from roachctl.errors import UsageError
from roachctl.fsutil import atomic_write, private_dir
from roachctl.model.types import NAME_RE
from roachctl.tls import pki, store

RENEW_BEFORE = dt.timedelta(days=30)
EPHEMERAL_CLIENT_LIFETIME = dt.timedelta(hours=2)


@dataclass
class ClusterState:
    """What roachctl remembers about a cluster between commands."""

    name: str
    initialized: bool = False
    cluster_id: str = ""
    version: str = ""
    deployed_at: float = 0.0
    hosts: list[str] = field(default_factory=list)


class ClusterHome:
    """Files of one cluster under roachctl's home directory."""

    def __init__(self, home: Path, name: str) -> None:
        check_name(name)  # before any path is built: `../x` must never leave `clusters/`
        self.name = name
        self.root = home
        self.dir = home / "clusters" / name
        self._ca: pki.KeyPair | None = None
        self._ca_loaded_at: tuple[tuple[int, int, int], ...] | None = None

    @classmethod
    def list_names(cls, home: Path) -> list[str]:
        root = home / "clusters"
        if not root.is_dir():
            return []
        return sorted(
            p.name for p in root.iterdir() if NAME_RE.fullmatch(p.name) and (p / "state.json").is_file()
        )

    @property
    def topology_path(self) -> Path:
        return self.dir / "topology.yaml"

    @property
    def ca_dir(self) -> Path:
        return self.dir / "ca"

    @property
    def certs_dir(self) -> Path:
        return self.dir / "certs"

    @property
    def state_path(self) -> Path:
        return self.dir / "state.json"

    @property
    def journal_path(self) -> Path:
        return self.dir / "journal.jsonl"

    def exists(self) -> bool:
        return self.state_path.is_file()

    def require(self) -> None:
        """Fail with a clear message when the cluster was never deployed from this home."""
        if not self.exists():
            raise UsageError(
                f"no cluster named {self.name!r} in {self.dir.parent}",
                hint="deploy it first with `roachctl deploy TOPOLOGY.yaml`, or pass the right --home "
                "(see `roachctl list`)",
            )

    # -- state -------------------------------------------------------------------------------

    def load_state(self) -> ClusterState:
        """The remembered state; a corrupt file is a usage error naming it (never a traceback)."""
        if not self.state_path.is_file():
            return ClusterState(name=self.name)
        try:
            raw = json.loads(self.state_path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict):
                raise ValueError("it is not a JSON object")
            return _checked_state(raw)
        except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise UsageError(
                f"the state file of cluster {self.name!r} is corrupt: {exc}",
                where=str(self.state_path),
                hint="restore it from a backup, or remove it and run `roachctl deploy TOPOLOGY.yaml` "
                "again to rewrite it (start then re-runs init, which is safe)",
            ) from None

    def save_state(self, state: ClusterState) -> None:
        private_dir(self.dir)
        atomic_write(self.state_path, (json.dumps(asdict(state), indent=2) + "\n").encode(), 0o600)

    def save_topology(self, text: bytes) -> None:
        private_dir(self.dir)
        atomic_write(self.topology_path, text, 0o600)

    def journal(self, event: str, **fields: Any) -> None:
        """Append one operation record (never rewritten)."""
        private_dir(self.dir)
        line = json.dumps({"ts": time.time(), "event": event, **fields}, sort_keys=True)
        with self.journal_path.open("a") as handle:
            handle.write(line + "\n")

    # -- certificates ------------------------------------------------------------------------

    def ca(self) -> pki.KeyPair:
        """The cluster CA, created on first use; its key stays in `ca/` (0600).

        Cached while its files are unchanged: loading validates the RSA key (~30 ms), and a
        deploy or a status asks for it per host and per probe; a replaced CA is still noticed.
        """
        stamp = self._ca_stamp()
        if self._ca is None or stamp != self._ca_loaded_at or stamp is None:
            self._ca = store.load_or_create_ca(self.ca_dir)
            self._ca_loaded_at = self._ca_stamp()
        return self._ca

    def _ca_stamp(self) -> tuple[tuple[int, int, int], ...] | None:
        """(inode, size, mtime) of ca.crt and ca.key, or None when either is missing."""
        try:
            stats = [(self.ca_dir / name).stat() for name in (store.CA_CERT, store.CA_KEY)]
        except FileNotFoundError:
            return None
        return tuple((st.st_ino, st.st_size, st.st_mtime_ns) for st in stats)

    def operator_certs(self) -> Path:
        """ca.crt + client.root.{crt,key} for the operator, created once and kept up to date."""
        ca = self.ca()
        cert = self.certs_dir / store.client_cert_name("root")
        if not cert.is_file() or _expires_soon(cert.read_bytes()) or not _same_ca(self.certs_dir, ca):
            store.write_client_certs(self.certs_dir, ca, "root")
        return self.certs_dir

    def ephemeral_client(self, user: str = "root") -> pki.KeyPair:
        """A short-lived client cert for one operation on a node; never written to disk here."""
        return pki.create_client_cert(self.ca(), user, lifetime=EPHEMERAL_CLIENT_LIFETIME)

    def node_cert(self, host: str, addresses: Iterable[str]) -> tuple[bytes, bytes]:
        """(node.crt, node.key) PEM for `host`, reused while it covers `addresses` and is fresh.

        Reuse is what makes a second `deploy` a no-op: the same bytes are desired again.
        """
        wanted = [a for a in dict.fromkeys(addresses) if a]
        node_dir = private_dir(self.dir / "nodes" / host)
        cert_path, key_path = node_dir / store.NODE_CERT, node_dir / store.NODE_KEY
        ca = self.ca()
        if cert_path.is_file() and key_path.is_file():
            cert_pem = cert_path.read_bytes()
            if (
                set(wanted) <= set(pki.cert_sans(cert_pem))
                and not _expires_soon(cert_pem)
                and _issued_by(cert_pem, ca)
            ):
                return cert_pem, key_path.read_bytes()
        node = pki.create_node_cert(ca, wanted)
        atomic_write(key_path, node.key_pem(), 0o600)
        atomic_write(cert_path, node.cert_pem(), 0o644)
        return node.cert_pem(), node.key_pem()


def check_name(name: str) -> str:
    """A cluster name as the topology allows it (model/types.py NAME_RE), else a usage error."""
    if not NAME_RE.fullmatch(name):
        raise UsageError(
            f"invalid cluster name {name!r}",
            hint="cluster names are 1-40 lowercase letters, digits and '-' (see `roachctl list`)",
        )
    return name


#: The type each state.json key must have (bool is not accepted as a number).
_STATE_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "initialized": (bool,), "cluster_id": (str,), "version": (str,),
    "deployed_at": (int, float), "hosts": (list,),
}  # fmt: skip


def _checked_state(raw: dict[str, Any]) -> ClusterState:
    """A ClusterState from parsed JSON, every known key type-checked (unknown keys ignored)."""
    for key, kinds in _STATE_TYPES.items():
        if key not in raw:
            continue
        value = raw[key]
        if (bool in kinds) != isinstance(value, bool) or not isinstance(value, kinds):
            raise ValueError(f"{key!r} must be {' or '.join(k.__name__ for k in kinds)}, not {_kind(value)}")
    if "name" not in raw:
        raise ValueError("'name' is missing")
    if not all(isinstance(h, str) for h in raw.get("hosts", [])):
        raise ValueError("'hosts' must be a list of strings")
    return ClusterState(**{k: v for k, v in raw.items() if k in _STATE_TYPES})


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _expires_soon(cert_pem: bytes) -> bool:
    return pki.cert_not_after(cert_pem) - dt.datetime.now(dt.UTC) < RENEW_BEFORE


def _issued_by(cert_pem: bytes, ca: pki.KeyPair) -> bool:
    """True when `cert_pem` was signed by this CA (a re-created CA invalidates old node certs)."""
    try:
        x509.load_pem_x509_certificate(cert_pem).verify_directly_issued_by(ca.cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _same_ca(certs_dir: Path, ca: pki.KeyPair) -> bool:
    path = certs_dir / store.CA_CERT
    return path.is_file() and path.read_bytes() == ca.cert_pem()
