#!/usr/bin/env python3
"""Every day-2 operation timed, and how much of a rolling restart/upgrade is the nodes' own work (issue 13).

    sudo .venv/bin/python bench/ops_bench.py [--hosts 9] [--repeat 3] [--settle-min 2] [--json] [--save F]

On ONE fresh bed of --hosts hosts, roachctl deploys and starts a cluster (untimed, v25.4.0 stand-in),
then each repeat times, in this order:

- ``status`` warm: --status-runs runs after one untimed warm-up;
- rolling ``restart``;
- rolling ``upgrade`` to the next patch release (v25.4.0 -> .1 -> .2 ...: a patch roll, nothing to
  finalize) with the default ``--settle`` and again with ``--settle-min`` (the smallest that settles
  reliably: it must hold two healthy samples, plan/settle.py);
- whole-cluster ``stop``, then ``start`` from stopped back to ready.

Then, without a bed, ``roachctl local up --detach`` (3 nodes) to ready: in a fresh home (the release is
unpacked into its cache) and again with that cache warm, each followed by an untimed ``local down``.

Overhead of a rolling operation = wall clock / the sum over nodes of each node's own downtime, read
from the stand-in's event log on each host (tests/standin/README.md): its ``drain_begin`` to the
``ready`` of the new process (drain, exit, systemd start, join/liveness). The rest ("gaps") is split
with roachctl's journal steps (their timestamps) into: before the first node (CLI start-up,
observation, the first health gate; for an upgrade also the install), per node from its ``ready`` to
roachctl noticing it (readiness poll), the post-restart health gate (and an upgrade's settle), the next
node's pre-gate + stop launch, and after the last node. Host and controller share one clock.

Before each rolling operation the cluster is left alone --quiesce seconds (untimed), so the first
health gate does not wait out the previous operation's under-replicated sample (contract §4.1).
Each command runs with ROACHCTL_SSH_STATS (sessions and sequential rounds per host, max over hosts).
Needs root (the bed). Exit 0 when the measurement completed, 1 when an operation failed, 2 no bed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from deploy_bench import ROACHCTL, ScenarioFailed, code_under_test, emit, log, scenarios, settle  # noqa: E402
from ready_bench import read_stats, timed  # noqa: E402

BASE = "v25.4.0"
NAME = "ops"
EVENTS = "/var/lib/cockroach/cockroach-data/standin-events.jsonl"  # tests/support/remote.py EVENTS
OPS = ("status", "restart", "upgrade", "stop")  # --ops; "stop" is the whole-cluster stop, then start


@dataclass
class Sample:
    seconds: float
    cpu: float
    ssh: dict[str, int] = field(default_factory=dict)
    analysis: dict[str, Any] | None = None


@dataclass
class Results:
    samples: dict[str, list[Sample]] = field(default_factory=dict)

    def add(self, row: str, sample: Sample) -> None:
        self.samples.setdefault(row, []).append(sample)


# ---------------------------------------------------------------------------------------------------------
# the event log and the journal


def read_events(bed: Any) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for host in bed.hosts:
        proc = bed.exec(host, ["sh", "-c", f"cat {EVENTS} 2>/dev/null || true"], check=False)
        out[host.name] = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return out


def read_journal(home: Path, verb: str, since: float) -> list[dict[str, Any]]:
    path = home / "clusters" / NAME / "journal.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r.get("verb") == verb and r["ts"] >= since]


def node_cycles(events: dict[str, list[dict[str, Any]]], t0: float, t1: float) -> list[dict[str, Any]]:
    """Per restarted node (in drain order): drain_begin, drain_end, exit, start, ready of its new process."""
    cycles = []
    for host, evs in events.items():
        window = [e for e in evs if t0 <= e["ts"] <= t1]
        begin = next((e for e in window if e["event"] == "drain_begin"), None)
        if begin is None:
            continue
        after = [e for e in window if e["ts"] >= begin["ts"]]

        def first(name: str, pid: int | None = None, after: list[dict[str, Any]] = after) -> float | None:
            hit = next((e for e in after if e["event"] == name and (pid is None or e["pid"] == pid)), None)
            return None if hit is None else float(hit["ts"])

        new = next((e for e in after if e["event"] == "start"), None)
        ready = first("ready", new["pid"]) if new else None
        cycles.append(
            {
                "host": host,
                "drain_begin": begin["ts"],
                "drain_end": first("drain_end", begin["pid"]),
                "exit": first("exit", begin["pid"]),
                "hard": first("hard_shutdown", begin["pid"]) is not None,
                "start": new["ts"] if new else None,
                "ready": ready,
                "version": new["version"] if new else None,
            }
        )
    return sorted(cycles, key=lambda c: c["drain_begin"])


def analyse(
    cycles: list[dict[str, Any]], journal: list[dict[str, Any]], t0: float, t1: float, done_step: str
) -> dict[str, Any]:
    """Wall, the nodes' own time, overhead and where the gaps went (see the module docstring)."""
    steps: dict[tuple[str, str], float] = {}
    for r in journal:
        if r.get("record") == "step" and r.get("host"):
            steps.setdefault((r["step"], r["host"]), r["ts"])
    rolling = next(
        (r["ts"] for r in journal if r.get("step") == "path" and r.get("state") == "rolling"), None
    )
    wall = t1 - t0
    nodes = []
    for c in cycles:
        if c["ready"] is None:
            raise ScenarioFailed(f"{c['host']} has no ready event after its restart: {c}")
        own = c["ready"] - c["drain_begin"]
        nodes.append(
            {
                "host": c["host"],
                "own_s": round(own, 3),
                "drain_s": _span(c["drain_begin"], c["drain_end"]),
                "drain_end_to_exit_s": _span(c["drain_end"], c["exit"]),
                "exit_to_start_s": _span(c["exit"], c["start"]),
                "start_to_ready_s": _span(c["start"], c["ready"]),
                "ready_seen_after_s": _span(c["ready"], steps.get(("ready", c["host"]))),
                "hard": c["hard"],
            }
        )
    own_sum = sum(n["own_s"] for n in nodes)
    gaps: dict[str, float] = {"before first node": cycles[0]["drain_begin"] - t0 if cycles else wall}
    if rolling is not None and cycles:
        gaps["before first node: install"] = rolling - t0
    seen = [steps.get(("ready", c["host"])) or c["ready"] for c in cycles]
    done = [steps.get((done_step, c["host"])) for c in cycles]
    gaps["ready -> roachctl sees it (readiness poll)"] = sum(
        s - c["ready"] for s, c in zip(seen, cycles, strict=True)
    )
    gaps["health gate after the node" + (" + settle" if done_step == "roll" else "")] = sum(
        (d or s) - s for d, s in zip(done, seen, strict=True)
    )
    gaps["next node's pre-gate + stop launch"] = sum(
        nxt["drain_begin"] - (d or c["ready"])
        for c, d, nxt in zip(cycles[:-1], done[:-1], cycles[1:], strict=True)
    )
    if cycles:
        gaps["after the last node"] = t1 - (done[-1] or seen[-1])
    return {
        "wall_s": round(wall, 3),
        "own_sum_s": round(own_sum, 3),
        "overhead_x": round(wall / own_sum, 3) if own_sum else None,
        "gaps_s": {k: round(v, 3) for k, v in gaps.items()},
        "nodes": nodes,
    }


