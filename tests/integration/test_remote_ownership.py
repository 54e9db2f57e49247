"""A host belongs to one cluster (docs/findings.md S-M4), on a real host: another cluster's deploy, destroy.

One host, tests in file order sharing it: cluster `alpha` is deployed and running; `beta` names the
same host with the same paths (another home, secure and insecure) and must be refused with the host
byte-for-byte unchanged, by deploy and by `destroy --wipe`; `alpha` from another home is refused;
`gamma` lives beside alpha with its own unit, home and data but the same release and user, and
destroying it keeps alpha's binary, user and node.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.bed import Bed
from tests.support.bed_fixtures import up_or_skip
from tests.support.release_fixtures import Releases
from tests.support.remote import DATA, Remote, stat_listing

pytestmark = [pytest.mark.bed, pytest.mark.slow]

HOST = "h1"
WATCHED = ["/opt", "/etc", "/var/lib"]
GAMMA = (
    "service:\n  unit: cockroach-gamma\npaths:\n  home: /opt/gamma\n  data: /var/lib/gamma\n"
    "defaults:\n  sql_port: 26357\n  http_port: 8180\n"
)


@pytest.fixture(scope="module")
def bed1() -> Iterator[Bed]:
    bed = up_or_skip(1, name="owner")
    try:
        yield bed
    finally:
        bed.down()


def _remote(bed: Bed, releases: Releases, work: Path, name: str, extra: str = "") -> Remote:
    remote = Remote(bed, work, name, releases.new, tarball=releases.tarball(releases.new), hosts=[HOST])
    remote.write_topology(extra)
    return remote


@pytest.fixture(scope="module")
def alpha(bed1: Bed, standin_releases: Releases, tmp_path_factory: pytest.TempPathFactory) -> Remote:
    return _remote(bed1, standin_releases, tmp_path_factory.mktemp("alpha"), "alpha")


@pytest.fixture(scope="module")
def releases(standin_releases: Releases) -> Releases:
    return standin_releases


def _host_state(rc: Remote) -> tuple[dict[str, str], str]:
    """Every path under /opt, /etc, /var/lib (inode, times, mode, owner) and alpha's MainPID."""
    pid = rc.show(HOST, "MainPID")["MainPID"]
    return stat_listing(rc.bed, HOST, WATCHED), pid


def test_deploy_writes_the_marker_and_a_second_deploy_changes_nothing(alpha: Remote) -> None:
    res = alpha.deploy()
    assert res.rc == 0, res.text
    assert alpha.run("start", "alpha").rc == 0
    marker = alpha.sh(HOST, "stat -c '%U %G %a' /etc/roachctl /etc/roachctl/cluster-alpha.owner").stdout
    assert marker.split("\n")[:2] == ["root root 755", "root root 644"], marker
    text = alpha.sh(HOST, "cat /etc/roachctl/cluster-alpha.owner").stdout
    owner = json.loads((alpha.home / "clusters" / "alpha" / "state.json").read_text())["owner_id"]
    assert f"cluster=alpha\nowner={owner}\nunit=cockroach.service\n" in text, text
    assert f"data={DATA}\n" in text and f"install=/opt/cockroach-{alpha.version}.linux-" in text, text
    again = alpha.deploy()
    assert again.rc == 0 and "0 changes" in again.err, again.text


@pytest.mark.parametrize("extra", ["", "secure: false\n"], ids=["secure", "insecure"])
def test_another_cluster_naming_the_host_is_refused_and_nothing_changes(
    alpha: Remote, releases: Releases, tmp_path: Path, extra: str
) -> None:
    before = _host_state(alpha)
    beta = _remote(alpha.bed, releases, tmp_path, "beta", extra)
    res = beta.deploy()
    assert res.rc == 30, res.text
    assert "this host belongs to cluster alpha, which owns unit cockroach.service" in res.err, res.err
    assert _host_state(alpha) == before


def test_the_same_cluster_from_another_home_is_refused(
    alpha: Remote, releases: Releases, tmp_path: Path
) -> None:
    before = _host_state(alpha)
    other = _remote(alpha.bed, releases, tmp_path, "alpha")  # a new, empty home
    res = other.deploy()
    assert res.rc == 30, res.text
    assert "managed by another roachctl home as cluster alpha" in res.err, res.err
    assert _host_state(alpha) == before
    assert not (other.home / "clusters" / "alpha" / "state.json").exists()


def test_destroy_wipe_of_another_cluster_never_touches_the_host(
    alpha: Remote, releases: Releases, tmp_path: Path
) -> None:
    """beta's home lists the host (its topology was edited after a deploy elsewhere)."""
    beta = _remote(alpha.bed, releases, tmp_path, "beta", "secure: false\n")
    cluster = beta.home / "clusters" / "beta"
    cluster.mkdir(parents=True)
    (cluster / "topology.yaml").write_bytes(beta.topology.read_bytes())
    state = {"name": "beta", "version": beta.version, "hosts": [HOST], "owner_id": "f" * 32}
    (cluster / "state.json").write_text(json.dumps(state))
    before = _host_state(alpha)
    res = beta.run("destroy", "beta", "--wipe")
    assert res.rc == 30, res.text
    assert "refusing to destroy what is not cluster beta's" in res.err, res.err
    assert f"{HOST}: this host belongs to cluster alpha" in res.err, res.err
    assert _host_state(alpha) == before
    assert (cluster / "state.json").exists()  # the home is kept too


def test_two_clusters_share_the_install_dir_and_destroying_one_keeps_the_other(
    alpha: Remote, releases: Releases, tmp_path: Path
) -> None:
    gamma = _remote(alpha.bed, releases, tmp_path, "gamma", GAMMA)
    install = f"/opt/cockroach-{alpha.version}.linux-amd64"
    res = gamma.deploy()
    assert res.rc == 0, res.text
    assert gamma.run("start", "gamma").rc == 0
    assert gamma.show(HOST, "ActiveState", unit="cockroach-gamma")["ActiveState"] == "active"
    assert "install=" + install in gamma.sh(HOST, "cat /etc/roachctl/cluster-gamma.owner").stdout
    alpha_pid = alpha.show(HOST, "MainPID")["MainPID"]
    alpha_files = {
        p: v for p, v in stat_listing(alpha.bed, HOST, [install, "/opt/cockroach", DATA]).items()
        if not p.startswith(f"{DATA}/")  # the running node writes below its data dir
    }  # fmt: skip

    res = gamma.run("destroy", "gamma", "--wipe")
    assert res.rc == 0, res.text
    left = gamma.sh(HOST, "ls /etc/roachctl; ls -d /opt/gamma /var/lib/gamma 2>&1 || true").stdout
    assert "cluster-gamma.owner" not in left and "cluster-alpha.owner" in left, left
    assert "No such file" in left, left
    assert alpha.show(HOST, "MainPID", "ActiveState") == {"MainPID": alpha_pid, "ActiveState": "active"}
    now = stat_listing(alpha.bed, HOST, [install, "/opt/cockroach", DATA])
    assert {p: now.get(p) for p in alpha_files} == alpha_files
    assert alpha.sh(HOST, "id -u cockroach", check=False).returncode == 0  # the shared user is kept
    version = alpha.sh(HOST, "/opt/cockroach/cockroach version", check=False)
    assert version.returncode == 0, version.stdout + version.stderr
    again = alpha.deploy()
    assert again.rc == 0 and "0 changes" in again.err, again.text
