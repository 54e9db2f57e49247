"""Controller-side state of one remote cluster: `<home>/clusters/<name>/`.

Layout (interface.md, "--home"):
  topology.yaml        the topology last deployed (a copy, so `start CLUSTER` needs no file)
  ca/ca.crt, ca/ca.key the cluster CA; the key is 0600 and never leaves this directory. Created
                       only by the first deploy of a new cluster, exclusively; never re-created
                       or overwritten (a missing or mismatched file is a refusal, see `ca()`)
  ca/rotation/         only during a CA rotation (`certs rotate --ca`): the new CA (ca.crt, ca.key),
                       the old one (old.crt, old.key) and state.json (its phase, 1-3); renamed to
                       ca/retired-<time>/ when the rotation ends
  certs/               ca.crt + a short-lived client.root.crt/key for the operator (printed URLs)
  nodes/<host>/        node.crt + node.key per node, reused across deploys (idempotence)
  state.json           facts roachctl must remember: initialized, cluster id, deployed version
  journal.jsonl        append-only log of operations and their per-host outcome
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from roachctl.errors import RefusedError, UsageError
from roachctl.fsutil import atomic_write, exclusive_write, private_dir
from roachctl.model.types import NAME_RE
from roachctl.tls import inspect, pki, store

RENEW_BEFORE = dt.timedelta(days=30)
EPHEMERAL_CLIENT_LIFETIME = dt.timedelta(hours=2)
OPERATOR_CLIENT_LIFETIME = dt.timedelta(hours=24)
OPERATOR_RENEW_BEFORE = dt.timedelta(hours=12)
DEFAULT_NODE_CA = "/opt/cockroach/certs/ca.crt"  # paths.home's default (interface.md) + certs/


@dataclass
class ClusterState:
    """What roachctl remembers about a cluster between commands."""

    name: str
    initialized: bool = False
    cluster_id: str = ""
    version: str = ""
    deployed_at: float = 0.0
    hosts: list[str] = field(default_factory=list)
    owner_id: str = ""  # written to every host's ownership marker (plan/owner.py); "" before markers
    join: list[str] = field(default_factory=list)  # the --join list, pinned at init (plan/shape.py)


class ClusterHome:
    """Files of one cluster under roachctl's home directory."""

    def __init__(self, home: Path, name: str) -> None:
        check_name(name)  # before any path is built: `../x` must never leave `clusters/`
        self.name = name
        self.root = home
        self.dir = home / "clusters" / name
        self._pending: pki.KeyPair | None = None  # a new cluster's CA, not written yet
        self._pending_nodes: dict[str, tuple[bytes, bytes]] = {}

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

    def owner_id(self) -> str:
        """The cluster's owner id: remembered, or a new random one (saved by the next `record`).

        A home from before ownership markers has none; its next deploy gets one and writes it.
        """
        return (self.load_state().owner_id if self.exists() else "") or secrets.token_hex(16)

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

    def has_records(self) -> bool:
        """True when this home holds anything of the cluster besides its CA files.

        The journal does not count: every deploy journals itself from its start, also a first
        one that is then refused or cancelled before it wrote anything else.
        """
        if any(p.exists() for p in (self.state_path, self.topology_path)):
            return True
        return any(d.is_dir() and any(d.iterdir()) for d in (self.dir / "nodes", self.certs_dir))

    def is_new(self) -> bool:
        """A cluster this home has never seen: no records and no CA file at all.

        Only then may `deploy` create a CA (issue 8 item 3): a CA that went missing from a known
        cluster is restored by the operator, never re-created.
        """
        return not self.has_records() and not store.ca_files_present(self.ca_dir)

    def ca(self) -> pki.KeyPair:
        """The cluster CA; never created here. Missing, unreadable or mismatched files are refused.

        Read on every call, parsed once per process per content (tls/store.py), so a CA replaced
        on disk is noticed at once.
        """
        if self._pending is not None:
            return self._pending
        try:
            return store.load_ca_files(*self._signer_paths())
        except store.CAFileError as exc:
            raise self._ca_refusal(exc) from None

    # -- CA rotation (contract §9: bundle everywhere, re-issue from the new CA, drop the old) ---

    @property
    def rotation_dir(self) -> Path:
        return self.ca_dir / "rotation"

    def _rotation_state(self) -> dict[str, Any]:
        path = self.rotation_dir / "state.json"
        if not path.is_file():
            return {}
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            raw = None
        if not isinstance(raw, dict) or raw.get("phase") not in (1, 2, 3):
            raise UsageError(
                f"the CA rotation state of cluster {self.name!r} is corrupt", where=str(path),
                hint='write {"phase": N} with the phase `roachctl history` shows as last begun',
            )  # fmt: skip
        return raw

    def rotation_phase(self) -> int:
        """The phase of an unfinished CA rotation (1-3), or 0 when none is under way."""
        return int(self._rotation_state().get("phase", 0))

    def _signer_paths(self) -> tuple[Path, Path]:
        """ca.crt/ca.key of the CA that signs now: the new one from phase 2 on."""
        if self.rotation_phase() >= 2:
            return self._new_ca_paths()
        return self.ca_dir / store.CA_CERT, self.ca_dir / store.CA_KEY

    def _new_ca_paths(self) -> tuple[Path, Path]:
        """The new CA's files: in rotation/, each falling back to ca/ (a rotation end that an
        older roachctl moved file by file and that crashed half way)."""
        paths = []
        for name in (store.CA_CERT, store.CA_KEY):
            path = self.rotation_dir / name
            paths.append(path if path.exists() else self.ca_dir / name)
        return paths[0], paths[1]

    def begin_ca_rotation(self) -> pki.KeyPair:
        """Phase 1 begins: a new CA beside the old one, both kept.

        The files and state.json are written into a staging dir that is renamed to rotation/ in
        one step, so rotation/ exists complete or not at all. A rotation/ without state.json (an
        older roachctl that crashed here) never reached a node: it is set aside, not deleted.
        """
        old = self.ca()
        if self.rotation_dir.exists() and not self.rotation_phase():
            self.rotation_dir.rename(self.ca_dir / f"abandoned-{_stamp()}-{secrets.token_hex(3)}")
        staging = private_dir(self.ca_dir / f".rotation-{secrets.token_hex(6)}")
        new = pki.create_ca()
        for name, data, mode in (
            ("old.key", old.key_pem(), 0o600), ("old.crt", old.cert_pem(), 0o644),
            (store.CA_KEY, new.key_pem(), 0o600), (store.CA_CERT, new.cert_pem(), 0o644),
        ):  # fmt: skip
            exclusive_write(staging / name, data, mode)
        state = {"phase": 1, "new_ca": inspect.fingerprint(new.cert), "old_ca": inspect.fingerprint(old.cert)}
        atomic_write(staging / "state.json", (json.dumps(state) + "\n").encode(), 0o600)
        os.rename(staging, self.rotation_dir)  # fails if another roachctl began one meanwhile
        return new

    def set_rotation_phase(self, phase: int) -> None:
        state = {**self._rotation_state(), "phase": phase}
        atomic_write(self.rotation_dir / "state.json", (json.dumps(state) + "\n").encode(), 0o600)

    def new_ca(self) -> pki.KeyPair:
        """The CA a rotation moves to (phases 1-3); checked against the fingerprint state.json
        recorded when the rotation began."""
        try:
            new = store.load_ca_files(*self._new_ca_paths())
        except store.CAFileError as exc:
            raise self._ca_refusal(exc) from None
        recorded = self._rotation_state().get("new_ca")
        if recorded and inspect.fingerprint(new.cert) != recorded:
            raise self._ca_refusal(
                store.CAFileError(
                    "mismatch", f"the new CA found is not the one this rotation began with ({recorded})"
                )
            )
        return new

    def old_ca(self) -> pki.KeyPair:
        """The CA a rotation moves away from (kept in the rotation dir)."""
        try:
            return store.load_ca_files(self.rotation_dir / "old.crt", self.rotation_dir / "old.key")
        except store.CAFileError as exc:
            raise self._ca_refusal(exc) from None

    def old_ca_pem(self) -> bytes:
        return (self.rotation_dir / "old.crt").read_bytes()

    def bundle_pem(self) -> bytes:
        """New CA then old CA: the combined ca.crt of phases 1 and 2 (contract §9)."""
        return self.new_ca().cert_pem() + self.old_ca_pem()

    def trust_pem(self) -> bytes:
        """What the controller and its client certs trust now: the bundle during a rotation."""
        return self.bundle_pem() if self.rotation_phase() else self.ca().cert_pem()

    def node_ca_pem(self) -> bytes:
        """The ca.crt nodes must hold in the current phase (phase 3: the new CA alone)."""
        phase = self.rotation_phase()
        if phase == 3:
            return self.new_ca().cert_pem()
        return self.bundle_pem() if phase else self.ca().cert_pem()

    def finish_ca_rotation(self) -> Path:
        """The new CA becomes ca/; the rotation dir (old CA included) is kept as ca/retired-<time>.

        Copies first (rotation/ stays complete and keeps being what is read), then one rename:
        a crash anywhere leaves phase 3 recorded with every file in place, and a re-run of
        phase 3 (every node skipped) finishes again.
        """
        new = self.new_ca()
        atomic_write(self.ca_dir / store.CA_KEY, new.key_pem(), 0o600)
        atomic_write(self.ca_dir / store.CA_CERT, new.cert_pem(), 0o644)
        retired = self.ca_dir / f"retired-{_stamp()}"
        os.rename(self.rotation_dir, retired)
        return retired

    def begin_new_ca(self) -> pki.KeyPair:
        """A new CA for the first deploy of a new cluster, held in memory until `commit_new_ca`.

        The plan is computed with it (and node certs it signs); nothing is written until the
        deploy is confirmed, so a dry run, a refusal or a "no" at the prompt leave no CA behind.
        """
        if not self.is_new():
            raise RefusedError(
                f"cluster {self.name!r} already has records in {self.dir}; refusing to create a new CA",
                hint="a CA is created only by the first deploy of a new cluster",
            )
        if self._pending is None:
            self._pending = pki.create_ca()
        return self._pending

    @property
    def ca_pending(self) -> bool:
        return self._pending is not None

    def commit_new_ca(self) -> None:
        """Write the CA from `begin_new_ca` and the node certs it signed; a no-op otherwise.

        The CA files are created exclusively: if another roachctl made a CA for this cluster in
        the meantime, this refuses instead of replacing it.
        """
        if self._pending is None:
            return
        try:
            store.create_ca(self.ca_dir, self._pending)
        except FileExistsError as exc:
            raise RefusedError(
                f"a CA for cluster {self.name!r} appeared in {self.ca_dir} while this deploy was "
                f"planned ({exc}); nothing was changed",
                hint="another roachctl is deploying this cluster: wait for it, then re-run deploy",
            ) from None
        self._pending = None
        for host, (cert_pem, key_pem) in self._pending_nodes.items():
            self._save_node_cert(host, cert_pem, key_pem)
        self._pending_nodes.clear()

    def _ca_refusal(self, exc: store.CAFileError) -> RefusedError:
        """The refusal for an unusable CA, naming how to recover for this problem."""
        cert, key = self.ca_dir / store.CA_CERT, self.ca_dir / store.CA_KEY
        from_node = (
            f"copy ca.crt back to {cert} from any node of the cluster (it is the same on every node: "
            f"<paths.home>/certs/ca.crt, by default {DEFAULT_NODE_CA})"
        )
        if (self.certs_dir / store.CA_CERT).is_file():
            from_node += f" or from the operator copy {self.certs_dir / store.CA_CERT}"
        from_backup = f"restore {key} (mode 0600) from your backup of this home"
        hints = {
            "missing-cert": from_node,
            "bad-cert": from_node,
            "not-ca": from_node,
            "missing-key": from_backup,
            "bad-key": from_backup,
            "missing": f"{from_backup}, and {from_node}",
            "mismatch": f"put back the matching pair: {from_backup}; {from_node}",
        }
        hint = hints.get(exc.problem, from_backup)
        hint += "; then re-run the command (roachctl checks that key and certificate belong together)"
        if not self.has_records():
            hint += (
                f". If cluster {self.name!r} was never deployed (no host has its ca.crt), remove "
                f"{self.ca_dir} and deploy again"
            )
        return RefusedError(
            f"the CA of cluster {self.name!r} is not usable: {exc.detail}. roachctl never creates "
            "a new CA for an existing cluster (it would cut every node and client off) and never "
            "overwrites ca.key",
            where=str(self.ca_dir),
            hint=hint,
        )

    def operator_certs(self) -> Path:
        """ca.crt + client.root.{crt,key} for the operator (the printed SQL URLs point here).

        Short-lived (docs/findings.md S-L14: a leaked 5-year root cert could not be revoked): it lives
        OPERATOR_CLIENT_LIFETIME and is renewed when less than OPERATOR_RENEW_BEFORE is left
        (by `deploy`, `start` and `status`), or when the CA is not the cluster's.
        """
        ca, trust = self.ca(), self.trust_pem()
        cert = self.certs_dir / store.client_cert_name("root")
        if (
            not cert.is_file()
            or _expires_within(cert.read_bytes(), OPERATOR_RENEW_BEFORE)
            or not _same_ca(self.certs_dir, trust)
            or not _issued_by(cert.read_bytes(), ca)
        ):
            store.write_client_certs(
                self.certs_dir, ca, "root", lifetime=OPERATOR_CLIENT_LIFETIME, trust_pem=trust
            )
        return self.certs_dir

    def ephemeral_client(self, user: str = "root", *, signer: pki.KeyPair | None = None) -> pki.KeyPair:
        """A short-lived client cert for one operation on a node; never written to disk here.

        Signed by the signing CA, which every node trusts in each phase of a CA rotation.
        """
        return pki.create_client_cert(signer or self.ca(), user, lifetime=EPHEMERAL_CLIENT_LIFETIME)

    def node_cert(self, host: str, addresses: Iterable[str]) -> tuple[bytes, bytes]:
        """(node.crt, node.key) PEM for `host`, reused while it covers `addresses` and is fresh.

        Reuse is what makes a second `deploy` a no-op: the same bytes are desired again. Under a
        CA not committed yet (`begin_new_ca`) the cert is kept in memory until the commit.
        """
        wanted = [a for a in dict.fromkeys(addresses) if a]
        ca = self.ca()
        if self._pending is not None:
            kept = self._pending_nodes.get(host)
            if kept is not None and set(wanted) <= set(pki.cert_sans(kept[0])):
                return kept
            node = pki.create_node_cert(ca, wanted)
            self._pending_nodes[host] = (node.cert_pem(), node.key_pem())
            return self._pending_nodes[host]
        node_dir = self.dir / "nodes" / host
        cert_path, key_path = node_dir / store.NODE_CERT, node_dir / store.NODE_KEY
        if cert_path.is_file() and key_path.is_file():
            cert_pem = cert_path.read_bytes()
            if (
                set(wanted) <= set(pki.cert_sans(cert_pem))
                and not _expires_soon(cert_pem)
                and _issued_by(cert_pem, ca)
            ):
                return cert_pem, key_path.read_bytes()
        node = pki.create_node_cert(ca, wanted)
        self._save_node_cert(host, node.cert_pem(), node.key_pem())
        return node.cert_pem(), node.key_pem()

    def saved_node_cert(self, host: str) -> tuple[bytes, bytes] | None:
        """(node.crt, node.key) PEM this home keeps for `host`, if any."""
        node_dir = self.dir / "nodes" / host
        cert_path, key_path = node_dir / store.NODE_CERT, node_dir / store.NODE_KEY
        if cert_path.is_file() and key_path.is_file():
            return cert_path.read_bytes(), key_path.read_bytes()
        return None

    def save_node_cert(self, host: str, cert_pem: bytes, key_pem: bytes) -> None:
        """Keep `host`'s node certificate (what the next deploy desires on the node)."""
        self._save_node_cert(host, cert_pem, key_pem)

    def _save_node_cert(self, host: str, cert_pem: bytes, key_pem: bytes) -> None:
        node_dir = private_dir(self.dir / "nodes" / host)
        atomic_write(node_dir / store.NODE_KEY, key_pem, 0o600)
        atomic_write(node_dir / store.NODE_CERT, cert_pem, 0o644)


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime())


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
    "deployed_at": (int, float), "hosts": (list,), "owner_id": (str,), "join": (list,),
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
    if not all(isinstance(h, str) for h in raw.get("join", [])):
        raise ValueError("'join' must be a list of strings")
    return ClusterState(**{k: v for k, v in raw.items() if k in _STATE_TYPES})


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _expires_soon(cert_pem: bytes) -> bool:
    return _expires_within(cert_pem, RENEW_BEFORE)


def _expires_within(cert_pem: bytes, margin: dt.timedelta) -> bool:
    return pki.cert_not_after(cert_pem) - dt.datetime.now(dt.UTC) < margin


def _issued_by(cert_pem: bytes, ca: pki.KeyPair) -> bool:
    """True when `cert_pem` was signed by this CA (a re-created CA invalidates old node certs)."""
    try:
        x509.load_pem_x509_certificate(cert_pem).verify_directly_issued_by(ca.cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _same_ca(certs_dir: Path, trust_pem: bytes) -> bool:
    path = certs_dir / store.CA_CERT
    return path.is_file() and path.read_bytes() == trust_pem
