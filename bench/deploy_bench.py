#!/usr/bin/env python3
"""Deploy benchmark: roachctl vs the seed's sequential scp+ssh script, on the project's test bed.

    sudo .venv/bin/python bench/deploy_bench.py --hosts 3,9 --repeat 3 [--json] [--save F] [--pad-mb 100]

For every N in --hosts and every repeat, each scenario group on FRESH bed hosts (a new `Bed.up(N)`, whose
boot is not timed):

- ``seed cold``        THE BASELINE. bench/seed_deploy.sh: per host, one after another, one scp (tarball,
                       certs, unit, firewall file, post-install script) + one ssh running the script; no
                       ControlMaster. Certs made beforehand, untimed, as the seed did.
- ``seed re-run``      the same script again on the same hosts (no idempotence: it redoes everything).
- ``roachctl cold``    ``roachctl --yes deploy`` on fresh hosts with a fresh --home: includes creating the
                       CA and signing the node certs.
- ``roachctl no-op``   the same deploy again on those hosts: must print "0 changes" (asserted).
- ``roachctl cold, certs pre-made``  own fresh bed: an untimed ``deploy --dry-run`` creates the CA and the
                       node certs first (the seed's untimed step), then the timed deploy.
- ``seed cold, scp per file`` (--seed-per-file) one scp per file: 7 + 1 connections per host.

Seed and roachctl alternate which goes first between repeats. Each scenario is the wall clock of its
whole command (interpreter start-up included); the end state (binary, certs, unit enabled, service user)
is checked after each deploy (untimed). Reported: the median of --repeat runs and its ratio to the
seed-cold median of the same run. The issue's Ansible/seed numbers are static context, printed as
"reference (issue, not measured here)".

Needs root (the bed). Exit status 0 whenever the measurement completed, whatever the verdict; 1 if a
scenario failed (wrong end state, no "0 changes", a command error); 2 if the bed is unavailable.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

VERSION = "v25.4.0"
ROACHCTL = REPO / ".venv" / "bin" / "roachctl"
SEED_SCRIPT = REPO / "bench" / "seed_deploy.sh"
MAKE_RELEASE = REPO / "tests" / "standin" / "make_release.py"
NOOP_TARGET_S = 2.0
NOOP_TARGET_HOSTS = 9

PREMADE = "roachctl cold, certs pre-made"
SCENARIOS = (
    "seed cold",
    "seed re-run",
    "seed cold, scp per file",
    "roachctl cold",
    PREMADE,
    "roachctl no-op",
)
BASELINE = "seed cold"

# The numbers (medians of 3 on *their* test bed). Context only: never measured by this script.
REFERENCE = {
    3: {"ansible cold": 12.9, "ansible no-op": 10.0, "seed cold": 4.4},
    9: {"ansible cold": 34.0, "ansible no-op": 33.0, "seed cold": 11.8},
}
# Which reference numbers sit next to which measured scenario in the table.
REFERENCE_FOR = {
    "seed cold": ("seed cold",),
    "seed re-run": (),
    "seed cold, scp per file": ("seed cold",),
    "roachctl cold": ("ansible cold", "seed cold"),
    PREMADE: ("ansible cold", "seed cold"),
    "roachctl no-op": ("ansible no-op",),
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class ScenarioFailed(Exception):
    pass


@dataclass
class Run:
    seconds: float
    detail: str = ""


@dataclass
class Results:
    runs: dict[int, dict[str, list[Run]]] = field(default_factory=dict)
    boot: dict[int, list[float]] = field(default_factory=dict)

    def add(self, n: int, scenario: str, run: Run) -> None:
        self.runs.setdefault(n, {}).setdefault(scenario, []).append(run)

    def median(self, n: int, scenario: str) -> float | None:
        runs = self.runs.get(n, {}).get(scenario)
        return statistics.median(r.seconds for r in runs) if runs else None


# ---------------------------------------------------------------------------------------------------------
# preparation (untimed)


def build_release(out: Path) -> Path:
    subprocess.run(
        [sys.executable, str(MAKE_RELEASE), VERSION, str(out), "--arch", "amd64"],
        check=True,
        capture_output=True,
        text=True,
    )
    tarball = out / f"cockroach-{VERSION}.linux-amd64.tgz"
    if not tarball.is_file():
        raise SystemExit(f"make_release.py did not write {tarball}")
    return tarball


PAD_CACHE = Path(os.environ.get("ROACHCTL_BENCH_CACHE", "/var/tmp/roachctl-bench-cache"))


def pad_release(tarball: Path, mb: int) -> Path:
    """A release of realistic size AND compressibility: tarball about `mb` MiB, its `cockroach` about
    `mb` / 0.30 MiB (tests/standin/make_release.py `build_padded`; bench/README.md cites real sizes).
    Built once per stand-in text and size into PAD_CACHE, then hard-linked (or copied) beside `tarball`
    with its .sha256sum; returns the new tarball."""
    from tests.standin import make_release

    key = hashlib.sha256(make_release.STANDIN.read_bytes())
    key.update(f"{tarball.name} {mb} {make_release.DEFAULT_GZIP_RATIO} v1".encode())
    cached = PAD_CACHE / key.hexdigest()[:16] / tarball.name
    if not cached.with_name(cached.name + ".sha256sum").is_file():
        log(f"building a padded release ({mb} MiB tarball) into {cached.parent} (cached for later runs)")
        version, arch = tarball.name[len("cockroach-") : -len(".tgz")].rsplit(".linux-", 1)
        make_release.build_padded(version, cached.parent, arch, tarball_mb=mb)
    out = tarball.parent / "padded" / tarball.name
    out.parent.mkdir(parents=True, exist_ok=True)
    for src, dst in (
        (cached, out),
        (cached.with_name(cached.name + ".sha256sum"), out.with_name(out.name + ".sha256sum")),
    ):
        dst.unlink(missing_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
    return out


def make_seed_certs(out: Path, n: int) -> Path:
    """The seed's `cockroach cert create-ca` + `create-node` per node, done once, before any timing."""
    from roachctl.tls import pki

    certs = out / f"certs-{n}"
    certs.mkdir(parents=True, exist_ok=True)
    ca = pki.create_ca()
    (certs / "ca.crt").write_bytes(ca.cert_pem())
    for i in range(1, n + 1):
        host = f"h{i}"
        node = pki.create_node_cert(ca, [host])
        (certs / host).mkdir(exist_ok=True)
        (certs / host / "node.crt").write_bytes(node.cert_pem())
        key = certs / host / "node.key"
        key.write_bytes(node.key_pem())
        key.chmod(0o600)
    return certs


