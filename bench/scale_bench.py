#!/usr/bin/env python3
"""Scale benchmark: how roachctl's time grows with the number of hosts (issue 13: 3 -> 9 -> 30).

    sudo .venv/bin/python bench/scale_bench.py --hosts 3,9,30 --repeat 3 [--status-repeat 3] [--json]
                                               [--save F]

For every N in --hosts and every repeat, on FRESH bed hosts (a new `Bed.up(N)`, boot not timed):

- ``deploy cold``   ``roachctl --yes deploy --tarball`` with a fresh --home (CA and node certs included);
- ``deploy no-op``  the same deploy again: must print "0 changes" (asserted);
- ``start``         ``roachctl start`` to every node ready (checked on each host afterwards, untimed);
- ``status warm``   ``roachctl status`` after one untimed status: the median of --status-repeat runs.

The commands run one after another with the default `ssh.persist`, so every row after ``deploy cold``
uses the ssh masters the previous command left (docs/interface.md "ssh connections"): warm.

Each row is the wall clock of the whole command (interpreter start-up included) and the controller's CPU
(getrusage of the children: roachctl and its ssh clients). Reported: the median over --repeat, and the
growth 3 -> 9 -> 30 against the issue's targets (30-host cold deploy <= 2.5x the 9-host one; `status` of 30
hosts <= 1.5 s warm). 30 hosts need ~6 GB of free memory and take ~30-60 s to boot on 2 cores.

Needs root (the bed). Exit status 0 whenever the measurement completed; 1 if a scenario failed; 2 if the
bed is unavailable.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from deploy_bench import (  # noqa: E402
    ROACHCTL,
    ScenarioFailed,
    build_release,
    check_end_state,
    code_under_test,
    emit,
    log,
    scenarios,
    settle,
    write_topology,
)

ROWS = ("deploy cold", "deploy no-op", "start", "status warm")
COLD_GROWTH_TARGET = 2.5  # 30-host cold deploy / 9-host cold deploy
STATUS_TARGET_S = 1.5  # status of 30 hosts, warm
READY_PY = (
    'python3 -c "import ssl,sys,urllib.request;c=ssl.create_default_context();c.check_hostname=False;'
    "c.verify_mode=ssl.CERT_NONE;sys.exit(urllib.request.urlopen("
    "'https://127.0.0.1:8080/health?ready=1',context=c,timeout=5).status!=200)\""
)


def timed(argv: list[str], what: str) -> tuple[float, float, str]:
    """(wall s, controller CPU s, stdout+stderr) of one command; ScenarioFailed on a non-zero exit."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, cwd=REPO)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise ScenarioFailed(
            f"{what}: exit {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
            f"\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return wall, cpu, proc.stdout + proc.stderr


def check_ready(bed: Any, grace: float = 30.0) -> None:
    """Every node ready after `start` (untimed). A node may turn unready for a moment on a loaded machine
    (the stand-in's liveness lapses when its heartbeats starve), so each gets `grace` seconds."""
    for host in bed.hosts:
        deadline = time.monotonic() + grace
        while True:
            proc = bed.exec(host, ["sh", "-c", READY_PY], check=False)
            if proc.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise ScenarioFailed(f"start: {host.name} is not ready: {proc.stderr.strip()[-800:]}")
            log(f"    ({host.name} not ready yet after start; retrying)")
            time.sleep(1)


def run_once(
    bed: Any, n: int, tarball: Path, work: Path, status_repeat: int
) -> dict[str, tuple[float, float]]:
    home = Path(tempfile.mkdtemp(prefix="home-", dir=work))
    topo = work / f"topo-{n}.yaml"
    write_topology(topo, n)
    base = [str(ROACHCTL), "--home", str(home), "--ssh-config", str(bed.ssh_config), "--yes", "--no-color"]
    deploy = [*base, "deploy", str(topo), "--tarball", str(tarball)]
    out: dict[str, tuple[float, float]] = {}
    wall, cpu, _ = timed(deploy, f"deploy cold ({n} hosts)")
    check_end_state(bed, "deploy cold")
    out["deploy cold"] = (wall, cpu)
    wall, cpu, text = timed(deploy, f"deploy no-op ({n} hosts)")
    if not re.search(r"(?m)^\s*0 changes\s*$", text):
        raise ScenarioFailed(f'deploy no-op: "0 changes" not reported:\n{text}')
    out["deploy no-op"] = (wall, cpu)
    out["start"] = timed([*base, "start", f"bench{n}"], f"start ({n} hosts)")[:2]
    check_ready(bed)
    status = [*base, "status", f"bench{n}"]
    timed(status, f"status ({n} hosts, warm-up)")
    runs = [timed(status, f"status ({n} hosts)")[:2] for _ in range(status_repeat)]
    out["status warm"] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
    for row in ROWS:
        log(f"    {row:<13} {out[row][0]:6.2f} s (cpu {out[row][1]:.2f} s)")
    return out


