"""Sequential ssh round trips per host, and how fast a cut host is reported (issue 13), on 3 real hosts.

Round trips: on a real network every *sequential* ssh session costs one RTT, so their count per host
is what latency multiplies. `ROACHCTL_SSH_STATS=<file>` makes the CLI write, per transport, each
host's sessions and rounds (sessions started while no other session of that host was in flight).
The bounds below are today's counts: a change that adds a session or a round fails here and must say
why (raise the bound in the same commit). A count, not a time, so load does not make it flaky.
Sessions are deterministic for these commands; rounds (<= sessions) could vary when two sessions
that are started together happen not to overlap, which the bounds have not needed so far. Commands that
poll until something happens (a cold `start` waits for readiness, `stop` for the drain) are printed,
not bounded: their count depends on how long the node takes.

Bytes (issue 13): every command's ssh goes through the counting relay (tests/support/wire.py), and the
release is a padded stand-in of realistic compressibility (PAD_MB tarball, its binary ~3x that): a cold
deploy may send each host at most BYTES_X times the tarball (both directions, ssh framing and key
exchange included: the release streamed once, certs, unit and scripts small), and a no-op deploy at
most NOOP_BYTES (nothing re-sent that is already there). A release sent twice, or a re-sent unchanged
file, fails here.

Connections: the counted commands run with `ssh.persist: 0` (each command opens its own ssh masters and
closes them at its end, so the relay's byte counts are complete when the command exits and every count
includes the connect round). With the default `ssh.persist` a command finds the masters an earlier one
left (exec/openssh.py): `test_a_second_command_reuses_the_warm_connections` asserts that the second
`status` skips the connect round.

Cut host: `status` against a cluster whose h3 has been cut off (every frame dropped) must report h3 as
unreachable. Issue 13's target is "within 10 s" (it took about 25 s: ServerAlive 5 s x 3 and a 10 s
ConnectTimeout). What the cut itself costs is asserted: the same `status` with h3 cut may take at
most CUT_EXTRA_S longer than right before with every host up. ssh gives up on the cut host after
ConnectTimeout (5 s); the 10 s bound leaves the rest as headroom for this shared 2-core machine, where
a whole `status` takes from 1 s (idle) to 25 s (load 30), so an absolute bound would measure the load.

Cut transport: with the product's default SSHOptions, ssh itself must give up on a cut host within
CUT_TRANSPORT_S, both when connecting (ConnectTimeout 5 s) and mid-command (ServerAlive 1 s x 3: measured
8.4 s). These are ssh's own timers, which need almost no CPU, so a 10 s bound holds under load; the
previous defaults (ServerAlive 5 s x 3: measured 29 s; 2 s x 3: 12 s) fail it.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from roachctl.errors import TransportError
from roachctl.exec.command import Command
from roachctl.exec.openssh import OpenSSH, SSHOptions
from roachctl.operation.home import ClusterHome
from roachctl.operation.journal import read_operations
from tests.standin import make_release
from tests.support.bed import Bed
from tests.support.release_fixtures import Releases, real_binary, standin_path
from tests.support.remote import UNIT, Remote, new_remote
from tests.support.wire import counting_ssh_config, read_counts

pytestmark = [pytest.mark.bed, pytest.mark.slow]

NAME = "trips"
PRIVATE_MASTERS = "  persist: 0\n"  # ssh: every command's own masters, closed at its end
CUT_TRANSPORT_S = 10.0  # issue 13's target, asserted on ssh's own timers (see the module docstring)
CUT_EXTRA_S = 10.0  # what a cut host may add to `status`; see the module docstring
PAD_MB = 8  # the padded release's tarball, MiB (its binary ~27 MiB)
BYTES_X = 1.02  # issue 13: bytes per host of a cold deploy / the tarball (measured 1.008 at 8 MiB)
NOOP_BYTES = 64 << 10  # bytes per host of a no-op deploy, both directions (measured ~25 KB)

# Upper bounds per host on (ssh sessions, sequential rounds), per command, measured on this code:
# deploy cold 4 (4: connect; the host lock, whose session then prints the facts, with the node names
# as the host resolves them, read once the lock is held; then the apply as two scripts: user, dirs
# and the release | links, files, units and firewall; it was 18 (17), one session per change group,
# then 6 (5) with the facts and getent in a round of their own after the lock's), no-op 2 (2),
# start no-op 3 (2: connect, then the lock and the readiness probe at once, the probe trusted as the
# lock says no holder came between them; 3 rounds with the probe after the lock, 5 before an
# already-ready node skipped `systemctl start` and the ready wait), status 5 (2): connect; then at once
# the cert files with the unit state and one TLS connection (readiness and the served certificate),
# and on h1 `node status` beside the cluster version (7 (3) before: the drift's facts, which are now
# `status --drift`'s, a separate handshake, and the cluster view after the probes).
# Printed, not bounded (they poll): cold start 5 rounds (its first probe rides with the lock), stop 4
# (its first observation rides with the lock: 5 before).
# deploy --start no-op 3 (2): connect; then the lock with its facts and, beside it, start's readiness
# probe (trusted as for `start`, and only because the plan had 0 changes); as `deploy` + `start` in two
# commands it was 5 (4). `deploy --start` on a never-initialized cluster polls until ready: printed only.
BOUNDS: dict[str, tuple[int, int]] = {
    "deploy cold": (4, 4),
    "deploy no-op": (2, 2),
    "deploy --start no-op": (3, 2),
    "start no-op": (3, 2),
    "status": (5, 2),
}


@pytest.fixture(scope="module")
def rc(bed3: Bed, standin_releases: Releases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    work = tmp_path_factory.mktemp("roundtrips")
    remote = new_remote(bed3, standin_releases, work, NAME, extra=PRIVATE_MASTERS)
    if not real_binary():  # a real release is realistic already
        remote.tarball = make_release.build_padded(
            remote.version, work / "padded", standin_releases.arch, tarball_mb=PAD_MB, standin=standin_path()
        )
    yield remote


def counted(rc: Remote, stats: Path, config: Path, *args: str) -> dict[str, dict[str, int]]:
    """Run the CLI with ROACHCTL_SSH_STATS; per host {sessions, rounds}, summed over its transports."""
    stats.unlink(missing_ok=True)
    env = {"ROACHCTL_SSH_STATS": str(stats)}
    done = rc.deploy(*args[1:], env=env, ssh_config=config) if args[0] == "deploy" else None
    if done is None:
        done = rc.run(*args, env=env, ssh_config=config)
    assert done.rc == 0, done.text
    per_host: dict[str, dict[str, int]] = {}
    for line in stats.read_text().splitlines():
        for host, st in json.loads(line)["hosts"].items():
            acc = per_host.setdefault(host, {"sessions": 0, "rounds": 0})
            acc["sessions"] += st["sessions"]
            acc["rounds"] += st["rounds"]
    assert set(per_host) == set(rc.hosts), per_host
    return per_host


def test_round_trips_per_host_stay_within_their_counts(rc: Remote, tmp_path: Path) -> None:
    stats = tmp_path / "ssh-stats.jsonl"
    seen: dict[str, tuple[int, int]] = {}
    wire: dict[str, dict[str, dict[str, int]]] = {}
    for i, (label, args) in enumerate(
        (
            ("deploy cold", ("deploy",)),
            ("deploy no-op", ("deploy",)),
            ("deploy --start", ("deploy", "--start")),  # 0 changes, never initialized: start + init
            ("deploy --start no-op", ("deploy", "--start")),
            ("start no-op", ("start", NAME)),
            ("status", ("status", NAME)),
            ("stop", ("stop", NAME)),
        )
    ):
        counts = tmp_path / f"bytes-{i}.jsonl"
        per_host = counted(rc, stats, counting_ssh_config(rc.bed.ssh_config, counts), *args)
        wire[label] = read_counts(counts)
        seen[label] = (
            max(v["sessions"] for v in per_host.values()),
            max(v["rounds"] for v in per_host.values()),
        )
    _restarted_after_an_apply(rc)  # the cluster is stopped now (the last command above)
    _started_once_by_deploy_start(rc)
    print("ssh (sessions, rounds) per host:", seen)  # in the report, to update BOUNDS with a reason
    over = {k: (seen[k], b) for k, b in BOUNDS.items() if seen[k][0] > b[0] or seen[k][1] > b[1]}
    assert not over, f"more ssh round trips per host than allowed (seen, bound): {over}"
    # Every command talks to every host at least once: a count of 0 would mean the stats are broken.
    assert all(s >= 1 and r >= 1 for s, r in seen.values()), seen
    size = rc.tarball.stat().st_size if rc.tarball else 0
    total = {k: {h: v["up"] + v["down"] for h, v in per.items()} for k, per in wire.items()}
    print(f"bytes per host (up + down; tarball {size:,}):", total)
    assert all(set(per) == set(rc.hosts) for per in total.values()), wire  # the relay saw every host
    cold, noop = total["deploy cold"], total["deploy no-op"]
    assert all(size <= b <= BYTES_X * size for b in cold.values()), f"cold deploy: {cold} vs tarball {size:,}"
    assert all(b <= NOOP_BYTES for b in noop.values()), f"no-op deploy sent more than {NOOP_BYTES:,}: {noop}"


def _started_once_by_deploy_start(rc: Remote) -> None:
    """The two `deploy --start` runs: one journal operation each (verb deploy, start=true); the first
    started every node, ran init exactly once and waited until every node was ready; the second found
    every node ready and started nothing."""
    ops = [op for op in read_operations(ClusterHome(rc.home, NAME).journal_path) if op.args.get("start")]
    ops = ops[:2]  # the third is _restarted_after_an_apply's
    assert [(op.verb, op.outcome) for op in ops] == [("deploy", "ok")] * 2, ops
    first, again = ({(s["step"], s.get("host"), s.get("result")) for s in op.steps} for op in ops)
    assert {("start", h, "started") for h in rc.hosts} | {("ready", h, None) for h in rc.hosts} <= first
    assert {("start", h, "already-ready") for h in rc.hosts} <= again
    inits = [e for evs in rc.all_events().values() for e in evs if e["event"] == "init"]
    assert len(inits) == 1 and [s for op in ops for s in op.steps if s["step"] == "init"], inits


def _restarted_after_an_apply(rc: Remote) -> None:
    """A stopped cluster whose unit file on h2 drifted: `deploy --start` rewrites it (1 change), then in
    the same operation starts every node (no second init) and waits until each is ready."""
    rc.sh("h2", f"echo '# drifted' >> /etc/systemd/system/{UNIT}.service")
    done = rc.deploy("--start")
    assert done.rc == 0, done.text
    assert done.err.index("deploy trips") < done.err.index("start trips"), done.text
    op = read_operations(ClusterHome(rc.home, NAME).journal_path)[-1]
    assert op.verb == "deploy" and op.args.get("start") and op.outcome == "ok", op
    steps = {(s["step"], s.get("host"), s.get("result")) for s in op.steps}
    assert {("start", h, "started") for h in rc.hosts} | {("ready", h, None) for h in rc.hosts} <= steps
    assert not [s for s in op.steps if s["step"] == "init"], op.steps


def test_a_second_command_reuses_the_warm_connections(rc: Remote, tmp_path: Path) -> None:
    """With the default ssh.persist, `status` right after another command connects to no host: one
    round per host (its observation, with `node status` and the cluster version beside it on h1)."""
    rc.write_topology()  # the default ssh.persist
    try:
        deployed = rc.deploy()  # saves the topology in the home: `status` reads it from there
        assert deployed.rc == 0, deployed.text
        stats, config = tmp_path / "stats.jsonl", counting_ssh_config(rc.bed.ssh_config, tmp_path / "c.jsonl")
        cold = counted(rc, stats, config, "status", NAME)
        warm = counted(rc, stats, config, "status", NAME)
    finally:
        rc.write_topology(PRIVATE_MASTERS)
        assert rc.deploy().rc == 0
    print("status cold:", cold, "warm:", warm)
    assert all(v["rounds"] == 1 for v in warm.values()), warm
    assert all(warm[h]["sessions"] == cold[h]["sessions"] - 1 for h in rc.hosts), (cold, warm)


def test_deploy_start_of_a_bad_topology_contacts_no_host(rc: Remote, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(rc.topology.read_text().replace("name: trips", "name: ../trips"))
    journal = ClusterHome(rc.home, NAME).journal_path
    before = journal.read_bytes() if journal.exists() else b""
    stats = tmp_path / "ssh-stats.jsonl"
    done = rc.run("deploy", str(bad), "--start", env={"ROACHCTL_SSH_STATS": str(stats)})
    assert done.rc == 2 and "name" in done.err, done.text
    assert not stats.exists() or not stats.read_text().strip(), stats.read_text()
    assert (journal.read_bytes() if journal.exists() else b"") == before


def test_a_cut_host_adds_at_most_the_bound_to_status(rc: Remote) -> None:
    started = rc.run("start", NAME)
    assert started.rc == 0, started.text
    healthy = rc.run("status", NAME, timeout=120)
    assert healthy.rc == 0, healthy.text
    rc.bed.cut("h3")
    try:
        cut = rc.run("status", NAME, timeout=120)
    finally:
        rc.bed.heal("h3")
    base, took = healthy.ended - healthy.started, cut.ended - cut.started
    print(f"status: {base:.1f}s with every host up, {took:.1f}s with h3 cut (exit {cut.rc})")
    row = cut.err[cut.err.index("│ h3 ") :].split("└", 1)[0]
    assert "unreachable" in row and re.search(r"timed out|could not connect", row, re.I), cut.text
    assert took - base <= CUT_EXTRA_S, (
        f"the cut host cost {took - base:.1f}s (bound {CUT_EXTRA_S}s)\n{cut.text}"
    )


def test_ssh_gives_up_on_a_cut_host_within_the_bound(bed3: Bed) -> None:
    async def main() -> dict[str, float]:
        took: dict[str, float] = {}
        async with OpenSSH(SSHOptions(ssh_config=bed3.ssh_config)) as ssh:  # the product's defaults
            busy = ssh.executor("h2")
            await busy.connect()
            bed3.cut("h2")
            t0 = time.monotonic()
            with pytest.raises(TransportError):
                await busy.run(Command.of("sleep", "60"), timeout=60)
            took["mid-command"] = time.monotonic() - t0
            t0 = time.monotonic()
            with pytest.raises(TransportError):
                await ssh.executor("h2").connect()
            took["connect"] = time.monotonic() - t0
        return took

    try:
        took = asyncio.run(main())
    finally:
        bed3.heal("h2")
    print("ssh gave up on the cut host after", {k: round(v, 1) for k, v in took.items()})
    assert all(v <= CUT_TRANSPORT_S for v in took.values()), took
