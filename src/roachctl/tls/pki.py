"""Certificates for CockroachDB, built in-process following CockroachDB's own recipe.

Recipe (docs/cockroach-contract.md §7; cockroachdb/cockroach pkg/security/x509.go): a CA with
CN="Cockroach CA", CA:TRUE, pathlen 1; node certs with CN=node and a SAN for every address
the node is reached by, usable as server *and* client (node-to-node RPC); client certs with
CN=<sql user>, clientAuth only. Validity starts a day early to tolerate clock skew, and no leaf
outlives its CA. Keys are RSA-2048 in PKCS#1 PEM, as `cockroach cert` writes them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_COMMON_NAME = "Cockroach CA"
ORGANIZATION = "Cockroach"
CA_LIFETIME = dt.timedelta(days=3660)  # cockroach cert create-ca default: 87840h
LEAF_LIFETIME = dt.timedelta(days=1830)  # cockroach cert create-node/-client default: 43920h
BACKDATE = dt.timedelta(days=1)
KEY_SIZE = 2048


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: rsa.RSAPrivateKey

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )

    @property
    def not_after(self) -> dt.datetime:
        return self.cert.not_valid_after_utc


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def create_ca(*, lifetime: dt.timedelta = CA_LIFETIME, now: dt.datetime | None = None) -> KeyPair:
    """Create a self-signed CockroachDB CA."""
    start = (now or _now()) - BACKDATE
    key = _new_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(CA_COMMON_NAME))
        .issuer_name(_name(CA_COMMON_NAME))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + BACKDATE + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert, key)


def san_entries(hosts: Iterable[str]) -> list[x509.GeneralName]:
    """Turn host names and IP addresses into SAN entries (IPs as IP SANs, names as DNS SANs)."""
    entries: list[x509.GeneralName] = []
    seen: set[str] = set()
    for host in hosts:
        if not host or host in seen:
            continue
        seen.add(host)
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            entries.append(x509.DNSName(host))
    return entries


def _leaf(
    ca: KeyPair,
    common_name: str,
    usages: Sequence[x509.ObjectIdentifier],
    sans: Sequence[x509.GeneralName],
    lifetime: dt.timedelta,
    now: dt.datetime | None,
) -> KeyPair:
    start = (now or _now()) - BACKDATE
    not_after = min(start + BACKDATE + lifetime, ca.cert.not_valid_after_utc)
    key = _new_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return KeyPair(builder.sign(ca.key, hashes.SHA256()), key)


def create_node_cert(
    ca: KeyPair,
    hosts: Iterable[str],
    *,
    lifetime: dt.timedelta = LEAF_LIFETIME,
    now: dt.datetime | None = None,
) -> KeyPair:
    """Create a node certificate (CN=node) valid for every name/IP in `hosts`.

    `localhost` and `127.0.0.1` are always included, as `cockroach cert create-node` users do,
    so local client commands on the node can verify it.
    """
    names = [*hosts, "localhost", "127.0.0.1"]
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    return _leaf(ca, "node", usages, san_entries(names), lifetime, now)


def create_client_cert(
    ca: KeyPair,
    user: str,
    *,
    lifetime: dt.timedelta = LEAF_LIFETIME,
    now: dt.datetime | None = None,
) -> KeyPair:
    """Create a client certificate for SQL user `user` (CN=<user>)."""
    return _leaf(ca, user, [ExtendedKeyUsageOID.CLIENT_AUTH], [], lifetime, now)


def load_keypair(cert_pem: bytes, key_pem: bytes) -> KeyPair:
    """Load a certificate and its RSA key from PEM bytes."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("only RSA keys are supported")
    return KeyPair(x509.load_pem_x509_certificate(cert_pem), key)


def cert_not_after(cert_pem: bytes) -> dt.datetime:
    """Expiry of the first certificate in `cert_pem` (UTC)."""
    return x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc


def cert_sans(cert_pem: bytes) -> list[str]:
    """The DNS and IP SANs of a certificate, as strings."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    ips = [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)]
    return [*ext.get_values_for_type(x509.DNSName), *ips]
