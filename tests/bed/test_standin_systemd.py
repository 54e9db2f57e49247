"""The stand-in `cockroach` under real systemd, deployed by hand the way the seed did.

Hosts h1..h3 form the cluster; h4 is a fourth machine used for nodes that must NOT get in (wrong CA,
wrong SAN, loose key mode). Layout per host (seed-digest.md): /opt/cockroach-VERSION.linux-ARCH/ (root:root),
/opt/cockroach/cockroach -> ../cockroach-VERSION.linux-ARCH/cockroach, /opt/cockroach/certs/, data in
/var/lib/cockroach (user `cockroach`), unit /etc/systemd/system/cockroach.service after contract §8
(Type=notify, ExecReload=/bin/kill -HUP $MAINPID, absolute paths).

The tests run in file order and share one cluster; each step leaves the cluster healthy for the next,
except the last (quorum loss).
"""

from __future__ import annotations

import concurrent.futures
import json
import shlex
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from roachctl.tls import pki, store
from tests.standin import make_release
from tests.support.bed import Bed, Host
from tests.support.bed_fixtures import up_or_skip
from tests.support.release_fixtures import NEW_VERSION, Releases

pytestmark = [pytest.mark.bed, pytest.mark.slow]

T = TypeVar("T")
HOME = "/opt/cockroach"
BIN = f"{HOME}/cockroach"
CERTS = f"{HOME}/certs"
DATA = "/var/lib/cockroach"
STORE = f"{DATA}/cockroach-data"
EVENTS = f"{STORE}/standin-events.jsonl"
LOGFILE = f"{STORE}/logs/cockroach.log"
CLIENT_CERTS = "/root/client-certs"
UNIT = "cockroach"
RPC_PORT, HTTP_PORT = 26257, 8080
LIVENESS_SECS = 6.0  # the stand-in's default COCKROACH_STANDIN_LIVENESS_SECS
CLUSTER_NAME = "bedtest"  # every node runs with --cluster-name, like a roachctl deployment (contract §2.1)
NAME_CHECK = "initial connection heartbeat failed: cluster name check failed on ping response: "
EXPECTS = f'peer node expects cluster name "{CLUSTER_NAME}", use --cluster-name to configure'
DRAIN_TIMEOUT = (
    "ERROR: drain timeout, consider adjusting --drain-wait, especially under custom server.shutdown "
    'cluster settings\nFailed running "node drain"\n'
)


def wait_for(what: str, fn: Callable[[], T | None], timeout: float = 60, interval: float = 0.5) -> T:
    """Poll fn until it returns a truthy value; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def unit_text(host: Host, join: list[str]) -> str:
    addr = f"{host.ip}:{RPC_PORT}"
    start = (
        f"{BIN} start --certs-dir={CERTS} --store={STORE} --listen-addr={addr} --advertise-addr={addr} "
        f"--http-addr={host.ip}:{HTTP_PORT} --join={','.join(join)} --cache=.25 --max-sql-memory=.25 "
        f"--cluster-name={CLUSTER_NAME}"
    )
    return f"""\
[Unit]
Description=Cockroach Database cluster node
Requires=network.target
After=network.target

[Service]
Type=notify
User=cockroach
WorkingDirectory={DATA}
ExecStart={start}
ExecReload=/bin/kill -HUP $MAINPID
TimeoutStopSec=300
Restart=always
RestartSec=10
StandardOutput=journal
StandardError=journal
SyslogIdentifier=cockroach

