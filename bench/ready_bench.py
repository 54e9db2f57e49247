#!/usr/bin/env python3
"""From the command to a ready cluster: roachctl vs the seed's script vs Ansible, at 0 and 50 ms RTT.

    sudo .venv/bin/python bench/ready_bench.py --hosts 3 --repeat 1 [--rtt-ms 0,50] [--lifecycle]
                                               [--tools roachctl,seed,ansible] [--two-commands]
                                               [--json] [--save F]

Every tool does the whole job a user waits for: deploy (service user, release, certs, unit, firewall)
**and** start + init + wait until every node answers `/health?ready=1`. For each host count, RTT and
repeat, each tool runs on its own FRESH bed (boot not timed):

- ``roachctl cold`` ONE command, ``deploy --start`` (a fresh --home, so the CA and node certs are made
  inside the timing); ``roachctl no-op``: the same again, nothing to do. ``--two-commands`` adds
  ``roachctl 2-cmd cold`` / ``roachctl 2-cmd no-op`` on a fresh bed of their own: ``deploy`` then
  ``start`` as two processes (wall clock and CPU of both), the form before ``deploy --start``.
- ``seed cold``  bench/seed_deploy.sh with SEED_START=1: host after host scp + ssh (install, start),
  then one ssh for init and one per host until ready; ``seed re-run``: the same again (its "no-op").
- ``ansible cold`` bench/ansible/cockroach.yml (pipelining, ControlPersist, no facts); ``ansible no-op``:
  the same playbook again, which must report changed=0 on every host.

Connections: the cold and no-op rows of every tool start with NO ssh master left from an earlier run
(Ansible: a fresh ControlPath dir; roachctl: a fresh $XDG_RUNTIME_DIR, so a fresh shared control dir;
the previous run's masters are closed), as for an operator whose next run comes later than
ControlPersist. ``... no-op (warm)`` rows run right after the no-op with its masters still open (both
tools keep them 60 s): an operator's re-run within a minute. `--lifecycle` commands run warm.

Latency: at RTT r > 0 every tool's ssh goes through bench/delayproxy.py as its ProxyCommand, r/2 each
way (`--proxy-at-zero` also routes the 0 ms runs through it, to show the relay's own cost). The
release comes from a local HTTP mirror on the controller (roachctl and Ansible verify its .sha256sum;
the seed copies the tarball it has, as the seed did). Seed and Ansible get their certs made beforehand,
untimed.

roachctl runs with ROACHCTL_SSH_STATS: each command's ssh sessions and sequential rounds per host are
printed (the count a network's RTT multiplies). `--lifecycle` adds, on roachctl's bed after the no-op:
`status`, rolling `restart`, `stop`, and `start` from stopped (timed, with their round-trip counts).

Controller CPU is user+sys of the command and all its children (ssh clients, relays, Ansible forks).
Needs root (the bed), and ansible-core for the Ansible rows (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from deploy_bench import (  # noqa: E402
    ROACHCTL,
    SEED_SCRIPT,
    VERSION,
    ScenarioFailed,
    build_release,
    code_under_test,
    emit,
    log,
    pad_release,
    precompile,
    scenarios,
    settle,
    startup_seconds,
)

DELAYPROXY = REPO / "bench" / "delayproxy.py"
ANSIBLE_DIR = REPO / "bench" / "ansible"
ANSIBLE_PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"
TOOLS = ("roachctl", "seed", "ansible")
LIFECYCLE = ("status", "restart", "stop", "start from stopped")

READY_CHECK = r"""
set -e
test "$(systemctl is-enabled cockroach.service)" = enabled
test "$(systemctl is-active cockroach.service)" = active
id cockroach >/dev/null
python3 -c '
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile="/opt/cockroach/certs/ca.crt")
url = "https://%s:8080/health?ready=1" % sys.argv[1]
sys.exit(0 if urllib.request.urlopen(url, context=ctx, timeout=5).status == 200 else 1)
' "$(hostname)"
"""


@dataclass
class Sample:
    seconds: float
    cpu: float
    rounds: dict[str, dict[str, int]] = field(default_factory=dict)  # command -> {sessions, rounds} max/host


@dataclass
class Results:
    samples: dict[tuple[int, int, str], list[Sample]] = field(default_factory=dict)  # (hosts, rtt, row)

    def add(self, n: int, rtt: int, row: str, s: Sample) -> None:
        self.samples.setdefault((n, rtt, row), []).append(s)

    def median(self, n: int, rtt: int, row: str) -> float | None:
        runs = self.samples.get((n, rtt, row))
        return statistics.median(s.seconds for s in runs) if runs else None


# ---------------------------------------------------------------------------------------------------------
# preparation (untimed)


def make_certs(out: Path, hosts: list[str]) -> Path:
    """CA, node certs per host and a root client cert, made once before timing (seed and Ansible)."""
    from roachctl.tls import pki

    certs = out / f"certs-{len(hosts)}"
    certs.mkdir(parents=True, exist_ok=True)
    ca = pki.create_ca()
    (certs / "ca.crt").write_bytes(ca.cert_pem())
    client = pki.create_client_cert(ca, "root")
    (certs / "client.root.crt").write_bytes(client.cert_pem())
    (certs / "client.root.key").write_bytes(client.key_pem())
    (certs / "client.root.key").chmod(0o600)
    for host in hosts:
        node = pki.create_node_cert(ca, [host])
        (certs / host).mkdir(exist_ok=True)
        (certs / host / "node.crt").write_bytes(node.cert_pem())
        (certs / host / "node.key").write_bytes(node.key_pem())
        (certs / host / "node.key").chmod(0o600)
    return certs


def ssh_config_for(
    bed: Any,
    rtt_ms: int,
    work: Path,
    *,
    proxy_at_zero: bool,
    given: Path | None = None,
    kex: str | None = None,
) -> Path:
    """The bed's ssh config, with every host behind the delaying relay (rtt/2 each way) when rtt > 0,
    and with `KexAlgorithms kex` in every host block when given (every tool reads this config)."""
    if given is not None:
        return given
    if rtt_ms == 0 and not proxy_at_zero and kex is None:
        return Path(bed.ssh_config)
    text = Path(bed.ssh_config).read_text()
    extra = f"    KexAlgorithms {kex}\n" if kex else ""
    if rtt_ms > 0 or proxy_at_zero:
        extra += f"    ProxyCommand {sys.executable} -I -S {DELAYPROXY} {rtt_ms / 2:g} %h %p\n"
    text = re.sub(r"(?m)^(Host .*\n)", lambda m: m.group(1) + extra, text)
    path = work / f"ssh_config-{bed.name}-{rtt_ms}ms{'-' + kex if kex else ''}"
    path.write_text(text)
    return path


def timed(
    argv: list[str], what: str, *, env: dict[str, str] | None = None, timeout: float = 900
) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """(wall s, controller CPU s of the command and its children, the process)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise ScenarioFailed(
            f"{what}: exit {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
            f"\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return elapsed, cpu, proc


def check_ready(bed: Any, what: str) -> None:
    for host in bed.hosts:
        proc = bed.exec(host, ["sh", "-c", READY_CHECK], check=False)
        if proc.returncode != 0:
            raise ScenarioFailed(
                f"{what}: {host.name} is not deployed and ready: {proc.stderr.strip()[-800:]}"
            )


def read_stats(path: Path) -> dict[str, int]:
    """Max over hosts of sessions and rounds, summed over the command's transports (ROACHCTL_SSH_STATS)."""
    per_host: dict[str, dict[str, int]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            for host, st in json.loads(line)["hosts"].items():
                acc = per_host.setdefault(host, {"sessions": 0, "rounds": 0})
                acc["sessions"] += st["sessions"]
                acc["rounds"] += st["rounds"]
        path.unlink()
    if not per_host:
        return {"sessions": 0, "rounds": 0}
    return {k: max(v[k] for v in per_host.values()) for k in ("sessions", "rounds")}


# ---------------------------------------------------------------------------------------------------------
# the tools


@dataclass
class Ctx:
    n: int
    rtt: int
    work: Path
    tarball: Path
    mirror_url: str
    certs: Path
    results: Results
    lifecycle: bool
    proxy_at_zero: bool
    ssh_config: Path | None = None  # given: every tool uses it as is (bytes_bench's counting relay)
    two_commands: bool = False  # run_roachctl: `deploy` then `start` (rows "roachctl 2-cmd ...")
    kex: str | None = None  # --kex: the key exchange every tool's ssh uses (None: ssh's default)


def run_roachctl(ctx: Ctx, bed: Any) -> None:
    home = Path(tempfile.mkdtemp(prefix="home-", dir=ctx.work))
    topo = ctx.work / f"topo-{ctx.n}.yaml"
    name = f"bench{ctx.n}"
    lines = [f"name: {name}", f"version: {VERSION}", "ssh:", "  user: root", "nodes:"]
    topo.write_text("\n".join(lines + [f"  - host: {h.name}" for h in bed.hosts]) + "\n")
    cfg = ssh_config_for(
        bed, ctx.rtt, ctx.work, proxy_at_zero=ctx.proxy_at_zero, given=ctx.ssh_config, kex=ctx.kex
    )
    stats = ctx.work / f"ssh-stats-{os.getpid()}.jsonl"
    env = {**os.environ, "ROACHCTL_SSH_STATS": str(stats), "ROACHCTL_ALLOW_INSECURE_MIRROR": "1"}
    base = [str(ROACHCTL), "--home", str(home), "--ssh-config", str(cfg), "--yes", "--no-color"]
    deploy = [*base, "deploy", str(topo), "--mirror", ctx.mirror_url, "--allow-insecure-mirror"]

    def command(argv: list[str], what: str) -> tuple[float, float, dict[str, int], str]:
        wall, cpu, proc = timed(argv, f"{what} ({ctx.n} hosts, {ctx.rtt} ms)", env=env)
        return wall, cpu, read_stats(stats), proc.stdout + proc.stderr

    kinds = ("cold", "no-op") if ctx.two_commands else ("cold", "no-op", "no-op (warm)")
    for kind in kinds:
        row = f"roachctl {'2-cmd ' if ctx.two_commands else ''}{kind}"
        if not kind.endswith("(warm)"):
            fresh_connections(env)  # as Ansible's rows: no ssh master left from the previous run
        if not ctx.two_commands:
            w, c, r, text = command([*deploy, "--start"], f"{row}: deploy --start")
            no_changes(row, text)
            check_ready(bed, row)
            ctx.results.add(ctx.n, ctx.rtt, row, Sample(w, c, {"deploy --start": r}))
            log(f"    {row:<20} {w:6.2f} s (deploy --start; cpu {c:.2f} s) rounds/host {r['rounds']}")
            continue
        w1, c1, r1, text = command(deploy, f"{row}: deploy")
        no_changes(row, text)
        w2, c2, r2, _ = command([*base, "start", name], f"{row}: start")
        check_ready(bed, row)
        sample = Sample(w1 + w2, c1 + c2, {"deploy": r1, "start": r2})
        sample.rounds["deploy_s"] = {"wall": round(w1, 3)}  # type: ignore[dict-item]
        sample.rounds["start_s"] = {"wall": round(w2, 3)}  # type: ignore[dict-item]
        ctx.results.add(ctx.n, ctx.rtt, row, sample)
        log(
            f"    {row:<20} {w1 + w2:6.2f} s (deploy {w1:.2f} + start {w2:.2f}; cpu {c1 + c2:.2f} s) "
            f"rounds/host deploy {r1['rounds']} start {r2['rounds']}"
        )
    if not ctx.lifecycle or ctx.two_commands:
        return
    for label, args in (
        ("status", ["status", name]),
        ("restart", ["restart", name]),
        ("stop", ["stop", name]),
        ("start from stopped", ["start", name]),
    ):
        wall, cpu, rounds, _ = command([*base, *args], f"roachctl {label}")
        ctx.results.add(ctx.n, ctx.rtt, f"roachctl {label}", Sample(wall, cpu, {label: rounds}))
        log(
            f"    roachctl {label:<18} {wall:6.2f} s (cpu {cpu:.2f} s) rounds/host {rounds['rounds']} "
            f"sessions/host {rounds['sessions']}"
        )


def fresh_connections(env: dict[str, str]) -> None:
    """roachctl's next command opens new ssh connections: a new, empty $XDG_RUNTIME_DIR (its shared
    control dir lives there, docs/interface.md "ssh connections"); the previous dir's masters are closed."""
    old = env.get("XDG_RUNTIME_DIR", "")
    if old.startswith("/tmp/rxdg-"):
        close_masters(Path(old))
    env["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="rxdg-", dir="/tmp")


def close_masters(top: Path) -> None:
    """`ssh -O exit` every control socket under `top`, then remove it."""
    for sock in (p for p in top.rglob("*") if p.is_socket()):
        subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"], capture_output=True)
    shutil.rmtree(top, ignore_errors=True)


def no_changes(row: str, text: str) -> None:
    """A no-op row's deploy must have reported 0 changes."""
    if "no-op" in row and not re.search(r"(?m)^\s*0 changes\s*$", text):
        raise ScenarioFailed(f'{row}: deploy did not report "0 changes":\n{text}')


def run_roachctl_two_commands(ctx: Ctx, bed: Any) -> None:
    """run_roachctl in the two-command form (`--two-commands`)."""
    run_roachctl(replace(ctx, two_commands=True), bed)


def run_seed(ctx: Ctx, bed: Any) -> None:
    cfg = ssh_config_for(
        bed, ctx.rtt, ctx.work, proxy_at_zero=ctx.proxy_at_zero, given=ctx.ssh_config, kex=ctx.kex
    )
    argv = ["bash", str(SEED_SCRIPT), str(cfg), str(ctx.tarball), str(ctx.certs), VERSION]
    argv += [h.name for h in bed.hosts]
    env = {**os.environ, "SEED_START": "1"}
    for row in ("seed cold", "seed re-run"):
        wall, cpu, _ = timed(argv, f"{row} ({ctx.n} hosts, {ctx.rtt} ms)", env=env)
        check_ready(bed, row)
        ctx.results.add(ctx.n, ctx.rtt, row, Sample(wall, cpu))
        log(f"    {row:<16} {wall:6.2f} s (cpu {cpu:.2f} s)")


RECAP = re.compile(r"(?m)^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")


def run_ansible(ctx: Ctx, bed: Any) -> None:
    cfg = ssh_config_for(
        bed, ctx.rtt, ctx.work, proxy_at_zero=ctx.proxy_at_zero, given=ctx.ssh_config, kex=ctx.kex
    )
    inv = ctx.work / f"inventory-{bed.name}.ini"
    inv.write_text("[nodes]\n" + "".join(f"{h.name} node_ip={h.ip}\n" for h in bed.hosts))
    cache = Path(tempfile.mkdtemp(prefix="ansible-cache-", dir=ctx.work))
    extra = json.dumps({"mirror_url": ctx.mirror_url, "version": VERSION, "certs_dir": str(ctx.certs),
                        "cache_dir": str(cache)})  # fmt: skip
    cp = ""
    for row in ("ansible cold", "ansible no-op", "ansible no-op (warm)"):
        if not row.endswith("(warm)"):
            if cp:
                close_masters(Path(cp))
            cp = tempfile.mkdtemp(prefix="acp-", dir="/tmp")  # a fresh invocation: no master left
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
            "ANSIBLE_SSH_ARGS": f"-F {cfg} -o ControlMaster=auto -o ControlPersist=60s",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": cp,
            "ANSIBLE_LOCAL_TEMP": str(ctx.work / "ansible-tmp"),
            "ANSIBLE_HOME": str(ctx.work / "ansible-home"),
        }
        argv = [str(ANSIBLE_PLAYBOOK), "-i", str(inv), "-e", extra, str(ANSIBLE_DIR / "cockroach.yml")]
        try:
            wall, cpu, proc = timed(argv, f"{row} ({ctx.n} hosts, {ctx.rtt} ms)", env=env)
        finally:
            if row.endswith("(warm)"):
                close_masters(Path(cp))
        recap = {m[0]: int(m[2]) for m in RECAP.findall(proc.stdout)}
        nodes = {h: c for h, c in recap.items() if h != "localhost"}
        if len(nodes) != ctx.n:
            raise ScenarioFailed(f"{row}: recap lists {sorted(recap)}:\n{proc.stdout[-3000:]}")
        if "no-op" in row and any(nodes.values()):
            raise ScenarioFailed(f"{row}: changed on a re-run: {nodes}:\n{proc.stdout[-3000:]}")
        check_ready(bed, row)
        ctx.results.add(ctx.n, ctx.rtt, row, Sample(wall, cpu))
        log(f"    {row:<16} {wall:6.2f} s (cpu {cpu:.2f} s; changed {sum(nodes.values())})")


BODIES: dict[str, Callable[[Ctx, Any], None]] = {
    "roachctl": run_roachctl,
    "roachctl2": run_roachctl_two_commands,
    "seed": run_seed,
    "ansible": run_ansible,
}


def on_fresh_bed(n: int, name: str, body: Callable[[Any], None]) -> None:
    from tests.support.bed import Bed

    with Bed.up(n, name=name) as bed:
        settle(bed)
        body(bed)


# ---------------------------------------------------------------------------------------------------------
# report

ROWS = (
    "seed cold",
    "seed re-run",
    "ansible cold",
    "ansible no-op",
    "ansible no-op (warm)",
    "roachctl cold",
    "roachctl no-op",
    "roachctl no-op (warm)",
    "roachctl 2-cmd cold",
    "roachctl 2-cmd no-op",
    *(f"roachctl {x}" for x in LIFECYCLE),
)


def rows(results: Results) -> list[dict[str, Any]]:
    out = []
    for n, rtt in sorted({(k[0], k[1]) for k in results.samples}):
        seed = results.median(n, rtt, "seed cold")
        seed_noop = results.median(n, rtt, "seed re-run")
        ans = results.median(n, rtt, "ansible cold")
        ans_noop = results.median(n, rtt, "ansible no-op")
        ans_warm = results.median(n, rtt, "ansible no-op (warm)")
        for row in ROWS:
            runs = results.samples.get((n, rtt, row))
            if not runs:
                continue
            med = statistics.median(s.seconds for s in runs)
            noop = row.endswith(("no-op", "re-run", "(warm)"))
            compared = row.startswith(("roachctl cold", "roachctl no-op", "roachctl 2-cmd", "ansible"))
            vs_seed = seed_noop if noop else seed
            vs_ans = ans_warm if row.endswith("(warm)") else ans_noop if noop else ans
            last = runs[-1].rounds
            out.append(
                {
                    "row": row,
                    "hosts": n,
                    "rtt_ms": rtt,
                    "median_s": round(med, 3),
                    "runs_s": [round(s.seconds, 3) for s in runs],
                    "cpu_s": round(statistics.median(s.cpu for s in runs), 3),
                    "x_seed": None if not vs_seed or not compared else round(med / vs_seed, 3),
                    "x_ansible": None
                    if not vs_ans or not compared or row.startswith("ansible")
                    else round(med / vs_ans, 3),
                    "ssh_per_host": {k: v for k, v in last.items() if "sessions" in v},
                    "phases_s": {k: v["wall"] for k, v in last.items() if "wall" in v},
                }
            )
    return out


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def print_table(table: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    print()
    print(f"ready benchmark — {meta['date']} — {meta['machine']} — median of {meta['repeat']}")
    print(
        "x seed / x ansible: median / the same run's seed (cold or re-run) / Ansible (cold or no-op);"
        " lower is better"
    )
    print("rounds: roachctl's sequential ssh round trips per host (sessions in parentheses), per command")
    head = (
        "row",
        "hosts",
        "RTT ms",
        "median s",
        "runs s",
        "cpu s",
        "x seed",
        "x ansible",
        "rounds (sessions)",
    )
    lines = [head]
    for r in table:
        rt = " ".join(f"{k} {v['rounds']} ({v['sessions']})" for k, v in r["ssh_per_host"].items())
        lines.append((r["row"], str(r["hosts"]), str(r["rtt_ms"]), fmt(r["median_s"]),
                      " ".join(fmt(x) for x in r["runs_s"]), fmt(r["cpu_s"]), fmt(r["x_seed"]),
                      fmt(r["x_ansible"]), rt or "-"))  # fmt: skip
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    for i, row in enumerate(lines):
        print(
            "  ".join(
                c.ljust(w) if j in (0, 4, 8) else c.rjust(w)
                for j, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print()
    print(
        f"context: roachctl start-up {fmt(meta.get('startup_s'))} s per command; code {meta['code']}; "
        f"tarball {meta.get('tarball_bytes')} bytes; "
        f"load before {meta['load_before']}, after {meta.get('load_after')}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", default="3", help="comma-separated host counts (default 3)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--rtt-ms", default="0,50", help="comma-separated round-trip times (default 0,50)")
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--lifecycle", action="store_true", help="also time status/restart/stop/start (roachctl)")
    ap.add_argument("--proxy-at-zero", action="store_true", help="route 0 ms runs through the relay too")
    ap.add_argument("--pad-mb", type=int, default=0)
    ap.add_argument(
        "--kex",
        help="KexAlgorithms for every tool's ssh, e.g. curve25519-sha256 (default: ssh's own, which on "
        "OpenSSH 9.x is the post-quantum sntrup761x25519, ~0.14 s of client CPU per connection here)",
    )
    ap.add_argument(
        "--two-commands",
        action="store_true",
        help="also time roachctl as `deploy` then `start` (two processes; rows 'roachctl 2-cmd ...'), "
        "each on a fresh bed of its own, beside the default one-command `deploy --start`",
    )
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--save", type=Path)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.hosts.split(",") if x.strip()]
    rtts = [int(x) for x in args.rtt_ms.split(",") if x.strip()]
    tools = [t for t in args.tools.split(",") if t]
    if set(tools) - set(TOOLS):
        ap.error(f"--tools: one of {TOOLS}")
    if args.two_commands and "roachctl" in tools:
        tools.insert(tools.index("roachctl") + 1, "roachctl2")
    if os.geteuid() != 0:
        log("the test bed needs root")
        return 2
    if "ansible" in tools and not ANSIBLE_PLAYBOOK.exists():
        log(f"{ANSIBLE_PLAYBOOK} missing: .venv/bin/pip install -e '.[bench]'")
        return 2
    import platform

    from tests.support.mirror import Mirror

    work = Path(tempfile.mkdtemp(prefix="roachctl-ready-bench-"))
    results = Results()
    meta: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}",
        "repeat": args.repeat,
        "hosts": counts,
        "rtt_ms": rtts,
        "tools": tools,
        "code": code_under_test(),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "proxy_at_zero": args.proxy_at_zero,
        "kex": args.kex or "ssh default",
        "roachctl_form": "deploy --start" + (" and deploy + start" if args.two_commands else ""),
    }
    with scenarios(work, args.keep) as outcome:
        tarball = build_release(work / "release")
        if args.pad_mb > 0:
            tarball = pad_release(tarball, args.pad_mb)
        else:
            import hashlib

            digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
            Path(f"{tarball}.sha256sum").write_text(f"{digest}  {tarball.name}\n")
        meta["tarball_bytes"] = tarball.stat().st_size
        precompile()
        meta["startup_s"] = startup_seconds(3)
        with Mirror(tarball.parent) as mirror:
            for n in counts:
                certs = make_certs(work, [f"h{i}" for i in range(1, n + 1)])
                for rtt in rtts:
                    for r in range(args.repeat):
                        log(f"{n} hosts, RTT {rtt} ms, repeat {r + 1}/{args.repeat}")
                        ctx = Ctx(n, rtt, work, tarball, mirror.url, certs, results, args.lifecycle,
                                  args.proxy_at_zero, kex=args.kex)  # fmt: skip
                        order = tools[r % len(tools) :] + tools[: r % len(tools)]
                        for tool in order:
                            body = BODIES[tool]
                            name = f"rb-{tool[:4]}{tool[8:]}-{n}"
                            run = partial(on_fresh_bed, n, name, lambda bed, b=body, c=ctx: b(c, bed))
                            outcome.attempt(run)  # the other tools' rows are still worth having
    if outcome.bed_unavailable:
        return 2
    meta["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    table = rows(results)
    doc = {"meta": meta, "rows": table, "failed": outcome.failed}
    return emit(doc, args, lambda: print_table(table, meta))


if __name__ == "__main__":
    sys.exit(main())
