"""Certificates through their life (issue 12 items 1-2), on three real hosts, one cluster.

1. `certs status` on a fresh cluster is clean; a node certificate that expires in 10 days is a
   warning in `certs status`, `status` and `check`; a node.crt without the node's address is an
   error (planted on disk only: the node keeps serving its good one, which `certs status` sees).
   `certs rotate --node-certs` then changes what every node serves (seen through TLS) with
   unchanged MainPIDs, every node ready, and a re-deploy has nothing to change.
   A hand-added SAN (a load balancer name) survives the re-issue; a ui.crt roachctl does not
   manage is reported by `certs status` and makes `certs rotate` refuse.
2. A CA rotation, one phase per command: `--ca` runs phase 1 only and names the combined CA for
   clients, `sql` works; `--ca` again (phase 1) and phase 3 are refused as out of order; phase 2
   interrupted by Ctrl-C after its first node; `sql` works; re-run resumes (the done node is
   skipped); phase 3; `sql` works; every node serves a certificate of the new CA, trusts only it,
   same MainPIDs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509

from roachctl.tls import pki, store
from tests.support.bed import Bed
from tests.support.release_fixtures import Releases
from tests.support.remote import ROACHCTL, UNIT, Remote, running_remote, wait_for

pytestmark = [pytest.mark.bed, pytest.mark.slow]

NAME = "rotating"
CERTS = "/opt/cockroach/certs"


@pytest.fixture(scope="module")
def rc(bed3: Bed, standin_releases: Releases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    yield running_remote(bed3, standin_releases, tmp_path_factory.mktemp("remote-certs"), NAME)


def _pids(rc: Remote) -> dict[str, int]:
    return {h: int(rc.show(h, "MainPID")["MainPID"]) for h in rc.hosts}


def _served(rc: Remote) -> dict[str, str]:
    """Serial of the certificate each node serves (roachctl sees it through TLS, over ssh -W)."""
    res = rc.run("--json", "certs", "status", NAME)
    assert res.rc in (0, 30), res.text
    return {n["host"]: n["served"]["serial"] for n in json.loads(res.out)["nodes"]}


def _certs_status(rc: Remote) -> tuple[int, dict[str, Any]]:
    res = rc.run("--json", "certs", "status", NAME)
    return res.rc, json.loads(res.out)


def _plant(rc: Remote, host: str, cert: pki.KeyPair, *, reload: bool) -> None:
    """node.crt/node.key on the host as deploy writes them; SIGHUP through the unit if `reload`."""
    script = (
        f"cat > /tmp/n.key <<'EOF'\n{cert.key_pem().decode()}EOF\n"
        f"cat > /tmp/n.crt <<'EOF'\n{cert.cert_pem().decode()}EOF\n"
        f"install -m 0640 -o root -g cockroach /tmp/n.key {CERTS}/node.key\n"
        f"install -m 0644 -o root -g root /tmp/n.crt {CERTS}/node.crt\nrm -f /tmp/n.key /tmp/n.crt\n"
    )
    rc.sh(host, script + (f"systemctl reload {UNIT}\n" if reload else ""))


def _sql_works(rc: Remote) -> None:
    res = rc.run("sql", NAME, "-e", "SELECT 1")
    assert res.rc == 0, res.text


def _ca(rc: Remote) -> pki.KeyPair:
    return store.load_ca(rc.home / "clusters" / NAME / "ca")


def test_status_warnings_errors_and_node_cert_rotation(rc: Remote) -> None:
    code, report = _certs_status(rc)
    assert code == 0 and report["severity"] == "ok", report
    assert all(n["served"]["sha256"] == n["disk"]["sha256"] for n in report["nodes"]), report
    pids, served = _pids(rc), _served(rc)
    ca = _ca(rc)
    h1, h2 = rc.hosts[0], rc.hosts[1]

    # Expires in 10 days (issued so for the test): a warning everywhere, not an error.
    _plant(rc, h1, pki.create_node_cert(ca, [h1, "::1"], lifetime=dt.timedelta(days=10)), reload=True)
    wait_for("h1 serves the 10-day cert", lambda: _served(rc)[h1] != served[h1] or None, timeout=30)
    code, report = _certs_status(rc)
    assert code == 0 and report["severity"] == "warning", report
    status = rc.run("status", NAME)
    assert status.rc == 0 and "warning: certificates warning" in status.out + status.err, status.text
    assert f"{h1}: node certificate expires in" in status.out + status.err, status.text
    check = rc.run("check", str(rc.topology))
    assert "certificates warning" in check.out + check.err, check.text

    # A node.crt without the node's address: an error (only on disk; it still serves its good one).
    _plant(rc, h2, pki.create_node_cert(ca, ["localhost", "lb.example.com"]), reload=False)
    code, report = _certs_status(rc)
    assert code == 30 and report["severity"] == "error", report
    h2_findings = next(n for n in report["nodes"] if n["host"] == h2)["findings"]
    assert any(f["check"] == "san" and f["severity"] == "error" and h2 in f["detail"] for f in h2_findings)
    assert any(f["check"] == "served" and f["severity"] == "warning" for f in h2_findings), h2_findings

    before = {n["host"]: n["served"]["serial"] for n in report["nodes"]}

    # h3's ca.crt broken on disk (it runs with the one it loaded): it refuses the reload, the rotation
    # stops there, and h3 still serves its old certificate, which is on its disk again.
    h3 = rc.hosts[2]
    rc.sh(h3, f"cp -p {CERTS}/ca.crt /tmp/ca.good && echo garbage > {CERTS}/ca.crt")
    refused = rc.run("certs", "rotate", NAME, "--node-certs")
    assert refused.rc == 30 and f"{h3} did not serve the new certificates" in refused.err, refused.text
    assert "could not reload certificates" in refused.err, refused.text
    rc.sh(h3, f"cp -p /tmp/ca.good {CERTS}/ca.crt")
    code, report = _certs_status(rc)
    h3_node = next(n for n in report["nodes"] if n["host"] == h3)
    assert h3_node["served"]["serial"] == before[h3] and h3_node["disk"]["serial"] == before[h3], h3_node
    assert _pids(rc) == pids

    # A certificate file roachctl does not manage (contract §7: ui.crt is what the HTTP port
    # serves): `certs status` warns, a rotation refuses before touching any node.
    rc.sh(h1, f"install -m 0644 {CERTS}/node.crt {CERTS}/ui.crt")
    code, report = _certs_status(rc)
    h1_findings = next(n for n in report["nodes"] if n["host"] == h1)["findings"]
    assert any(f["check"] == "unmanaged" and "ui.crt" in f["detail"] for f in h1_findings), h1_findings
    unmanaged = rc.run("certs", "rotate", NAME, "--node-certs")
    assert unmanaged.rc == 30 and "does not manage" in unmanaged.err and f"{h1}: ui.crt" in unmanaged.err
    rc.sh(h1, f"rm -f {CERTS}/ui.crt")

    # Rotation: every node serves a new certificate, same processes, all ready, nothing left to deploy.
    rotated = rc.run("certs", "rotate", NAME, "--node-certs")
    assert rotated.rc == 0, rotated.text
    code, report = _certs_status(rc)
    assert code == 0 and report["severity"] == "ok", report
    after = {n["host"]: n["served"]["serial"] for n in report["nodes"]}
    assert all(after[h] != before[h] and after[h] != served[h] for h in rc.hosts), (before, after)
    h2_disk = next(n for n in report["nodes"] if n["host"] == h2)["disk"]
    assert "lb.example.com" in h2_disk["sans"] and h2 in h2_disk["sans"], h2_disk  # hand-added SAN kept
    assert _pids(rc) == pids
    assert all(n["ready"] for n in rc.status()["nodes"])
    dry = rc.deploy("--dry-run")
    assert dry.rc == 0 and "\n0 changes" in "\n" + dry.out + dry.err, dry.text


def _rotate_ca(rc: Remote, *args: str) -> str:
    res = rc.run("certs", "rotate", NAME, "--ca", *args, timeout=400)
    assert res.rc == 0, res.text
    _sql_works(rc)
    return res.err


def _journal(rc: Remote) -> list[dict[str, Any]]:
    path = rc.home / "clusters" / NAME / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_ca_rotation_in_three_phases_interrupted_and_resumed(rc: Remote) -> None:
    pids, old_ca = _pids(rc), _ca(rc)
    first_phase = _rotate_ca(rc)  # phase 1 only, by default
    assert "the combined CA for clients" in first_phase and "--phase 2" in first_phase, first_phase
    code, report = _certs_status(rc)
    assert code == 0 and all(len(n["ca"]) == 2 for n in report["nodes"]), report
    for args in ((), ("--phase", "3")):
        out_of_order = rc.run("certs", "rotate", NAME, "--ca", *args)
        assert out_of_order.rc == 30 and "phases run in order" in out_of_order.err, out_of_order.text

    argv = [str(ROACHCTL), "--home", str(rc.home), "--ssh-config", str(rc.bed.ssh_config), "--yes",
            "certs", "rotate", NAME, "--ca", "--phase", "2"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    since = len(_journal(rc))

    def first_node() -> list[dict[str, Any]]:
        return [
            r for r in _journal(rc)[since:] if r.get("step") == "node-cert" and r.get("result") == "reloaded"
        ]

    first = wait_for("phase 2's first node", first_node, timeout=300, interval=0.1)[0]["host"]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    _sql_works(rc)  # mixed: some nodes on new-CA certs, all trusting both

    resumed = rc.run("certs", "rotate", NAME, "--ca", "--phase", "2", timeout=400)
    assert resumed.rc == 0 and f"{first}: already serves a certificate of the new CA" in resumed.err, (
        resumed.text
    )
    _sql_works(rc)
    _rotate_ca(rc, "--phase", "3")

    new_ca = _ca(rc)
    assert new_ca.cert.serial_number != old_ca.cert.serial_number
    code, report = _certs_status(rc)
    assert code == 0 and report["severity"] == "ok", report
    for node in report["nodes"]:
        assert [c["serial"] for c in node["ca"]] == [format(new_ca.cert.serial_number, "x")], node
        served = x509.load_pem_x509_certificate(rc.sh(node["host"], f"cat {CERTS}/node.crt").stdout.encode())
        assert node["served"]["sha256"] == node["disk"]["sha256"]
        served.verify_directly_issued_by(new_ca.cert)
    assert _pids(rc) == pids
    assert not (rc.home / "clusters" / NAME / "ca" / "rotation").exists()
    again = rc.run("certs", "rotate", NAME, "--ca", "--phase", "2")
    assert again.rc == 30, again.text  # no rotation under way: phase 2 is out of order
    dry = rc.deploy("--dry-run")  # the home holds what the nodes hold: the new CA and its node certs
    assert dry.rc == 0 and "\n0 changes" in "\n" + dry.out + dry.err, dry.text
