"""On-disk layout of certificates: node certs dirs, client certs dirs, and the CA key kept apart.

CockroachDB file names (docs/cockroach-contract.md §7): ca.crt, node.crt, node.key,
client.<user>.crt, client.<user>.key. ca.key must never be inside a certs dir.
Keys are written 0600, certificates 0644, atomically.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from roachctl.fsutil import atomic_write, exclusive_write, private_dir
from roachctl.tls import pki

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
NODE_CERT = "node.crt"
NODE_KEY = "node.key"


def client_cert_name(user: str) -> str:
    return f"client.{user}.crt"


def client_key_name(user: str) -> str:
    return f"client.{user}.key"


class CAFileError(Exception):
    """The CA files in a CA dir are missing, unreadable or do not belong together.

    `problem` is one of: missing (both files), missing-cert, missing-key, bad-cert, bad-key,
    mismatch, not-ca. Callers turn it into a refusal that names the recovery for their layout.
    """

    def __init__(self, problem: str, detail: str) -> None:
        super().__init__(detail)
        self.problem = problem
        self.detail = detail


def ca_files_present(ca_dir: Path) -> list[str]:
    """Which of ca.crt / ca.key exist (as anything) in `ca_dir`."""
    return [name for name in (CA_CERT, CA_KEY) if (ca_dir / name).exists() or (ca_dir / name).is_symlink()]


def load_ca(ca_dir: Path) -> pki.KeyPair:
    """Load the CA from `ca_dir`: both files present, readable, and the key belongs to the cert.

    Never creates anything: a CA is only made by `create_ca` for a new cluster (a silently
    re-created CA would cut every node and client off, and overwrite the surviving key).

    Raises:
        CAFileError: what is wrong, for the caller's refusal.
    """
    return load_ca_files(ca_dir / CA_CERT, ca_dir / CA_KEY)


# CAs parsed in this process, by (sha256 of ca.crt, sha256 of ca.key): parsing checks the key with a
# signature (~2 ms) and a command asks for its CA per host and per probe, often through several homes.
# Keyed by content, so a CA replaced on disk (rotation, restore) is parsed afresh, never served stale.
_PARSED: dict[tuple[str, str], pki.KeyPair] = {}


def load_ca_files(cert_path: Path, key_path: Path) -> pki.KeyPair:
    """`load_ca` for two explicit paths (during a CA rotation the signing CA moves, see home.py).

    Both files are read every time; they are parsed once per process per content (`_PARSED`).
    """
    present = [p.name for p in (cert_path, key_path) if p.exists() or p.is_symlink()]
    if not present:
        raise CAFileError("missing", f"{cert_path} and {key_path} are missing")
    if cert_path.name not in present:
        raise CAFileError("missing-cert", f"{cert_path} is missing")
    if key_path.name not in present:
        raise CAFileError("missing-key", f"{key_path} is missing")
    try:
        cert_pem = cert_path.read_bytes()
    except OSError as exc:
        raise CAFileError("bad-cert", f"{cert_path} is not a readable PEM certificate ({exc})") from None
    try:
        key_pem = key_path.read_bytes()
    except OSError as exc:
        raise CAFileError("bad-key", f"{key_path} is not a readable unencrypted PEM key ({exc})") from None
    digest = (hashlib.sha256(cert_pem).hexdigest(), hashlib.sha256(key_pem).hexdigest())
    if digest not in _PARSED:
        _PARSED[digest] = parse_ca(cert_path, cert_pem, key_path, key_pem)
    return _PARSED[digest]


def parse_ca(cert_path: Path, cert_pem: bytes, key_path: Path, key_pem: bytes) -> pki.KeyPair:
    """The CA in these bytes; refused unless the RSA key belongs to a CA:TRUE certificate.

    The key is checked by what a CA key is for: its public half is the certificate's, its private
    numbers agree with it, and a signature made with it verifies under the certificate (~2 ms).
    OpenSSL's own key check (the `load_pem_private_key` default) also proves p and q prime, ~60 ms
    of CPU in every command; with p·q equal to the certificate's modulus that adds nothing here.
    """
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise CAFileError("bad-cert", f"{cert_path} is not a readable PEM certificate ({exc})") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None, unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError) as exc:
        raise CAFileError("bad-key", f"{key_path} is not a readable unencrypted PEM key ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CAFileError("bad-key", f"{key_path} is not an RSA key")
    if key.public_key().public_numbers() != _rsa_public(cert):
        raise CAFileError("mismatch", f"{key_path} is not the key of {cert_path}")
    if not _signs_for(key, cert):
        raise CAFileError("bad-key", f"{key_path} is damaged: its signatures do not verify under {cert_path}")
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise CAFileError("not-ca", f"{cert_path} is not a CA certificate (no CA:TRUE)")
    return pki.KeyPair(cert, key)


def _signs_for(key: rsa.RSAPrivateKey, cert: x509.Certificate) -> bool:
    """Whether `key`'s private half is consistent and a signature by it verifies under `cert`'s
    public key (its public numbers already match the certificate's).

    Loaded without OpenSSL's check, a key is used only after these: p·q = n (then p and q are n's
    factors), d inverts e, and the CRT values follow from p, q and d (big-integer arithmetic, µs).
    """
    numbers = key.private_numbers()
    p, q, n, e = numbers.p, numbers.q, numbers.public_numbers.n, numbers.public_numbers.e
    if not (1 < p < n and 1 < q < n and p * q == n and 1 < numbers.d < n):
        return False
    if (numbers.d * e) % math.lcm(p - 1, q - 1) != 1:
        return False
    crt = (numbers.d % (p - 1), numbers.d % (q - 1), (numbers.iqmp * q) % p)
    if crt != (numbers.dmp1, numbers.dmq1, 1):
        return False
    message = b"roachctl CA key check"
    signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    public = cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    try:
        public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def _rsa_public(cert: x509.Certificate) -> rsa.RSAPublicNumbers | None:
    public = cert.public_key()
    return public.public_numbers() if isinstance(public, rsa.RSAPublicKey) else None


def create_ca(ca_dir: Path, ca: pki.KeyPair | None = None) -> pki.KeyPair:
    """Write a new CA (or the given one) into `ca_dir`, which must not hold one yet.

    Both files are created exclusively (never overwritten): the key first, so a lone ca.crt
    can never be taken for a complete CA. `ca_dir` is made 0700, the key 0600.

    Raises:
        FileExistsError: ca.crt or ca.key already exists (nothing is replaced).
    """
    private_dir(ca_dir)
    existing = ca_files_present(ca_dir)
    if existing:
        raise FileExistsError(f"{ca_dir / existing[0]} already exists")
    ca = ca or pki.create_ca()
    key_pem, cert_pem = ca.key_pem(), ca.cert_pem()
    exclusive_write(ca_dir / CA_KEY, key_pem, 0o600)
    exclusive_write(ca_dir / CA_CERT, cert_pem, 0o644)
    _PARSED[(hashlib.sha256(cert_pem).hexdigest(), hashlib.sha256(key_pem).hexdigest())] = ca
    return ca


def write_node_certs(certs_dir: Path, ca: pki.KeyPair, hosts: Iterable[str]) -> pki.KeyPair:
    """Write ca.crt, node.crt and node.key (0600) for a node reachable as `hosts`."""
    private_dir(certs_dir)
    node = pki.create_node_cert(ca, hosts)
    atomic_write(certs_dir / CA_CERT, ca.cert_pem(), 0o644)
    atomic_write(certs_dir / NODE_KEY, node.key_pem(), 0o600)
    atomic_write(certs_dir / NODE_CERT, node.cert_pem(), 0o644)
    return node


def write_client_certs(
    certs_dir: Path,
    ca: pki.KeyPair,
    user: str = "root",
    *,
    lifetime: dt.timedelta = pki.LEAF_LIFETIME,
    trust_pem: bytes | None = None,
) -> pki.KeyPair:
    """Write ca.crt, client.<user>.crt and client.<user>.key (0600).

    `trust_pem` is the ca.crt to write when it is not just the signing CA (a CA rotation's bundle).
    """
    private_dir(certs_dir)
    client = pki.create_client_cert(ca, user, lifetime=lifetime)
    atomic_write(certs_dir / CA_CERT, trust_pem or ca.cert_pem(), 0o644)
    atomic_write(certs_dir / client_key_name(user), client.key_pem(), 0o600)
    atomic_write(certs_dir / client_cert_name(user), client.cert_pem(), 0o644)
    return client