def write_topology(path: Path, n: int) -> None:
    lines = [f"name: bench{n}", f"version: {VERSION}", "ssh:", "  user: root", "nodes:"]
    lines += [f"  - host: h{i}" for i in range(1, n + 1)]
    path.write_text("\n".join(lines) + "\n")


def settle(bed: Any) -> None:
    """Let every freshly booted host finish starting its units, so boot work is not billed to a scenario."""
    for host in bed.hosts:
        bed.exec(host, ["timeout", "30", "systemctl", "is-system-running", "--wait"], check=False, timeout=40)
    time.sleep(0.3)


CHECK_SCRIPT = r"""
set -e
test -x /opt/cockroach/cockroach
test "$(stat -L -c %U /opt/cockroach/cockroach)" = root
test -s /opt/cockroach/certs/ca.crt
test -s /opt/cockroach/certs/node.crt
# the seed's key is the service user's (600); roachctl's is root:cockroach 640 (contract §7)
case "$(stat -c %U:%G:%a /opt/cockroach/certs/node.key)" in
  cockroach:*:600|root:cockroach:640) ;;
  *) exit 1;;
esac
id cockroach >/dev/null
test -d /var/lib/cockroach
test "$(systemctl is-enabled cockroach.service)" = enabled
/opt/cockroach/cockroach version >/dev/null
"""


