"""tls/inspect.py: the pure judgement behind `certs status` (expiry, SANs, issuer, served cert)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization

from roachctl.tls import inspect, pki

NOW = dt.datetime.now(dt.UTC)
ADDRS = ["10.0.0.1", "n1", "localhost", "127.0.0.1"]


@pytest.fixture(scope="module")
def ca() -> pki.KeyPair:
    return pki.create_ca()


def _der(kp: pki.KeyPair) -> bytes:
    return kp.cert.public_bytes(serialization.Encoding.DER)


def _by_check(findings: list[inspect.Finding]) -> dict[str, str]:
    return {f.check: f.severity for f in findings if f.check != "expiry" or "node" in f.detail}


def test_a_healthy_node_has_only_ok_findings(ca: pki.KeyPair) -> None:
    node = pki.create_node_cert(ca, ["10.0.0.1", "n1"])
    found = inspect.node_findings(
        "n1", node_pem=node.cert_pem(), ca_pem=ca.cert_pem(), served_der=_der(node),
        addresses=ADDRS, now=NOW, rotate_hint="h",
    )  # fmt: skip
    assert inspect.worst(found) == inspect.OK, found
    assert inspect.warning_line(found) is None


def test_expiry_in_ten_days_warns_and_expired_is_an_error(ca: pki.KeyPair) -> None:
    soon = pki.create_node_cert(ca, ["10.0.0.1", "n1"], lifetime=dt.timedelta(days=11))
    found = inspect.node_findings(
        "n1", node_pem=soon.cert_pem(), ca_pem=ca.cert_pem(), served_der=_der(soon),
        addresses=ADDRS, now=NOW, rotate_hint="h",
    )  # fmt: skip
    assert inspect.worst(found) == inspect.WARNING
    line = inspect.warning_line(found)
    assert line is not None and line.startswith("certificates warning: n1: node certificate expires in")
    later = NOW + dt.timedelta(days=12)
    found = inspect.node_findings(
        "n1", node_pem=soon.cert_pem(), ca_pem=ca.cert_pem(), served_der=None,
        addresses=ADDRS, now=later, rotate_hint="h",
    )  # fmt: skip
    assert _by_check(found)["expiry"] == inspect.ERROR


def test_a_missing_san_and_a_foreign_issuer_are_errors(ca: pki.KeyPair) -> None:
    other = pki.create_ca()
    node = pki.create_node_cert(other, ["n1"])
    found = inspect.node_findings(
        "n1", node_pem=node.cert_pem(), ca_pem=ca.cert_pem(), served_der=None,
        addresses=ADDRS, now=NOW, rotate_hint="h",
    )  # fmt: skip
    checks = _by_check(found)
    assert checks["san"] == checks["issuer"] == inspect.ERROR
    assert any("no SAN for 10.0.0.1" in f.detail for f in found)


def test_a_bundle_trusts_both_cas_and_a_different_served_cert_is_reported(ca: pki.KeyPair) -> None:
    new = pki.create_ca()
    node = pki.create_node_cert(new, ["10.0.0.1", "n1"])
    old_node = pki.create_node_cert(ca, ["10.0.0.1", "n1"])
    found = inspect.node_findings(
        "n1", node_pem=node.cert_pem(), ca_pem=new.cert_pem() + ca.cert_pem(), served_der=_der(old_node),
        addresses=ADDRS, now=NOW, rotate_hint="h",
    )  # fmt: skip
    checks = _by_check(found)
    assert "issuer" not in checks  # signed by a CA of the bundle
    assert checks["served"] == inspect.WARNING


def test_covers_matches_ips_as_ips_and_wildcards() -> None:
    assert inspect.covers(["::1", "*.example.com"], "0:0::1")
    assert inspect.covers(["*.example.com"], "a.example.com")
    assert not inspect.covers(["*.example.com"], "example.com")
    assert not inspect.covers(["10.0.0.2"], "10.0.0.1")


def test_operator_cert_must_be_signed_by_a_trusted_ca(ca: pki.KeyPair) -> None:
    client = pki.create_client_cert(ca, "root", lifetime=dt.timedelta(hours=2))
    assert inspect.worst(inspect.client_findings(client.cert_pem(), [ca.cert], NOW)) == inspect.OK
    other = pki.create_ca()
    assert inspect.worst(inspect.client_findings(client.cert_pem(), [other.cert], NOW)) == inspect.ERROR


def test_reissued_sans_keep_valid_current_ones_and_report_the_difference() -> None:
    wanted, added, removed = inspect.reissue_sans(
        ["n1", "10.0.0.1", "localhost"],
        ["localhost", "lb.example.com", "*.db.example.com", "bad name", "::1"],
    )
    assert wanted == ["n1", "10.0.0.1", "localhost", "lb.example.com", "*.db.example.com", "::1"]
    assert added == ["n1", "10.0.0.1"] and removed == ["bad name"]


@pytest.mark.parametrize(
    ("value", "ok"),
    [("n1", True), ("10.0.0.1", True), ("fe80::1", True), ("*.a.b", True), ("a..b", False),
     ("-a.b", False), ("a b", False), ("", False), ("x" * 64, False)],
)  # fmt: skip
def test_valid_san(value: str, ok: bool) -> None:
    assert inspect.valid_san(value) is ok


def test_unmanaged_files_are_warnings_naming_what_they_change() -> None:
    findings = inspect.unmanaged_findings("n1", ["ui.crt", "node.crt", "ca-client.crt"])
    assert [f.detail.split(" ")[0] for f in findings] == ["ui.crt", "ca-client.crt"]
    assert all(f.severity == inspect.WARNING and f.check == "unmanaged" for f in findings)
    assert "HTTP port" in findings[0].detail