[Install]
WantedBy=default.target
"""


@dataclass
class Cluster:
    bed: Bed
    nodes: list[Host]  # h1..h3
    spare: Host  # h4
    ca: pki.KeyPair
    ca_file: Path
    certs_root: Path
    release: str  # cockroach-VERSION.linux-ARCH

    def show(self, host: Host, *props: str) -> dict[str, str]:
        out = self.bed.ssh(host.name, f"systemctl show {UNIT} -p {','.join(props)}").stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def events(self, host: Host) -> list[dict[str, Any]]:
        out = self.bed.ssh(host.name, f"cat {EVENTS} 2>/dev/null || true").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def since_last_start(self, host: Host) -> list[str]:
        evs = [e["event"] for e in self.events(host)]
        idx = max(i for i, e in enumerate(evs) if e == "start")
        return evs[idx:]

    def health(self, host: Host, ca_file: Path | None = None, check_san: bool = True) -> tuple[int, str]:
        """GET https://IP:8080/health?ready=1, verifying the node cert against ca.crt (and its IP SAN)."""
        ctx = ssl.create_default_context(cafile=str(ca_file or self.ca_file))
        ctx.check_hostname = check_san
        url = f"https://{host.ip}:{HTTP_PORT}/health?ready=1"
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except (urllib.error.URLError, OSError) as exc:
            return 0, str(exc)

    def ready(self, host: Host) -> bool:
        return self.health(host)[0] == 200

    def node_status(self, via: Host) -> list[dict[str, str]]:
        res = self.bed.ssh(
            via.name,
            f"{BIN} node status --format=json --certs-dir={CLIENT_CERTS} --host={via.ip}:{RPC_PORT}",
        )
        rows: list[dict[str, str]] = json.loads(res.stdout)
        return rows

    def cli(self, host: Host, args: str, env: str = "", timeout: float = 90) -> Any:
        """`cockroach <args>` on host against its own node, with the root client certs."""
        cmd = f"{env} {BIN} {args} --certs-dir={CLIENT_CERTS} --host={host.ip}:{RPC_PORT}"
        return self.bed.ssh(host.name, cmd.strip(), check=False, timeout=timeout)

    def drain(self, host: Host, extra: str = f"--cluster-name={CLUSTER_NAME}", cap: float = 0) -> Any:
        env = f"COCKROACH_STANDIN_DRAIN_WAIT_CAP_SECS={cap}" if cap else ""
        return self.cli(host, f"node drain --self {extra}", env=env)

    def set_stop_timeout(self, host: Host, secs: int | None) -> None:
        """A unit drop-in that shortens TimeoutStopSec (None removes it)."""
        d = f"/etc/systemd/system/{UNIT}.service.d"
        cmd = (
            f"rm -f {d}/stop.conf"
            if secs is None
            else (f"mkdir -p {d} && printf '[Service]\\nTimeoutStopSec={secs}\\n' > {d}/stop.conf")
        )
        self.bed.ssh(host.name, f"{cmd} && systemctl daemon-reload")

    def kill_and_start(self, host: Host) -> None:
        """SIGKILL a node whose drain can never finish, then start it again."""
        self.bed.ssh(
            host.name, f"systemctl kill -s SIGKILL {UNIT}; sleep 0.5; systemctl restart {UNIT}", timeout=120
        )

    def last_drain(self, host: Host) -> list[str]:
        """The events of this process since its last drain_begin."""
        evs = self.since_last_start(host)
        idx = max(i for i, e in enumerate(evs) if e == "drain_begin")
        return evs[idx:]

    def live_map(self, via: Host) -> dict[str, str]:
        return {r["address"]: r["is_live"] for r in self.node_status(via)}

    def log_text(self, host: Host) -> str:
        return self.bed.ssh(host.name, f"cat {LOGFILE} 2>/dev/null || true").stdout

    def journal(self, host: Host) -> str:
        return self.bed.ssh(host.name, f"journalctl -u {UNIT} --no-pager -q -o cat").stdout

    def put_node_certs(self, host: Host, ca: pki.KeyPair, sans: list[str], key_mode: int = 0o600) -> None:
        local = self.certs_root / f"{host.name}-{len(list(self.certs_root.iterdir()))}"
        store.write_node_certs(local, ca, sans)
        self.bed.ssh(host.name, f"rm -rf {CERTS}")
        self.bed.put(host.name, local, CERTS)
        self.bed.ssh(
            host.name,
            f"chown -R cockroach:cockroach {CERTS} && chmod 0700 {CERTS} && "
            f"chmod {key_mode:o} {CERTS}/node.key",
        )