def check_end_state(bed: Any, what: str) -> None:
    for host in bed.hosts:
        proc = bed.exec(host, ["sh", "-c", CHECK_SCRIPT], check=False)
        if proc.returncode != 0:
            raise ScenarioFailed(
                f"{what}: {host.name} is not deployed: {proc.stderr.strip() or proc.stdout.strip()}"
            )


def timed(
    argv: list[str], what: str, *, timeout: float = 600
) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise ScenarioFailed(
            f"{what}: exit {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
            f"\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return elapsed, proc


# ---------------------------------------------------------------------------------------------------------
# scenarios


def run_seed(bed: Any, n: int, tarball: Path, certs: Path, results: Results, *, rerun: bool) -> None:
    argv = ["bash", str(SEED_SCRIPT), str(bed.ssh_config), str(tarball), str(certs), VERSION]
    argv += [h.name for h in bed.hosts]
    elapsed, _ = timed(argv, f"seed cold ({n} hosts)")
    check_end_state(bed, "seed cold")
    results.add(n, "seed cold", Run(elapsed))
    log(f"    seed cold        {elapsed:6.2f} s")
    if rerun:
        elapsed, _ = timed(argv, f"seed re-run ({n} hosts)")
        check_end_state(bed, "seed re-run")
        results.add(n, "seed re-run", Run(elapsed))
        log(f"    seed re-run      {elapsed:6.2f} s")


def run_seed_per_file(bed: Any, n: int, tarball: Path, certs: Path, results: Results) -> None:
    argv = ["bash", str(SEED_SCRIPT), str(bed.ssh_config), str(tarball), str(certs), VERSION]
    argv += [h.name for h in bed.hosts]
    env = {**os.environ, "SEED_SCP": "per-file"}
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise ScenarioFailed(
            f"seed cold, scp per file ({n} hosts): exit {proc.returncode}\n{proc.stderr[-4000:]}"
        )
    check_end_state(bed, "seed cold, scp per file")
    results.add(n, "seed cold, scp per file", Run(elapsed))
    log(f"    seed per-file    {elapsed:6.2f} s")


CHANGES_RE = re.compile(r"(\d+) change\(s\) applied")


def run_roachctl(
    bed: Any, n: int, tarball: Path, work: Path, results: Results, *, premade: bool = False
) -> None:
    """Cold deploy then the no-op re-deploy; with `premade`, an untimed `--dry-run` first creates the CA and
    node certs in the home (as the seed made its certs beforehand) and only the cold deploy is recorded."""
    home = Path(tempfile.mkdtemp(prefix="home-", dir=work))
    topo = work / f"topo-{n}.yaml"
    write_topology(topo, n)
    argv = [str(ROACHCTL), "--home", str(home), "--ssh-config", str(bed.ssh_config), "--yes", "--no-color"]
    argv += ["deploy", str(topo), "--tarball", str(tarball)]
    cold = PREMADE if premade else "roachctl cold"
    if premade:
        timed([*argv, "--dry-run"], f"roachctl --dry-run ({n} hosts, untimed)")
        nodes = home / "clusters" / f"bench{n}" / "nodes"
        if len([d for d in nodes.glob("h*/node.key")]) != n:
            raise ScenarioFailed(f"roachctl --dry-run did not leave {n} node certs under {nodes}")

    elapsed, proc = timed(argv, f"{cold} ({n} hosts)")
    text = proc.stdout + proc.stderr  # the human report goes to stderr when stdout is not a terminal
    applied = [int(m) for m in CHANGES_RE.findall(text)]
    if len(applied) != n or min(applied) == 0:
        raise ScenarioFailed(f"{cold}: expected {n} hosts with changes applied:\n{text}")
    check_end_state(bed, cold)
    results.add(n, cold, Run(elapsed, f"{sum(applied)} changes"))
    log(f"    {cold:<16} {elapsed:6.2f} s  ({sum(applied)} changes)")
    if premade:
        return

    elapsed, proc = timed(argv, f"roachctl no-op ({n} hosts)")
    text = proc.stdout + proc.stderr
    if not re.search(r"(?m)^\s*0 changes\s*$", text):
        raise ScenarioFailed(f'roachctl no-op: "0 changes" not reported:\n{text}')
    results.add(n, "roachctl no-op", Run(elapsed, "0 changes"))
    log(f"    roachctl no-op   {elapsed:6.2f} s  (0 changes)")


def on_fresh_bed(n: int, name: str, results: Results, body: Callable[[Any], None]) -> None:
    from tests.support.bed import Bed

    t0 = time.perf_counter()
    with Bed.up(n, name=name) as bed:
        settle(bed)
        results.boot.setdefault(n, []).append(time.perf_counter() - t0)
        body(bed)


def code_under_test() -> str:
    """The commit measured, and whether src/ had uncommitted changes (the venv runs the working tree)."""

    def git(*a: str) -> str:
        proc = subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else "?"

    head = git("rev-parse", "--short", "HEAD")
    dirty = [line for line in git("status", "--porcelain", "--", "src").splitlines() if line.strip()]
    return f"{head}" + (f" + {len(dirty)} uncommitted file(s) in src/" if dirty else " (src/ clean)")


def precompile() -> None:
    """Compile src/ to bytecode, as a wheel install (pip, pipx) does when it installs roachctl.

    The venv's editable install reads src/ directly, and under PYTHONDONTWRITEBYTECODE=1 (set in some
    CI and agent environments) Python never caches what it compiled: every command then recompiled
    every module it imports, about 0.3 s of CPU per command that no installed roachctl pays.
    Stale bytecode is never used: Python checks each source's mtime and size against its .pyc.
    """
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "src")], check=True)


