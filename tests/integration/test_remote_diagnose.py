"""`doctor`, drift in `status`, `logs` and `debug-zip` (issue 12 items 4-7), on three real hosts.

One running cluster for the module. doctor finds nothing on it; then each planted problem — a
unit edited by hand (h1), a stop timeout shorter than the drain settings (h2, a drop-in), a node
certificate that expires in 10 days (h2, on disk), a flushed firewall (h3), a disk threshold no
store meets — is reported where it is, `status`
shows the drift (`deploy` converging it back is deploy's own tests' business). `logs
--follow` streams new lines from every node; a stopped node's `logs` shows its last lines; and
`debug-zip` with that node down holds the live nodes' data and the down node's on-disk logs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from roachctl.tls import pki, store
from tests.support.bed import Bed
from tests.support.release_fixtures import Releases
from tests.support.remote import CERTS, ROACHCTL, Remote, running_remote, wait_for

pytestmark = [pytest.mark.bed, pytest.mark.slow]

NAME = "diagnosed"
UNIT_FILE = "/etc/systemd/system/cockroach.service"
DROP_IN = "/etc/systemd/system/cockroach.service.d/short-stop.conf"


@pytest.fixture(scope="module")
def rc(bed3: Bed, standin_releases: Releases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    yield running_remote(bed3, standin_releases, tmp_path_factory.mktemp("remote-diagnose"), NAME)


def _doctor(rc: Remote, *args: str) -> tuple[int, list[dict[str, str]]]:
    res = rc.run("--json", "doctor", NAME, *args, timeout=300)
    assert res.rc in (0, 30), res.text
    return res.rc, json.loads(res.out)["findings"]


def test_doctor_reports_each_planted_problem_and_nothing_on_a_clean_cluster(rc: Remote) -> None:
    code, findings = _doctor(rc)
    assert (code, findings) == (0, []), findings

    h1, h2, h3 = rc.hosts
    rc.sh(h1, f"sed -i 's/^Restart=always/Restart=no/' {UNIT_FILE} && systemctl daemon-reload")
    rc.sh(h2, f"mkdir -p {os.path.dirname(DROP_IN)} && printf '[Service]\\nTimeoutStopSec=20s\\n' > {DROP_IN}"
              " && systemctl daemon-reload")  # fmt: skip
    rc.sh(h3, "nft flush ruleset")
    ca = store.load_ca(rc.home / "clusters" / NAME / "ca")  # h2's node.crt on disk expires in 10 days
    short = pki.create_node_cert(ca, [h2, "::1"], lifetime=dt.timedelta(days=10))
    rc.sh(h2, f"cat > /tmp/n.crt <<'EOF'\n{short.cert_pem().decode()}EOF\n"
              f"cat > /tmp/n.key <<'EOF'\n{short.key_pem().decode()}EOF\n"
              f"install -m 0644 /tmp/n.crt {CERTS}/node.crt && "
              f"install -m 0640 -g cockroach /tmp/n.key {CERTS}/node.key")  # fmt: skip
    code, findings = _doctor(rc, "--disk-threshold", "99.99")
    assert code == 30
    seen = {(f["host"], f["check"], f["severity"]) for f in findings}
    assert (h1, "unit drift", "error") in seen, findings
    assert (h2, "drain vs stop timeout", "error") in seen, findings
    assert (h3, "firewall", "error") in seen, findings
    assert (h2, "cert expiry", "warning") in seen, findings
    assert {(h, "disk", "warning") for h in rc.hosts} <= seen, findings
    assert all(f["hint"] for f in findings)
    planted = {(h1, "unit drift", "error"), (h2, "drain vs stop timeout", "error")}
    planted |= {(h3, "firewall", "error")} | {(h, "disk", "warning") for h in rc.hosts}
    planted |= {(h2, "cert expiry", "warning"), (h2, "cert served", "warning"), (h2, "drift", "warning")}
    unexpected = seen - planted
    assert not unexpected, findings
    assert all(n["drift"] is None for n in rc.status()["nodes"])  # only on demand: a fact round trip
    drift = {n["host"]: n["drift"] for n in rc.status("--drift")["nodes"]}
    assert [drift[h]["converged"] for h in rc.hosts] == [False, False, False], drift  # h2: its node.crt
    assert any(c["target"] == UNIT_FILE for c in drift[h1]["changes"]), drift[h1]
    rc.sh(h2, f"rm -f {DROP_IN} && systemctl daemon-reload")  # (the next test needs no clean state)


def _follow(rc: Remote) -> tuple[subprocess.Popen[str], list[str]]:
    argv = [str(ROACHCTL), "--home", str(rc.home), "--ssh-config", str(rc.bed.ssh_config), "logs", NAME,
            "--follow", "--lines", "0"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def test_logs_follow_a_stopped_node_and_debug_zip(rc: Remote, tmp_path: Path) -> None:
    proc, lines = _follow(rc)

    def every_node_reloaded() -> bool:
        for h in rc.hosts:
            rc.sh(h, "systemctl reload cockroach")
        got = {ln.split(" ", 1)[0] for ln in list(lines) if "hangup" in ln or "Reload" in ln}
        return got >= set(rc.hosts)

    wait_for("new lines from every node in logs --follow", every_node_reloaded, timeout=60, interval=2)
    hosts = {ln.split(" ", 1)[0] for ln in lines}
    assert hosts == set(rc.hosts), lines
    assert any(" log " in ln for ln in lines) and any(" journal " in ln for ln in lines), lines
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""

    h3 = rc.hosts[2]
    stopped = rc.run("stop", NAME, "--node", h3)
    assert stopped.rc == 0, stopped.text
    res = rc.run("logs", NAME, "--node", h3, "--lines", "30")
    assert res.rc == 0, res.text
    out = res.out.splitlines()
    assert out and all(ln.startswith(f"{h3} ") for ln in out), res.out
    assert any("server drained and shutdown completed" in ln for ln in out), res.out
    stamps = [ln.split(" ")[1] + ln.split(" ")[2] for ln in out]
    assert stamps == sorted(stamps), res.out

    target = tmp_path / "debug.zip"
    zipped = rc.run("--json", "debug-zip", NAME, str(target), "--redact", timeout=300)
    assert zipped.rc == 0, zipped.text
    names = zipfile.ZipFile(target).namelist()
    assert "debug/nodes/1/logs/cockroach.log" in names, names
    assert f"debug/down-nodes/{h3}/logs/cockroach.log" in names, names
    assert not [n for n in names if n.endswith("stacks.txt")], names  # off by default
    assert json.loads(zipped.out)["down_nodes"] == {h3: 1}