def deploy(bed: Bed, host: Host, tarball: Path, release: str) -> None:
    """The seed's manual install: versioned dir, stable symlink, GEOS libs, service user, data dir."""
    bed.put(host.name, tarball, f"/tmp/{tarball.name}")
    bed.ssh(
        host.name,
        "set -e\n"
        "id cockroach >/dev/null 2>&1 || useradd --system --home-dir /var/lib/cockroach "
        "--shell /usr/sbin/nologin cockroach\n"
        f"tar -xzf /tmp/{tarball.name} -C /opt\n"
        f"stat -c %u:%g /opt/{release}/cockroach > /root/tar-owner\n"
        f"chown -R root:root /opt/{release}\n"
        f"mkdir -p {HOME} /usr/local/lib/cockroach\n"
        f"ln -sfn ../{release}/cockroach {BIN}\n"
        f"cp /opt/{release}/lib/libgeos.so /opt/{release}/lib/libgeos_c.so /usr/local/lib/cockroach/\n"
        f"install -d -o cockroach -g cockroach -m 0700 {DATA}\n"
        f"rm -f /tmp/{tarball.name}\n",
    )


def install_unit(bed: Bed, host: Host, join: list[str]) -> None:
    bed.ssh(host.name, f"cat > /etc/systemd/system/{UNIT}.service", input=unit_text(host, join))
    bed.ssh(host.name, f"systemctl daemon-reload && systemctl enable {UNIT} 2>/dev/null")