def set_heartbeats(bed: Any, secs: float) -> None:
    """Stand-in only: its heartbeat interval on every host (every stand-in node heartbeats every peer,
    O(n^2); 30 idle nodes at its default 1 s use about one of 2 cores and stay live, see
    tests/standin/README.md)."""
    line = f"COCKROACH_STANDIN_HEARTBEAT_SECS={secs:g}\n"
    for host in bed.hosts:
        bed.exec(host, ["sh", "-c", "umask 022; cat > /etc/cockroach-standin.env"], input=line)
    log(f"    (stand-in heartbeats every {secs:g} s on these {len(bed.hosts)} hosts)")


def summarize(samples: dict[int, list[dict[str, tuple[float, float]]]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for n, runs in sorted((n, runs) for n, runs in samples.items() if runs):
        table[str(n)] = {
            row: {
                "wall_s": round(statistics.median(r[row][0] for r in runs), 2),
                "cpu_s": round(statistics.median(r[row][1] for r in runs), 2),
                "runs": len(runs),
            }
            for row in ROWS
        }
    counts = sorted(n for n, runs in samples.items() if runs)
    growth = {}
    for a, b in itertools.pairwise(counts):
        growth[f"{a}->{b}"] = {
            row: round(table[str(b)][row]["wall_s"] / table[str(a)][row]["wall_s"], 2) for row in ROWS
        }
    verdict: dict[str, Any] = {}
    if "9" in table and "30" in table:
        ratio = table["30"]["deploy cold"]["wall_s"] / table["9"]["deploy cold"]["wall_s"]
        verdict["cold 30 / cold 9"] = {"ratio": round(ratio, 2), "target": COLD_GROWTH_TARGET,
                                       "met": ratio <= COLD_GROWTH_TARGET}  # fmt: skip
    if "30" in table:
        s = table["30"]["status warm"]["wall_s"]
        verdict["status 30 warm"] = {"seconds": s, "target": STATUS_TARGET_S, "met": s <= STATUS_TARGET_S}
    return {"table": table, "growth": growth, "verdict": verdict}


def print_report(doc: dict[str, Any]) -> None:
    meta, table = doc["meta"], doc["table"]
    print(f"scale bench {meta['date']} on {meta['machine']}; code {meta['code']}")
    print(f"load before {meta['load_before']}, after {meta['load_after']}; repeat {meta['repeat']}")
    counts = list(table)
    print(f"{'row':<14}" + "".join(f"{n + ' hosts':>18}" for n in counts))
    for row in ROWS:
        cells = "".join(f"{table[n][row]['wall_s']:>9.2f} s ({table[n][row]['cpu_s']:>4.1f})" for n in counts)
        print(f"{row:<14}{cells}")
    print("(wall seconds, median; controller CPU seconds in parentheses)")
    for step, ratios in doc["growth"].items():
        print(f"growth {step}: " + ", ".join(f"{row} x{r}" for row, r in ratios.items()))
    for what, v in doc["verdict"].items():
        print(f"{what}: {v} ")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", default="3,9,30", help="comma-separated host counts (default 3,9,30)")
    ap.add_argument("--repeat", type=int, default=3, help="fresh beds per host count (default 3)")
    ap.add_argument("--status-repeat", type=int, default=3, help="timed status runs per bed (default 3)")
    ap.add_argument("--json", action="store_true", help="print the JSON document instead of the table")
    ap.add_argument("--save", type=Path, help="also write the JSON document to this file")
    ap.add_argument(
        "--heartbeat-secs",
        type=float,
        default=1.0,
        help="stand-in heartbeat interval on every bed (/etc/cockroach-standin.env when not 1 s; default "
        "1 s, the stand-in's own: 30 idle nodes stay live at 1 s on 2 cores, using about one)",
    )
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.hosts.split(",") if x.strip()]
    from tests.support.bed import Bed

    work = Path(tempfile.mkdtemp(prefix="roachctl-scale-bench-"))
    meta: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}",
        "repeat": args.repeat,
        "hosts": counts,
        "code": code_under_test(),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "standin_heartbeat_secs": args.heartbeat_secs,
    }
    samples: dict[int, list[dict[str, tuple[float, float]]]] = {}
    with scenarios(work) as outcome:
        tarball = build_release(work / "release")
        for n in counts:
            for r in range(args.repeat):
                log(f"{n} hosts, repeat {r + 1}/{args.repeat}")
                t0 = time.perf_counter()
                with Bed.up(n, name=f"scale-{n}") as bed:
                    settle(bed)
                    if args.heartbeat_secs != 1.0:
                        set_heartbeats(bed, args.heartbeat_secs)
                    log(f"    (bed up and settled in {time.perf_counter() - t0:.1f} s, untimed)")
                    samples.setdefault(n, []).append(run_once(bed, n, tarball, work, args.status_repeat))
    if outcome.bed_unavailable:
        return 2
    meta["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    doc = {"meta": meta, **summarize(samples), "failed": outcome.failed}
    return emit(doc, args, lambda: print_report(doc))


if __name__ == "__main__":
    sys.exit(main())