def startup_seconds(repeat: int) -> float:
    """`roachctl --version`: the controller's interpreter + CLI start-up, paid once per command (no ssh)."""
    times = []
    for _ in range(max(3, repeat)):
        t0 = time.perf_counter()
        subprocess.run([str(ROACHCTL), "--version"], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ---------------------------------------------------------------------------------------------------------
# report


def fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def report_rows(results: Results) -> list[dict[str, Any]]:
    rows = []
    for n in sorted(results.runs):
        base = results.median(n, BASELINE)
        for scenario in SCENARIOS:
            med = results.median(n, scenario)
            if med is None:
                continue
            runs = results.runs[n][scenario]
            refs = {k: REFERENCE.get(n, {}).get(k) for k in REFERENCE_FOR[scenario]}
            rows.append(
                {
                    "scenario": scenario,
                    "hosts": n,
                    "median_s": round(med, 3),
                    "runs_s": [round(r.seconds, 3) for r in runs],
                    "ratio_vs_seed_cold": round(med / base, 3) if base else None,
                    "speedup_vs_seed_cold": round(base / med, 2) if base else None,
                    "reference_issue_not_measured": {k: v for k, v in refs.items() if v is not None},
                }
            )
    return rows


def verdict(results: Results) -> dict[str, Any]:
    out: dict[str, Any] = {}
    noop9 = results.median(NOOP_TARGET_HOSTS, "roachctl no-op")
    out["noop_target"] = {
        "hosts": NOOP_TARGET_HOSTS,
        "target_s": NOOP_TARGET_S,
        "median_s": None if noop9 is None else round(noop9, 3),
        "met": None if noop9 is None else noop9 < NOOP_TARGET_S,
    }
    beats = {}
    for n in sorted(results.runs):
        seed = results.median(n, BASELINE)
        cold = results.median(n, "roachctl cold")
        noop = results.median(n, "roachctl no-op")
        premade = results.median(n, PREMADE)
        beats[n] = {
            "cold_beats_seed_cold_measured": None if seed is None or cold is None else cold < seed,
            "cold_premade_beats_seed_cold_measured": None
            if seed is None or premade is None
            else premade < seed,
            "noop_beats_seed_cold_measured": None if seed is None or noop is None else noop < seed,
        }
    out["beats"] = beats
    return out


def print_table(results: Results, meta: dict[str, Any]) -> None:
    rows = report_rows(results)
    header = (
        "scenario",
        "hosts",
        "median s",
        "runs s",
        "x seed cold",
        "speedup",
        "reference (issue, not measured here)",
    )
    table = [header]
    for r in rows:
        refs = ", ".join(f"{k} {v:g} s" for k, v in r["reference_issue_not_measured"].items())
        table.append(
            (
                r["scenario"],
                str(r["hosts"]),
                fmt(r["median_s"]),
                " ".join(fmt(x) for x in r["runs_s"]),
                fmt(r["ratio_vs_seed_cold"]),
                "-" if r["speedup_vs_seed_cold"] is None else f"{r['speedup_vs_seed_cold']:.2f}x",
                refs or "-",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print()
    print(f"deploy benchmark — {meta['date']} — {meta['machine']} — median of {meta['repeat']} per scenario")
    print("x seed cold = median / seed-cold median of this run (lower is better); speedup = its inverse")
    for i, row in enumerate(table):
        print(
            "  ".join(
                cell.ljust(w) if j in (0, 3, 6) else cell.rjust(w)
                for j, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print()
    print("reference (issue, not measured here): medians of 3 on the issue's test bed")
    for n, refs in REFERENCE.items():
        print(f"  {n} hosts: " + ", ".join(f"{k} {v:g} s" for k, v in refs.items()))
    print()
    print(
        f"context: roachctl start-up (`roachctl --version`, no ssh) {fmt(meta['startup_s'])} s per command; "
        f"bed boot+settle per fresh bed (not timed): "
        + ", ".join(f"{n} hosts {fmt(statistics.median(v), 1)} s" for n, v in sorted(results.boot.items()))
    )
    size = meta.get("tarball_bytes", "?")
    print(f"context: code measured: {meta['code']}; release: stand-in tarball {size} bytes")
    print(f"context: load average before {meta['load_before']}, after {meta['load_after']}")
    v = verdict(results)
    t = v["noop_target"]
    print()
    target = f"{NOOP_TARGET_HOSTS}-host no-op re-deploy < {NOOP_TARGET_S:g} s"
    if t["median_s"] is None:
        print(f"VERDICT: target ({target}) not measured (pass --hosts {NOOP_TARGET_HOSTS})")
    elif t["met"]:
        print(f"VERDICT: target MET ({target}): median {t['median_s']:.2f} s")
    else:
        print(f"VERDICT: target MISSED ({target}): median {t['median_s']:.2f} s")
    for n in sorted(results.runs):
        seed = results.median(n, BASELINE)
        if seed is None:
            continue
        for scenario in ("roachctl cold", PREMADE, "roachctl no-op"):
            med = results.median(n, scenario)
            if med is None:
                continue
            word = "faster" if med < seed else "NOT faster"
            print(
                f"VERDICT: {n} hosts: {scenario} {med:.2f} s is {word} than seed cold {seed:.2f} s (same run)"
            )


# ---------------------------------------------------------------------------------------------------------


def emit(doc: dict[str, Any], args: argparse.Namespace, table: Callable[[], None]) -> int:
    """Every benchmark's ending: the JSON to --save, then the JSON (--json) or `table()` on stdout;
    exit 1 if a scenario failed (doc["failed"]), else 0."""
    if args.save:
        args.save.write_text(json.dumps(doc, indent=2) + "\n")
    if args.json:
        json.dump(doc, sys.stdout, indent=2)
        print()
    else:
        table()
    return 1 if doc["failed"] else 0


@dataclass
class Outcome:
    """How a benchmark's scenarios ended (see `scenarios`)."""

    failed: bool = False  # a scenario failed or Ctrl-C cut the run short: partial results, exit 1
    bed_unavailable: bool = False  # no results: exit 2

    def attempt(self, body: Callable[[], None]) -> None:
        """One scenario whose failure is logged and counted without stopping the others (their rows are
        still worth having)."""
        try:
            body()
        except ScenarioFailed as exc:
            log(f"SCENARIO FAILED: {exc}")
            self.failed = True


@contextlib.contextmanager
def scenarios(work: Path, keep: bool = False) -> Iterator[Outcome]:
    """Every benchmark's skeleton around its scenarios: an unavailable bed ends the run with no results
    (exit 2), a failed scenario or Ctrl-C ends it with the partial results (exit 1); the work directory
    is removed either way, unless --keep."""
    from tests.support.bed import BedUnavailable

    outcome = Outcome()
    try:
        yield outcome
    except BedUnavailable as exc:
        log(f"test bed unavailable: {exc}")
        outcome.bed_unavailable = True
    except ScenarioFailed as exc:
        log(f"SCENARIO FAILED: {exc}")
        outcome.failed = True
    except KeyboardInterrupt:
        log("interrupted; partial results follow")
        outcome.failed = True
    finally:
        if keep:
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", default="3,9", help="comma-separated host counts (default 3,9)")
    ap.add_argument(
        "--repeat", type=int, default=3, help="runs per scenario; the median is reported (default 3)"
    )
    ap.add_argument(
        "--json", action="store_true", help="print the results as JSON on stdout (progress on stderr)"
    )
    ap.add_argument("--save", type=Path, help="also write the JSON document to this file")
    ap.add_argument(
        "--pad-mb",
        type=int,
        default=0,
        help="a stand-in release of realistic size: tarball ~N MiB, binary ~N/0.30 MiB (real: ~100 MB)",
    )
    ap.add_argument(
        "--seed-per-file",
        action="store_true",
        help="also time the seed with one scp per file (7+1 connections per host; not the baseline)",
    )
    ap.add_argument(
        "--no-premade",
        action="store_true",
        help="skip the 'roachctl cold, certs pre-made' scenario (its own fresh bed per repeat)",
    )
    ap.add_argument("--no-seed-rerun", action="store_true", help="skip the seed script's second run")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (tarball, certs, homes)")
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.hosts.split(",") if x.strip()]
    if args.repeat < 1 or not counts:
        ap.error("--repeat must be >= 1 and --hosts non-empty")
    if os.geteuid() != 0:
        log("the test bed needs root: sudo .venv/bin/python bench/deploy_bench.py ...")
        return 2
    if not ROACHCTL.exists():
        log(f"{ROACHCTL} missing: run ./scripts/bootstrap --dev")
        return 2
    work = Path(tempfile.mkdtemp(prefix="roachctl-bench-"))
    results = Results()
    meta: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}",
        "repeat": args.repeat,
        "hosts": counts,
        "code": code_under_test(),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    with scenarios(work, args.keep) as outcome:
        tarball = build_release(work / "release")
        if args.pad_mb > 0:
            tarball = pad_release(tarball, args.pad_mb)
        meta["tarball_bytes"] = tarball.stat().st_size
        precompile()
        meta["startup_s"] = startup_seconds(args.repeat)
        for n in counts:
            certs = make_seed_certs(work, n)
            for r in range(args.repeat):
                log(f"{n} hosts, repeat {r + 1}/{args.repeat}")
                rerun = not args.no_seed_rerun
                seed = (
                    "seed",
                    partial(run_seed, n=n, tarball=tarball, certs=certs, results=results, rerun=rerun),
                )
                roach = ("roachctl", partial(run_roachctl, n=n, tarball=tarball, work=work, results=results))
                order = [seed, roach] if r % 2 == 0 else [roach, seed]
                if not args.no_premade:
                    body = partial(
                        run_roachctl, n=n, tarball=tarball, work=work, results=results, premade=True
                    )
                    order.append(("premade", body))
                if args.seed_per_file:
                    body = partial(run_seed_per_file, n=n, tarball=tarball, certs=certs, results=results)
                    order.append(("seedpf", body))
                for label, body in order:
                    on_fresh_bed(n, f"bench-{label}-{n}", results, body)
    if outcome.bed_unavailable:
        return 2
    meta["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    meta.setdefault("startup_s", None)
    doc = {
        "meta": meta,
        "rows": report_rows(results),
        "verdict": verdict(results),
        "reference_issue_not_measured": REFERENCE,
        "boot_s": {n: [round(x, 2) for x in v] for n, v in results.boot.items()},
        "failed": outcome.failed,
    }
    return emit(doc, args, lambda: print_table(results, meta))


if __name__ == "__main__":
    sys.exit(main())