@pytest.fixture(scope="module")
def cluster(standin_releases: Releases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    bed = up_or_skip(4, "test_standin_systemd")
    try:
        root = tmp_path_factory.mktemp("systemd-certs")
        ca = pki.create_ca()
        ca_file = root / "ca.crt"
        ca_file.write_bytes(ca.cert_pem())
        certs_root = root / "nodes"
        certs_root.mkdir()
        tarball = standin_releases.tarball(NEW_VERSION)
        release = make_release.release_name(NEW_VERSION, standin_releases.arch)
        nodes, spare = bed.hosts[:3], bed.hosts[3]
        c = Cluster(bed, nodes, spare, ca, ca_file, certs_root, release)
        join = [f"{h.ip}:{RPC_PORT}" for h in nodes]
        client = root / "client"
        store.write_client_certs(client, ca, "root")
        for host in bed.hosts:
            deploy(bed, host, tarball, release)
            install_unit(bed, host, join)
        for host in nodes:
            c.put_node_certs(host, ca, [host.name, host.ip])
            bed.put(host.name, client, CLIENT_CERTS)
            bed.ssh(host.name, f"chmod 0700 {CLIENT_CERTS}")
        yield c
    finally:
        bed.down()


# ----------------------------------------------------------------------------------------------------------


def test_install_fixed_tarball_ownership(cluster: Cluster) -> None:
    for host in cluster.nodes:
        cmd = f"cat /root/tar-owner; stat -c '%u:%g %a' /opt/{cluster.release}/cockroach; readlink {BIN}"
        out = cluster.bed.ssh(host.name, cmd).stdout.splitlines()
        assert out[0] == "1002:1003"  # what the tarball carried (the seed's lesson 2)
        assert out[1] == "0:0 755"
        assert out[2] == f"../{cluster.release}/cockroach"
        version = cluster.bed.ssh(host.name, f"{BIN} version --build-tag").stdout
        assert version == f"{NEW_VERSION}\n"


def test_type_notify_start_returns_active(cluster: Cluster) -> None:
    bed = cluster.bed
    for host in cluster.nodes:
        t0 = time.monotonic()
        res = bed.ssh(host.name, f"systemctl start {UNIT}", check=False, timeout=120)
        took = time.monotonic() - t0
        assert res.returncode == 0, res.stderr + cluster.journal(host)
        props = cluster.show(host, "Type", "ActiveState", "SubState", "MainPID", "NotifyAccess", "ExecReload")
        assert props["Type"] == "notify"
        assert (props["ActiveState"], props["SubState"]) == ("active", "running")
        assert int(props["MainPID"]) > 0
        assert "argv[]=/bin/kill -HUP $MAINPID" in props["ExecReload"], props["ExecReload"]
        evs = [e["event"] for e in cluster.events(host)]
        assert evs[:2] == ["start", "listening"], evs  # READY=1 came after the listeners were up
        assert took < 60
    # started != ready: a brand-new cluster waits for `cockroach init` (the seed's `status` mistake)
    for host in cluster.nodes:
        code, body = cluster.health(host)
        assert code == 503
        assert json.loads(body)["message"] == "node is waiting for cluster initialization"


def test_init_once(cluster: Cluster) -> None:
    h1 = cluster.nodes[0]
    # without the cluster's name `init` never gets past its first heartbeat (contract §2.1, §3)
    res = cluster.cli(h1, "init", env="COCKROACH_STANDIN_INIT_WAIT_SECS=3")
    assert (res.returncode, res.stdout) == (1, "")
    warning = f"warning: node not ready to perform cluster initialization: {NAME_CHECK}{EXPECTS} (retrying)\n"
    assert res.stderr.startswith(warning), res.stderr
    assert res.stderr.endswith(f'ERROR: {NAME_CHECK}{EXPECTS}\nFailed running "init"\n'), res.stderr
    assert json.loads(cluster.health(h1)[1])["message"] == "node is waiting for cluster initialization"
    res = cluster.cli(h1, f"init --cluster-name={CLUSTER_NAME}")
    assert (res.returncode, res.stdout) == (0, "Cluster successfully initialized\n"), res.stderr


def test_all_ready_over_https(cluster: Cluster) -> None:
    for host in cluster.nodes:
        wait_for(f"{host.name} /health?ready=1", lambda h=host: cluster.ready(h), timeout=60)  # type: ignore[misc]
        assert cluster.health(host) == (200, "{\n\n}")
    # the CA check is real: another CA's ca.crt does not verify the node
    other = cluster.certs_root.parent / "other-ca.crt"
    other.write_bytes(pki.create_ca().cert_pem())
    code, body = cluster.health(cluster.nodes[0], ca_file=other)
    assert code == 0 and "CERTIFICATE_VERIFY_FAILED" in body


def test_second_init_fails(cluster: Cluster) -> None:
    # Sent once every node has joined (deterministic). An early stand-in bootstrapped a second cluster when
    # `init` reached a node that had not joined yet; it now refuses that too (tests/standin/README.md).
    h2 = cluster.nodes[1]
    res = cluster.cli(h2, f"init --cluster-name={CLUSTER_NAME}")
    assert res.returncode == 1
    assert res.stdout == ""
    assert res.stderr == 'ERROR: cluster has already been initialized\nFailed running "init"\n'


def test_node_status_three_live(cluster: Cluster) -> None:
    rows = cluster.node_status(cluster.nodes[1])
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    assert {r["address"] for r in rows} == {f"{h.ip}:{RPC_PORT}" for h in cluster.nodes}
    assert all(r["is_live"] == "true" and r["is_available"] == "true" for r in rows), rows
    assert all(r["build"] == NEW_VERSION for r in rows)
    assert list(rows[0]) == sorted(rows[0])  # json keys sorted (contract §5)


def test_nameless_drain_refused_against_named_cluster(cluster: Cluster) -> None:
    """contract §2.1: `node drain` is a gRPC client command; without the name nothing is drained."""
    h1 = cluster.nodes[0]
    res = cluster.drain(h1, extra="")
    assert (res.returncode, res.stdout) == (1, "")
    assert (
        res.stderr
        == f'ERROR: failed to connect to the node: {NAME_CHECK}{EXPECTS}\nFailed running "node drain"\n'
    )
    res = cluster.drain(h1, extra="--cluster-name=other")
    assert res.returncode == 1
    assert f'local cluster name "other" does not match peer cluster name "{CLUSTER_NAME}"' in res.stderr
    assert cluster.ready(h1)
    assert "drain_begin" not in cluster.since_last_start(h1)


def test_sql_commands_reject_cluster_name(cluster: Cluster) -> None:
    h2 = cluster.nodes[1]
    for cmd, shown in (("sql -e 'select 1'", "sql"), ("node status", "node status"), ("node ls", "node ls")):
        res = cluster.cli(h2, f"{cmd} --cluster-name={CLUSTER_NAME}")
        assert (res.returncode, res.stderr) == (
            4,
            f'ERROR: unknown flag: --cluster-name\nFailed running "{shown}"\n',
        ), cmd
        assert cluster.cli(h2, cmd).returncode == 0


def test_reload_keeps_node_up_and_reloads_certs(cluster: Cluster) -> None:
    h1 = cluster.nodes[0]
    before = cluster.show(h1, "MainPID")["MainPID"]
    n_before = sum(1 for e in cluster.events(h1) if e["event"] == "cert_reload")
    cluster.bed.ssh(h1.name, f"systemctl reload {UNIT}")
    reloads = wait_for(
        "cert_reload event",
        lambda: [e for e in cluster.events(h1) if e["event"] == "cert_reload"][n_before:] or None,
        timeout=20,
    )
    assert reloads[0]["ok"] is True
    assert str(reloads[0]["pid"]) == before
    props = cluster.show(h1, "MainPID", "ActiveState", "NRestarts")
    assert props["MainPID"] == before
    assert props["ActiveState"] == "active"
    assert props["NRestarts"] == "0"
    assert 'received signal "hangup", triggering certificate reload' in cluster.log_text(h1)
    assert "exit" not in cluster.since_last_start(h1)
    assert cluster.ready(h1)


def test_graceful_stop_of_one_node_keeps_others_ready(cluster: Cluster) -> None:
    h1, h2, h3 = cluster.nodes
    bed = cluster.bed
    t0 = time.monotonic()
    bed.ssh(h3.name, f"systemctl stop {UNIT}", timeout=120)
    assert time.monotonic() - t0 < 30
    props = cluster.show(h3, "ActiveState", "Result", "ExecMainStatus")
    assert props == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}
    tail = cluster.since_last_start(h3)
    assert tail[-3:] == ["drain_begin", "drain_end", "exit"], tail
    assert cluster.events(h3)[-1]["code"] == 0
    # after h3's liveness expired, the other two still serve (2 of 3 is a quorum)
    time.sleep(LIVENESS_SECS + 1.5)
    assert cluster.ready(h1) and cluster.ready(h2)
    live = cluster.live_map(h1)
    assert live[f"{h3.ip}:{RPC_PORT}"] == "false"
    assert live[f"{h1.ip}:{RPC_PORT}"] == live[f"{h2.ip}:{RPC_PORT}"] == "true"
    # and it comes back
    bed.ssh(h3.name, f"systemctl start {UNIT}", timeout=120)
    wait_for("h3 ready again", lambda: cluster.ready(h3), timeout=60)


