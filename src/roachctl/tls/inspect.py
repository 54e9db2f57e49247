"""What a certificate says and what is wrong with it: pure checks behind `certs status`.

A node's certificate must be signed by a CA in its own ca.crt (a bundle during a CA rotation),
carry a SAN for every address the node is reached by (contract §7) and not be expired; the one the
node *serves* must be the one on its disk (otherwise a reload is pending or was refused, contract
§9). Findings have a severity so `status`, `check` and `doctor` can show one warning line.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

WARN_BEFORE = dt.timedelta(days=30)
OK, WARNING, ERROR = "ok", "warning", "error"
_RANK = {OK: 0, WARNING: 1, ERROR: 2}


@dataclass(frozen=True)
class CertInfo:
    """The fields of one certificate an operator needs to see."""

    subject: str
    issuer: str
    serial: str
    not_before: dt.datetime
    not_after: dt.datetime
    sans: tuple[str, ...]
    sha256: str  # of the DER: "is the served cert the one on disk"
    is_ca: bool

    def to_json(self) -> dict[str, object]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": self.serial,
            "not_after": iso(self.not_after),
            "sans": list(self.sans),
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class Finding:
    """One observation about one certificate; `severity` is ok, warning or error."""

    subject: str  # the node's host, or "operator"
    check: str  # expiry, san, issuer, served, file
    severity: str
    detail: str
    hint: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "host": self.subject,
            "check": self.check,
            "severity": self.severity,
            "detail": self.detail,
            "hint": self.hint,
        }


def iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_pems(pem: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle (a CA bundle holds new + old during a rotation)."""
    return x509.load_pem_x509_certificates(pem) if pem.strip() else []


def info(cert: x509.Certificate) -> CertInfo:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = (
            *ext.get_values_for_type(x509.DNSName),
            *(str(i) for i in ext.get_values_for_type(x509.IPAddress)),
        )
    except x509.ExtensionNotFound:
        sans = ()
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return CertInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sans=tuple(sans),
        sha256=fingerprint(cert),
        is_ca=is_ca,
    )


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def issued_by(cert: x509.Certificate, cas: Sequence[x509.Certificate]) -> x509.Certificate | None:
    """The CA of `cas` whose key signed `cert`, or None."""
    for ca in cas:
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return ca
    return None


def covers(sans: Iterable[str], address: str) -> bool:
    """Whether a SAN list covers `address` (IPs compared as IPs, names case-insensitively, `*.`)."""
    try:
        want = ipaddress.ip_address(address)
    except ValueError:
        name = address.lower().rstrip(".")
        for san in sans:
            s = san.lower().rstrip(".")
            if s == name or (s.startswith("*.") and name.partition(".")[2] == s[2:] and "." in name):
                return True
        return False
    for san in sans:
        try:
            if ipaddress.ip_address(san) == want:
                return True
        except ValueError:
            continue
    return False


def expiry_finding(who: str, what: str, cert: CertInfo, now: dt.datetime, hint: str) -> Finding:
    left = cert.not_after - now
    if left <= dt.timedelta(0):
        return Finding(who, "expiry", ERROR, f"{what} expired at {iso(cert.not_after)}", hint)
    if left < WARN_BEFORE:
        return Finding(
            who, "expiry", WARNING, f"{what} expires in {left.days} day(s) ({iso(cert.not_after)})", hint
        )
    return Finding(who, "expiry", OK, f"{what} valid until {iso(cert.not_after)}")


def node_findings(
    host: str,
    *,
    node_pem: bytes | None,
    ca_pem: bytes | None,
    served_der: bytes | None,
    addresses: Sequence[str],
    now: dt.datetime,
    rotate_hint: str,
) -> list[Finding]:
    """Every finding about one node's certificates (disk, CA bundle, what it serves)."""
    if node_pem is None or ca_pem is None:
        missing = "node.crt" if node_pem is None else "ca.crt"
        return [
            Finding(host, "file", ERROR, f"{missing} is missing on the node", "run `roachctl deploy` again")
        ]
    cas = load_pems(ca_pem)
    disk = x509.load_pem_x509_certificate(node_pem)
    found = [expiry_finding(host, "node certificate", info(disk), now, rotate_hint)]
    found += [
        expiry_finding(
            host,
            f"CA {ca.subject.rfc4514_string()} (serial {ca.serial_number:x})",
            info(ca),
            now,
            "rotate the CA: `roachctl certs rotate CLUSTER --ca`",
        )
        for ca in cas
    ]
    if issued_by(disk, cas) is None:
        found.append(
            Finding(
                host, "issuer", ERROR, "node.crt is not signed by any CA in the node's ca.crt", rotate_hint
            )
        )
    sans = info(disk).sans
    uncovered = [a for a in addresses if not covers(sans, a)]
    if uncovered:
        found.append(
            Finding(host, "san", ERROR, f"node.crt has no SAN for {', '.join(uncovered)}", rotate_hint)
        )
    else:
        found.append(Finding(host, "san", OK, f"SANs cover {', '.join(addresses)}"))
    found.append(served_finding(host, disk, served_der, now))
    return found