def _span(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(b - a, 3)


# ---------------------------------------------------------------------------------------------------------
# the run


@dataclass
class Cluster:
    bed: Any
    home: Path
    topo: Path
    base: list[str]
    env: dict[str, str]
    stats: Path
    releases: Path

    def command(self, args: list[str], what: str) -> Sample:
        wall, cpu, _ = timed([*self.base, *args], what, env=self.env)
        return Sample(wall, cpu, read_stats(self.stats))

    def tarball(self, version: str) -> Path:
        from tests.standin import make_release

        return self.releases / make_release.tarball_name(version, make_release.host_arch())


def build_releases(out: Path, versions: list[str]) -> None:
    from tests.standin import make_release

    for version in versions:
        make_release.build(version, out)


def rolling(cl: Cluster, label: str, args: list[str], verb: str, done_step: str) -> Sample:
    t0 = time.time()
    sample = cl.command(args, f"roachctl {label}")
    t1 = time.time()
    cycles = node_cycles(read_events(cl.bed), t0, t1)
    if len(cycles) != len(cl.bed.hosts):
        raise ScenarioFailed(f"{label}: {len(cycles)} of {len(cl.bed.hosts)} nodes restarted: {cycles}")
    spans = sorted((c["drain_begin"], c["ready"], c["host"]) for c in cycles)
    for (_, end, a), (begin, _, b) in itertools.pairwise(spans):
        if begin < end:
            raise ScenarioFailed(f"{label}: {a} and {b} were down at the same time")
    sample.analysis = analyse(cycles, read_journal(cl.home, verb, t0), t0, t1, done_step)
    a = sample.analysis
    log(
        f"  {label:<26} {sample.seconds:6.2f} s  nodes' own {a['own_sum_s']:.2f} s  "
        f"overhead {a['overhead_x']:.2f}x  (cpu {sample.cpu:.2f} s, rounds/host {sample.ssh.get('rounds')})"
    )
    for gap, secs in a["gaps_s"].items():
        log(f"      {gap:<44} {secs:6.2f} s")
    return sample


def run_bed(args: argparse.Namespace, work: Path, results: Results) -> None:
    from tests.support.bed import Bed

    versions = [BASE] + [f"v25.4.{i}" for i in range(1, 2 * args.repeat + 1)]
    releases = work / "releases"
    build_releases(releases, versions)
    with Bed.up(args.hosts, name=f"ops-{args.hosts}") as bed:
        settle(bed)
        home = work / "home"
        topo = work / f"{NAME}.yaml"
        lines = [f"name: {NAME}", f"version: {BASE}", "ssh:", "  user: root", "nodes:"]
        topo.write_text("\n".join(lines + [f"  - host: {h.name}" for h in bed.hosts]) + "\n")
        stats = work / "ssh-stats.jsonl"
        base = [
            str(ROACHCTL),
            "--home",
            str(home),
            "--ssh-config",
            str(bed.ssh_config),
            "--yes",
            "--no-color",
        ]
        env = {**os.environ, "ROACHCTL_SSH_STATS": str(stats), "COLUMNS": "200"}
        cl = Cluster(bed, home, topo, base, env, stats, releases)
        cl.command(["deploy", str(topo), "--tarball", str(cl.tarball(BASE))], "deploy (untimed)")
        cl.command(["start", NAME], "start (untimed)")
        log(f"{args.hosts} hosts deployed and started")
        next_version = 1
        for r in range(args.repeat):
            log(f"repeat {r + 1}/{args.repeat}")
            cl.command(["status", NAME], "status warm-up")
            for _ in range(args.status_runs if "status" in args.ops else 0):
                s = cl.command(["status", NAME], "roachctl status")
                results.add("status (warm)", s)
                log(f"  status (warm)              {s.seconds:6.2f} s  (cpu {s.cpu:.2f} s)")
            if "restart" in args.ops:
                time.sleep(args.quiesce)
                results.add("restart", rolling(cl, "restart", ["restart", NAME], "restart", "restart"))
            upgrades = (("upgrade (default settle)", None), ("upgrade (min settle)", args.settle_min))
            for label, settle_s in upgrades if "upgrade" in args.ops else ():
                version = f"v25.4.{next_version}"
                next_version += 1
                time.sleep(args.quiesce)
                argv = ["upgrade", NAME, "--version", version, "--tarball", str(cl.tarball(version))]
                argv += [] if settle_s is None else ["--settle", f"{settle_s:g}"]
                results.add(label, rolling(cl, label, argv, "upgrade", "roll"))
            stops = (("stop (whole cluster)", ["stop", NAME]), ("start from stopped", ["start", NAME]))
            for label, argv in stops if "stop" in args.ops else ():
                s = cl.command(argv, f"roachctl {label}")
                results.add(label, s)
                log(
                    f"  {label:<26} {s.seconds:6.2f} s  (cpu {s.cpu:.2f} s, "
                    f"rounds/host {s.ssh.get('rounds')})"
                )


def run_local(args: argparse.Namespace, work: Path, results: Results) -> None:
    """`local up --detach` (3 nodes) to ready: fresh home, then the same home with its release cache warm."""
    from tests.standin import make_release

    tarball = make_release.build(BASE, work / "local-release")
    home = work / "local-home"
    for r in range(args.repeat):
        for label, fresh in (("local up (fresh home)", True), ("local up (release cached)", False)):
            if fresh:
                shutil.rmtree(home, ignore_errors=True)
            base = [str(ROACHCTL), "--home", str(home), "--yes", "--no-color", "local"]
            name = f"opsbench{os.getpid()}"
            up = [*base, "up", "--detach", "--nodes", "3", "--name", name, "--tarball", str(tarball)]
            try:
                wall, cpu, _ = timed(up, label)
            finally:
                timed([*base, "down", "--name", name, "--wipe"], "local down (untimed)")
            results.add(label, Sample(wall, cpu))
            log(f"  {label:<26} {wall:6.2f} s  (cpu {cpu:.2f} s; repeat {r + 1})")


# ---------------------------------------------------------------------------------------------------------
# report


def rows(results: Results) -> list[dict[str, Any]]:
    out = []
    for row, runs in results.samples.items():
        entry: dict[str, Any] = {
            "row": row,
            "median_s": round(statistics.median(s.seconds for s in runs), 3),
            "runs_s": [round(s.seconds, 3) for s in runs],
            "cpu_s": round(statistics.median(s.cpu for s in runs), 3),
            "ssh_per_host": runs[-1].ssh,
        }
        analyses = [s.analysis for s in runs if s.analysis]
        if analyses:
            entry["own_sum_s"] = round(statistics.median(a["own_sum_s"] for a in analyses), 3)
            entry["overhead_x"] = round(statistics.median(a["overhead_x"] for a in analyses), 3)
            entry["gaps_s"] = {
                k: round(statistics.median(a["gaps_s"].get(k, 0.0) for a in analyses), 3)
                for k in analyses[0]["gaps_s"]
            }
            entry["runs"] = analyses
        out.append(entry)
    return out


def print_table(table: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    print()
    print(
        f"ops benchmark — {meta['date']} — {meta['machine']} — {meta['hosts']} hosts — "
        f"median of {meta['repeat']}"
    )
    print("overhead: wall / sum of each node's own drain_begin -> ready (stand-in event log); target <= 1.15")
    head = ("operation", "median s", "runs s", "cpu s", "nodes' own s", "overhead", "rounds (sessions)")
    lines = [head]
    for r in table:
        ssh = r["ssh_per_host"]
        lines.append(
            (
                r["row"],
                f"{r['median_s']:.2f}",
                " ".join(f"{x:.2f}" for x in r["runs_s"]),
                f"{r['cpu_s']:.2f}",
                f"{r['own_sum_s']:.2f}" if "own_sum_s" in r else "-",
                f"{r['overhead_x']:.2f}x" if "overhead_x" in r else "-",
                f"{ssh['rounds']} ({ssh['sessions']})" if ssh else "-",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for i, line in enumerate(lines):
        print(
            "  ".join(
                c.ljust(w) if j in (0, 2) else c.rjust(w)
                for j, (c, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for r in table:
        if "gaps_s" in r:
            print(f"\nwhere the rest of '{r['row']}' went (medians, s):")
            for gap, secs in r["gaps_s"].items():
                print(f"  {gap:<46} {secs:7.2f}")
    print(
        f"\ncontext: code {meta['code']}; load before {meta['load_before']}, after {meta.get('load_after')}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=9)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--status-runs", type=int, default=3, help="timed warm status runs per repeat")
    ap.add_argument("--settle-min", type=float, default=2.0, help="the small --settle upgrade (default 2)")
    ap.add_argument("--quiesce", type=float, default=12.0, help="untimed pause before each rolling operation")
    ap.add_argument(
        "--ops", default=",".join(OPS), help=f"comma-separated, of {','.join(OPS)} (default: all)"
    )
    ap.add_argument("--no-local", action="store_true", help="skip `local up`")
    ap.add_argument("--no-bed", action="store_true", help="only `local up`")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--save", type=Path)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    args.ops = {x for x in args.ops.split(",") if x}
    if args.ops - set(OPS):
        ap.error(f"--ops: of {','.join(OPS)}")
    if os.geteuid() != 0 and not args.no_bed:
        log("the test bed needs root")
        return 2
    work = Path(tempfile.mkdtemp(prefix="roachctl-ops-bench-"))
    results = Results()
    meta: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}",
        "hosts": args.hosts,
        "repeat": args.repeat,
        "settle_min": args.settle_min,
        "quiesce_s": args.quiesce,
        "code": code_under_test(),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    with scenarios(work, args.keep) as outcome:
        if not args.no_bed:
            run_bed(args, work, results)
        if not args.no_local:
            run_local(args, work, results)
    if outcome.bed_unavailable:
        return 2
    meta["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    table = rows(results)
    doc = {"meta": meta, "rows": table, "failed": outcome.failed}
    return emit(doc, args, lambda: print_table(table, meta))


if __name__ == "__main__":
    sys.exit(main())