def _start_spare(cluster: Cluster) -> None:
    h4 = cluster.spare
    cluster.bed.ssh(h4.name, f"systemctl stop {UNIT}; rm -rf {STORE}; systemctl reset-failed {UNIT} || true")
    cluster.bed.ssh(h4.name, f"systemctl start {UNIT}", timeout=120)


def _assert_spare_kept_out(cluster: Cluster, ca_file: Path | None = None, check_san: bool = True) -> None:
    h4 = cluster.spare
    time.sleep(6)  # several join attempts (the stand-in polls every second)
    evs = [e["event"] for e in cluster.events(h4)]
    assert "joined" not in evs and "ready" not in evs, evs
    code, body = cluster.health(h4, ca_file=ca_file, check_san=check_san)
    assert code == 503 and json.loads(body)["message"] == "node is waiting for cluster initialization"
    assert len(cluster.node_status(cluster.nodes[0])) == 3
    assert cluster.show(h4, "ActiveState")["ActiveState"] == "active"  # it runs; it just never gets in


def test_wrong_ca_node_fails_to_join(cluster: Cluster) -> None:
    h4 = cluster.spare
    other_ca = pki.create_ca()
    cluster.put_node_certs(h4, other_ca, [h4.name, h4.ip])
    _start_spare(cluster)
    other_ca_file = cluster.certs_root.parent / "spare-ca.crt"
    other_ca_file.write_bytes(other_ca.cert_pem())
    _assert_spare_kept_out(cluster, ca_file=other_ca_file)
    log = cluster.log_text(h4)
    assert "certificate signed by unknown authority" in log, log[-2000:]
    cluster.bed.ssh(h4.name, f"systemctl stop {UNIT}")