def served_finding(host: str, disk: x509.Certificate, served_der: bytes | None, now: dt.datetime) -> Finding:
    if served_der is None:
        return Finding(host, "served", OK, "not serving (node not running): nothing to compare")
    served = x509.load_der_x509_certificate(served_der)
    if fingerprint(served) == fingerprint(disk):
        return Finding(host, "served", OK, "serves its node.crt")
    severity = ERROR if served.not_valid_after_utc <= now else WARNING
    return Finding(
        host,
        "served",
        severity,
        f"serves another certificate than its node.crt (serial {served.serial_number:x}, expires "
        f"{iso(served.not_valid_after_utc)}): a reload is pending or was refused",
        "reload it (`roachctl certs rotate CLUSTER --node-certs` reloads and verifies each node); "
        "the node's journal says why a reload was refused",
    )


def client_findings(
    cert_pem: bytes | None, trusted: Sequence[x509.Certificate], now: dt.datetime
) -> list[Finding]:
    """The operator's client certificate: present, not expired, signed by a CA the nodes trust.

    It lives 24 h and is renewed by `status`, `start` and `deploy`, so it gets no 30-day warning.
    """
    who = "operator"
    if cert_pem is None:
        return [
            Finding(
                who, "file", WARNING, "no operator client certificate yet", "run `roachctl status CLUSTER`"
            )
        ]
    cert = x509.load_pem_x509_certificate(cert_pem)
    found = []
    if cert.not_valid_after_utc <= now:
        found.append(
            Finding(
                who,
                "expiry",
                ERROR,
                f"client.root.crt expired at {iso(cert.not_valid_after_utc)}",
                "run `roachctl status CLUSTER` to renew it",
            )
        )
    else:
        found.append(
            Finding(
                who,
                "expiry",
                OK,
                f"client.root.crt valid until {iso(cert.not_valid_after_utc)} "
                "(short-lived, renewed automatically)",
            )
        )
    if issued_by(cert, trusted) is None:
        found.append(
            Finding(
                who,
                "issuer",
                ERROR,
                "client.root.crt is not signed by a CA every node trusts",
                "run `roachctl status CLUSTER` to renew it",
            )
        )
    return found


def worst(findings: Iterable[Finding]) -> str:
    return max((f.severity for f in findings), key=_RANK.__getitem__, default=OK)


def warning_line(findings: Sequence[Finding]) -> str | None:
    """One line for `status`/`check`/`doctor`: the problems by host, or None when all is ok."""
    bad = [f for f in findings if f.severity != OK]
    if not bad:
        return None
    level = worst(bad)
    parts = [f"{f.subject}: {f.detail}" for f in sorted(bad, key=lambda f: -_RANK[f.severity])]
    return f"certificates {level}: " + "; ".join(parts) + " (see `roachctl certs status`)"


#: Files of the certs dir roachctl does not manage, and what each changes on the node (contract §7,
#: [C] certificate_manager.go getNodeClientCertLocked, getClientCACertLocked, getUICertLocked).
UNMANAGED = {
    "client.node.crt": "the node's client certificate for node-to-node connections (instead of node.crt)",
    "ca-client.crt": "the CA that verifies client certificates (instead of ca.crt)",
    "ui.crt": "the certificate of the HTTP port / DB Console (instead of node.crt)",
    "ca-ui.crt": "the CA for the DB Console certificate (instead of ca.crt)",
}


def unmanaged_findings(host: str, present: Iterable[str]) -> list[Finding]:
    """A warning per unmanaged file present: rotation would not touch it, yet it is used."""
    return [
        Finding(
            host,
            "unmanaged",
            WARNING,
            f"{name} present: {UNMANAGED[name]}; roachctl does not manage it",
            hint="certs rotate refuses while it is there: rotate it yourself, or remove it (and "
            "SIGHUP) if it is not needed",
        )
        for name in present
        if name in UNMANAGED
    ]


_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def valid_san(value: str) -> bool:
    """An IP address or a DNS name (labels of letters, digits, '-'; a leading '*.' allowed)."""
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        pass
    name = value[2:] if value.startswith("*.") else value
    return 0 < len(name) <= 253 and all(_DNS_LABEL.fullmatch(label) for label in name.rstrip(".").split("."))


def reissue_sans(expected: Sequence[str], current: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """SANs for a re-issued node certificate: the node's expected addresses plus every SAN of its
    current certificate still valid in form (a load balancer name added by hand stays).
    Returns (wanted, added, removed) against `current`."""
    wanted = list(dict.fromkeys([*(a for a in expected if a), *(s for s in current if valid_san(s))]))
    added = [s for s in wanted if s not in current]
    removed = [s for s in current if s not in wanted]
    return wanted, added, removed
