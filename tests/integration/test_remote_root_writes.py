"""docs/findings.md S-H1/S-H2/S-L6 on a real host: root never writes through a path the service user controls.

One host, one single-node cluster, driven through the CLI; the service user `cockroach` is the
attacker (commands run as it with `runuser`, like code running in the database process). Tests
run in file order and share the cluster; each says what it leaves behind.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.bed import Bed
from tests.support.bed_fixtures import up_or_skip
from tests.support.release_fixtures import Releases
from tests.support.remote import CERTS, DATA, Remote, stat_listing, wait_for

pytestmark = [pytest.mark.bed, pytest.mark.slow]

NAME = "rootw"
HOST = "h1"
VICTIM_DIR = "/usr/local/bin"  # root's, early in sudo's secure_path: S-H2's target
VICTIM_FILE = "/etc/roachctl-victim"  # stands for /etc/sudoers or /root/.ssh/authorized_keys (S-H1)

# The attacker of docs/findings.md S-H1: watch the certs dir; whenever root's temp file appears, move
# it away and put a symlink to the victim in its place (root would then write the key into the victim
# and chown it).
ATTACKER = r"""
import os, signal, sys, time
d, victim, log, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
seen = won = 0
errors = set()
end = time.time() + seconds
def report(*_):
    with open(log, "w") as f:
        f.write(f"{seen} {won} {','.join(sorted(errors))}\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, report)
while time.time() < end:
    try:
        names = os.listdir(d)
    except OSError as e:
        errors.add(type(e).__name__)
        time.sleep(0.01)
        continue
    for n in names:
        if n.startswith(".roachctl-put."):
            seen += 1
            p = os.path.join(d, n)
            try:
                os.rename(p, p + ".stolen")  # same dir: a rename, as S-H1's attacker does
                os.symlink(victim, p)
                won += 1
            except OSError as e:
                errors.add(type(e).__name__)
report()
"""


@pytest.fixture(scope="module")
def bed1() -> Iterator[Bed]:
    bed = up_or_skip(1, name="rootw")
    try:
        yield bed
    finally:
        bed.down()


@pytest.fixture(scope="module")
def rc(bed1: Bed, standin_releases: Releases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    work = tmp_path_factory.mktemp("remote-rootw")
    remote = Remote(bed1, work, NAME, standin_releases.new,
                    tarball=standin_releases.tarball(standin_releases.new), hosts=[HOST])  # fmt: skip
    remote.write_topology()
    yield remote


def _as_svc(rc: Remote, cmd: str, *, check: bool = True) -> str:
    """`sh -c CMD` as the service user on the host (the attacker)."""
    res = rc.sh(HOST, f"runuser -u cockroach -- sh -c {_q(cmd)} 2>&1", check=check)
    return res.stdout


def _q(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _victim_state(rc: Remote) -> dict[str, str]:
    """Owner/mode/content of both victims (stat_listing has inode, mtime, ctime, mode, owner)."""
    listing = stat_listing(rc.bed, HOST, [VICTIM_DIR, VICTIM_FILE])
    content = rc.sh(HOST, f"cat {VICTIM_FILE}; ls -la {VICTIM_DIR}").stdout
    return {**listing, "content": content}


def _check_attacker_lost(rc: Remote) -> None:
    """The attacker's own account: it never won a swap; every attempt it made was denied."""
    log = rc.sh(HOST, "cat /tmp/attacker.log").stdout.split()
    print("attacker (temp files seen, swaps won, errors):", log)
    won, errors = int(log[1]), set(log[2].split(",")) if len(log) > 2 else set()
    assert won == 0, log
    # Denied, or too late (root's rename already took the temp file): nothing else happened.
    assert errors <= {"PermissionError", "FileNotFoundError"}, log


def _ready(rc: Remote) -> None:
    """The node runs and is ready (readiness as `status` probes it: /health?ready=1 over TLS)."""
    wait_for("node ready", lambda: all(n["ready"] is True and n["service"] == "active"
                                       for n in rc.status()["nodes"]), timeout=60)  # fmt: skip


def test_deploy_and_start_with_root_owned_certs(rc: Remote) -> None:
    """The new layout (certs dir root:<svc> 0750, key root:<svc> 0640) passes the node's key
    permission check (contract §7, as strict in the stand-in) and the node becomes ready."""
    rc.sh(HOST, f"printf ORIGINAL > {VICTIM_FILE} && chmod 0644 {VICTIM_FILE}")
    res = rc.deploy()
    assert res.rc == 0, res.text
    paths = f"{CERTS} {CERTS}/node.key {CERTS}/node.crt {CERTS}/ca.crt"
    out = rc.sh(HOST, f"stat -c '%n %a %U:%G' {paths}").stdout
    assert out.split("\n")[:4] == [
        f"{CERTS} 750 root:cockroach",
        f"{CERTS}/node.key 640 root:cockroach",
        f"{CERTS}/node.crt 644 root:root",
        f"{CERTS}/ca.crt 644 root:root",
    ], out
    start = rc.run("start", NAME)
    assert start.rc == 0, start.text
    _ready(rc)
    again = rc.deploy()
    assert again.rc == 0 and "0 changes" in again.err, again.text


def test_the_service_user_can_read_its_certs_but_change_nothing_there(rc: Remote) -> None:
    assert "BEGIN" in _as_svc(rc, f"cat {CERTS}/node.key")
    for attempt in (f"rm -f {CERTS}/node.crt", f"mv {CERTS}/node.crt {CERTS}/x", f"touch {CERTS}/planted",
                    f"ln -s {VICTIM_FILE} {CERTS}/link", f"chmod 0777 {CERTS}"):  # fmt: skip
        out = _as_svc(rc, attempt, check=False)
        assert "ermission denied" in out or "not permitted" in out, (attempt, out)
    assert sorted(rc.sh(HOST, f"ls -A {CERTS}").stdout.split()) == ["ca.crt", "node.crt", "node.key"]


def test_h1_the_service_user_cannot_swap_roots_temp_file(rc: Remote) -> None:
    """docs/findings.md S-H1: the attacker races every certificate write; root writes only in its own
    dir, so every swap fails, the victim is untouched and the certificate is right."""
    before = _victim_state(rc)
    good = rc.sh(HOST, f"sha256sum < {CERTS}/node.crt").stdout
    rc.sh(HOST, f"cat > /tmp/attacker.py <<'EOF'\n{ATTACKER}EOF\nrm -f /tmp/attacker.log")
    rc.sh(HOST, "systemd-run --quiet --uid=cockroach --unit=attacker python3 /tmp/attacker.py "
                f"{CERTS} {VICTIM_FILE} /tmp/attacker.log 60")  # fmt: skip
    try:
        for _ in range(3):  # root deletes the cert: each deploy writes it again through a temp file
            rc.sh(HOST, f"rm -f {CERTS}/node.crt")
            res = rc.deploy()
            assert res.rc == 0, res.text
            assert f"write-file {CERTS}/node.crt (missing)" in res.err, res.err
    finally:
        rc.sh(HOST, "systemctl stop attacker", check=False)
    _check_attacker_lost(rc)
    assert _victim_state(rc) == before
    assert rc.sh(HOST, f"sha256sum < {CERTS}/node.crt").stdout == good
    assert rc.sh(HOST, f"stat -c '%a %U:%G' {CERTS}/node.crt").stdout.strip() == "644 root:root"
    assert sorted(rc.sh(HOST, f"ls -A {CERTS}").stdout.split()) == ["ca.crt", "node.crt", "node.key"]
    _ready(rc)


def test_h2_a_symlink_planted_for_a_data_subdir_is_refused_and_the_victim_unchanged(rc: Remote) -> None:
    """docs/findings.md S-H2: the service user replaces <data>/logs with a link to /usr/local/bin. The
    deploy is refused (exit 30) naming the path; /usr/local/bin keeps its owner, mode and content."""
    stop = rc.run("stop", NAME)
    assert stop.rc == 0, stop.text
    before = _victim_state(rc)
    _as_svc(rc, f"rm -rf {DATA}/logs && ln -s {VICTIM_DIR} {DATA}/logs")
    res = rc.deploy()
    assert res.rc == 30, res.text
    assert f"{DATA}/logs is a symlink to {VICTIM_DIR}, expected a directory" in res.err, res.err
    assert "remove the symlink" in res.err, res.err
    assert _victim_state(rc) == before
    # The operator removes the link: the next deploy recreates the dir (as the service user).
    rc.sh(HOST, f"rm {DATA}/logs")
    fixed = rc.deploy()
    assert fixed.rc == 0 and f"create-dir {DATA}/logs (missing)" in fixed.err, fixed.text
    logs = rc.sh(HOST, f"stat -c '%F %a %U:%G' {DATA}/logs").stdout.strip()
    assert logs == "directory 700 cockroach:cockroach", logs
    assert _victim_state(rc) == before


def test_l6_an_operators_data_dir_symlink_is_supported_when_allowed(rc: Remote) -> None:
    """The data dir moved to a bigger disk and linked: refused by default, with the hint; with
    `paths.allow_data_symlink: true` the deploy manages the target and a second one is a no-op."""
    rc.sh(HOST, f"mkdir -p /srv/big && mv {DATA} /srv/big/cockroach && ln -s /srv/big/cockroach {DATA}")
    refused = rc.deploy()
    assert refused.rc == 30 and "allow_data_symlink: true" in refused.err, refused.text
    rc.write_topology(extra="paths:\n  allow_data_symlink: true\n")
    first = rc.deploy()
    assert first.rc == 0, first.text
    second = rc.deploy()
    assert second.rc == 0 and "0 changes" in second.err, second.text
    start = rc.run("start", NAME)
    assert start.rc == 0, start.text
    _ready(rc)
    out = rc.sh(HOST, f"stat -c '%F %U' {DATA} /srv/big/cockroach/cockroach-data").stdout.split("\n")
    assert out[:2] == ["symbolic link root", "directory cockroach"], out


def test_old_certs_layout_is_migrated_without_writing_into_a_service_owned_dir(rc: Remote) -> None:
    """Hosts deployed before the fix have certs owned by the service user (dir 0700, key 0600).
    The dir is made root's first; then the files are replaced; the attacker races it all."""
    rc.sh(HOST, f"chown -R cockroach:cockroach {CERTS} && chmod 0700 {CERTS} && chmod 0600 {CERTS}/node.key")
    before = _victim_state(rc)
    rc.sh(HOST, "rm -f /tmp/attacker.log")
    rc.sh(HOST, "systemd-run --quiet --uid=cockroach --unit=attacker2 python3 /tmp/attacker.py "
                f"{CERTS} {VICTIM_FILE} /tmp/attacker.log 30")  # fmt: skip
    try:
        res = rc.deploy()
    finally:
        rc.sh(HOST, "systemctl stop attacker2", check=False)
    _check_attacker_lost(rc)
    assert res.rc == 0, res.text
    plan = [line.strip() for line in res.err.splitlines() if CERTS in line]
    assert plan and "fix-dir" in plan[0], plan
    assert _victim_state(rc) == before
    out = rc.sh(HOST, f"stat -c '%a %U:%G' {CERTS} {CERTS}/node.key {CERTS}/ca.crt").stdout.split("\n")
    assert out[:3] == ["750 root:cockroach", "640 root:cockroach", "644 root:root"], out
    _ready(rc)
    again = rc.deploy()
    assert again.rc == 0 and "0 changes" in again.err, again.text


def test_destroy_wipe_removes_the_data_through_the_allowed_symlink(rc: Remote) -> None:
    """With the data dir linked to another disk, --wipe removes the stores and logs on that disk
    (through root's link) and the link itself; it follows no link the service user planted."""
    before = _victim_state(rc)
    _as_svc(rc, f"ln -s {VICTIM_DIR} {DATA}/planted")
    res = rc.run("destroy", NAME, "--wipe")
    assert res.rc == 0, res.text
    left = rc.sh(HOST, f"ls -A /srv/big/cockroach; test -e {DATA} && echo data-left || true").stdout.split()
    assert "cockroach-data" not in left and "logs" not in left and "data-left" not in left, left
    assert _victim_state(rc) == before