def test_wrong_san_node_fails_to_join(cluster: Cluster) -> None:
    h4 = cluster.spare
    wrong_ip = f"127.201.{cluster.bed.k}.99"
    cluster.put_node_certs(h4, cluster.ca, ["h9", wrong_ip])  # right CA, but not valid for h4's address
    _start_spare(cluster)
    code, body = cluster.health(h4)  # our own HTTPS client refuses it too
    assert code == 0 and "IP address mismatch" in body, body
    _assert_spare_kept_out(cluster, check_san=False)
    log = cluster.log_text(h4)
    assert f"x509: certificate is valid for {wrong_ip}, 127.0.0.1, not {h4.ip}" in log or (
        f"not {h4.ip}" in log and "x509: certificate is valid for" in log
    ), log[-2000:]
    cluster.bed.ssh(h4.name, f"systemctl stop {UNIT}")


def test_loose_key_mode_fails_the_unit(cluster: Cluster) -> None:
    h4 = cluster.spare
    bed = cluster.bed
    cluster.put_node_certs(h4, cluster.ca, [h4.name, h4.ip], key_mode=0o644)
    bed.ssh(h4.name, f"systemctl stop {UNIT}; rm -rf {STORE}; systemctl reset-failed {UNIT} || true")
    res = bed.ssh(h4.name, f"systemctl start {UNIT}", check=False, timeout=120)
    assert res.returncode != 0
    props = cluster.show(h4, "Result", "ExecMainStatus", "ExecMainCode")
    assert props["Result"] == "exit-code", props
    assert props["ExecMainStatus"] == "1"
    expected = f"key file {CERTS}/node.key has permissions -rw-r--r--, exceeds -rwx------"
    wait_for("key error in the journal", lambda: expected in cluster.journal(h4), timeout=15)
    assert cluster.show(h4, "ActiveState")["ActiveState"] in ("activating", "failed")  # Restart=always
    bed.ssh(h4.name, f"systemctl stop {UNIT}; systemctl disable {UNIT} 2>/dev/null")
    assert len(cluster.node_status(cluster.nodes[0])) == 3


def test_crashed_host_not_live_and_recovers(cluster: Cluster) -> None:
    h1, h2, h3 = cluster.nodes
    addr3 = f"{h3.ip}:{RPC_PORT}"
    cluster.bed.crash(h3.name)
    wait_for("h3 not live on h1", lambda: cluster.live_map(h1)[addr3] == "false", timeout=30)
    assert cluster.live_map(h2)[addr3] == "false"
    assert cluster.ready(h1) and cluster.ready(h2)
    # power back on: the enabled unit starts at boot and notices the unclean end of the previous run
    cluster.bed.boot(h3.name)
    wait_for("h3 ready after reboot", lambda: cluster.ready(h3), timeout=90)
    unclean = [e for e in cluster.events(h3) if e["event"] == "unclean_previous_exit"]
    assert unclean, cluster.since_last_start(h3)
    assert wait_for("h3 live again", lambda: cluster.live_map(h1)[addr3] == "true", timeout=30)


def _all_ready(cluster: Cluster) -> None:
    for host in cluster.nodes:
        wait_for(f"{host.name} ready", lambda h=host: cluster.ready(h), timeout=90)  # type: ignore[misc]


def test_majority_backed_drain_completes_and_stays_draining(cluster: Cluster) -> None:
    """contract §4.1: a single drain with a live majority finishes; the node stays unready until it
    restarts; the restart's SIGTERM drain (a second liveness write) still has a majority and exits 0."""
    h1 = cluster.nodes[0]
    _all_ready(cluster)
    res = cluster.drain(h1)
    assert (res.returncode, res.stdout) == (0, "drain ok\n"), res.stderr
    assert res.stderr.endswith("node is draining... remaining: 0 (complete)\n")
    time.sleep(1)
    code, body = cluster.health(h1)
    assert code == 503 and json.loads(body)["message"] == "node is shutting down"
    res = cluster.cli(h1, "sql -e 'select 1'")
    assert res.returncode == 1 and "server is not accepting clients" in res.stderr
    cluster.bed.ssh(h1.name, f"systemctl restart {UNIT}", timeout=120)
    evs = cluster.events(h1)
    last_start = max(i for i, e in enumerate(evs) if e["event"] == "start")
    prev = [e["event"] for e in evs[:last_start]]
    assert prev[-5:] == ["drain_begin", "drain_end", "drain_begin", "drain_end", "exit"], prev[-8:]
    assert evs[last_start - 1]["code"] == 0
    _all_ready(cluster)


def test_draining_all_three_at_once_never_completes(cluster: Cluster) -> None:
    """contract §4.1: no draining store takes a lease: three overlapping drains all time out and leave
    every node unready (the old whole-cluster stop)."""
    h1 = cluster.nodes[0]
    res = cluster.cli(h1, "sql -e \"SET CLUSTER SETTING server.shutdown.initial_wait = '4s'\"")
    assert res.returncode == 0, res.stderr
    time.sleep(3)  # the setting reaches every node with the heartbeats
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda h: cluster.drain(h, cap=10), cluster.nodes))
    for host, res in zip(cluster.nodes, results, strict=True):
        assert (res.returncode, res.stdout) == (1, ""), (host.name, res.stderr)
        assert res.stderr.endswith(DRAIN_TIMEOUT), res.stderr
        code, body = cluster.health(host)
        assert code == 503 and json.loads(body)["message"] == "node is shutting down"
        tail = cluster.last_drain(host)
        assert "drain_blocked" in tail and "drain_end" not in tail, tail
    for host in cluster.nodes:
        cluster.kill_and_start(host)
    _all_ready(cluster)
    res = cluster.cli(h1, "sql -e 'RESET CLUSTER SETTING server.shutdown.initial_wait'")
    assert res.returncode == 0, res.stderr


def test_after_one_graceful_stop_the_last_two_cannot_both_drain(cluster: Cluster) -> None:
    h1, h2, h3 = cluster.nodes
    bed = cluster.bed
    time.sleep(3)  # the RESET above reaches every node
    bed.ssh(h3.name, f"systemctl stop {UNIT}", timeout=120)
    assert cluster.show(h3, "Result")["Result"] == "success"
    assert cluster.since_last_start(h3)[-3:] == ["drain_begin", "drain_end", "exit"]
    res = cluster.drain(h1)
    assert (res.returncode, res.stdout) == (0, "drain ok\n"), res.stderr
    res = cluster.drain(h2, cap=5)
    assert (res.returncode, res.stdout) == (1, ""), res.stderr
    assert res.stderr.endswith(DRAIN_TIMEOUT)
    tail = cluster.last_drain(h2)
    assert "drain_blocked" in tail and "drain_end" not in tail, tail
    assert cluster.health(h2)[0] == 503
    # recovery, one node at a time: h1 holds no leases and h2 is still live; then h2 has h1 as a target
    for host in (h1, h2):
        bed.ssh(host.name, f"systemctl restart {UNIT}", timeout=120)
        assert cluster.show(host, "ActiveState")["ActiveState"] == "active"
        wait_for(f"{host.name} ready", lambda h=host: cluster.ready(h), timeout=60)  # type: ignore[misc]
    bed.ssh(h3.name, f"systemctl start {UNIT}", timeout=120)
    _all_ready(cluster)


def test_second_drain_without_majority_hangs(cluster: Cluster) -> None:
    """contract §4.1: a drained node is not exempt: its SIGTERM drain writes the liveness record again."""
    h1, h2, h3 = cluster.nodes
    bed = cluster.bed
    res = cluster.drain(h1)
    assert (res.returncode, res.stdout) == (0, "drain ok\n"), res.stderr
    for host in (h2, h3):  # h2 still has h3 as a lease target, h3 then has none (h1 draining, h2 gone)
        cluster.set_stop_timeout(host, 5)
        bed.ssh(host.name, f"systemctl stop {UNIT}", check=False, timeout=120)
    assert cluster.show(h2, "Result")["Result"] == "success"
    assert cluster.show(h3, "Result")["Result"] == "timeout"
    cluster.set_stop_timeout(h1, 5)
    bed.ssh(h1.name, f"systemctl stop {UNIT}", check=False, timeout=120)
    assert cluster.show(h1, "Result")["Result"] == "timeout"
    tail = cluster.last_drain(h1)
    assert "drain_blocked" in tail and "drain_end" not in tail and "exit" not in tail, tail
    blocked = [e for e in cluster.events(h1) if e["event"] == "drain_blocked"]
    assert blocked[-1]["reason"] == "liveness write needs a live majority", blocked[-1]
    for host in cluster.nodes:
        cluster.set_stop_timeout(host, None)
        bed.ssh(host.name, f"systemctl reset-failed {UNIT}; systemctl start {UNIT}", timeout=120)
    _all_ready(cluster)


def test_quorum_loss_drain_hangs_until_systemd_kills(cluster: Cluster) -> None:
    h1, h2, h3 = cluster.nodes
    bed = cluster.bed
    bed.ssh(
        h1.name,
        f"mkdir -p /etc/systemd/system/{UNIT}.service.d && "
        f"printf '[Service]\\nTimeoutStopSec=5\\n' > /etc/systemd/system/{UNIT}.service.d/stop.conf && "
        "systemctl daemon-reload",
    )
    for host in (h2, h3):  # these two still have a majority to hand leases to
        bed.ssh(host.name, f"systemctl stop {UNIT}", timeout=120)
        assert cluster.show(host, "Result")["Result"] == "success"
        assert cluster.since_last_start(host)[-3:] == ["drain_begin", "drain_end", "exit"]
    killed_pid = int(cluster.show(h1, "MainPID")["MainPID"])
    t0 = time.monotonic()
    bed.ssh(h1.name, f"systemctl stop {UNIT}", check=False, timeout=120)
    took = time.monotonic() - t0
    assert 4.5 <= took < 30, took
    props = cluster.show(h1, "Result", "ActiveState")
    assert props["Result"] == "timeout", props
    tail = cluster.since_last_start(h1)
    assert "drain_begin" in tail
    assert "drain_end" not in tail and "exit" not in tail, tail
    journal = bed.ssh(h1.name, f"journalctl -u {UNIT} --no-pager -q").stdout
    assert "State 'stop-sigterm' timed out. Killing." in journal
    # the next start records that the previous process never finished
    bed.ssh(h1.name, f"systemctl reset-failed {UNIT}; systemctl start {UNIT}", timeout=120)
    tail = cluster.since_last_start(h1)
    assert "unclean_previous_exit" in tail, tail
    unclean = next(e for e in reversed(cluster.events(h1)) if e["event"] == "unclean_previous_exit")
    assert unclean["previous_pid"] == killed_pid
    assert unclean["previous_event"] in ("drain_begin", "drain_blocked", "quorum_lost"), unclean


def test_shell_quoting_helper_sane() -> None:
    # guard for the unit text: ExecStart must carry absolute paths only
    fake = Host(name="hx", ip="127.201.0.99", index=9)
    text = unit_text(fake, ["127.201.0.11:26257"])
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    argv = shlex.split(exec_start.removeprefix("ExecStart="))
    assert argv[0].startswith("/")
    paths = [a.split("=", 1)[1] for a in argv if a.startswith(("--certs-dir=", "--store="))]
    assert paths and all(p.startswith("/") for p in paths)
