#!/usr/bin/env python3
"""Bytes each tool really sends to each host over ssh, with a release of realistic size (issue 13).

    sudo .venv/bin/python bench/bytes_bench.py --hosts 3 --pad-mb 100 [--tools seed,roachctl,ansible]
                                               [--json] [--save F]

Every ssh connection of every tool goes through bench/delayproxy.py in counting mode (its
`ProxyCommand`, 0 ms delay, tests/support/wire.py), which records per connection the bytes sent
towards the host (`up`) and back (`down`): the ssh transport stream (key exchange, encrypted packets,
MACs, padding), without TCP/IP headers. Each tool runs on its own FRESH bed of --hosts hosts:

- ``seed, binary``   bench/seed_deploy.sh with SEED_COPY=binary: what the seed's transcript sent, the
                     extracted `cockroach` (+ today's lib/*.so) per host, uncompressed. THE BASELINE of
                     the total: that is what the seed script sends.
- ``seed, tarball``  bench/seed_deploy.sh as deploy_bench/ready_bench run it (the tarball per host).
- ``roachctl cold``  ``roachctl deploy --tarball`` on fresh hosts; ``roachctl no-op``: the same again
                     (must print "0 changes"). After the cold deploy, the files of >= 1 MiB it left on
                     each host (the overlay's upper dir) are listed: the release must be there once.
- ``ansible cold`` / ``ansible no-op`` (tools: ansible) bench/ansible/cockroach.yml, which also starts
                     and inits the cluster (it has no deploy-only mode): compare its bytes, not its scope.

Reported per row: bytes up/down per host (max over hosts), connections per host, the total over hosts
(up + down), per host / tarball size, and total / the seed's (binary) total. Issue 13's targets: per
host <= 1.02 x the tarball, total <= 0.6 x the seed script.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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
    check_end_state,
    code_under_test,
    emit,
    log,
    pad_release,
    scenarios,
    settle,
    timed,
    write_topology,
)
from tests.support.wire import counting_ssh_config, read_counts  # noqa: E402

TOOLS = ("seed", "roachctl", "ansible")
PER_HOST_TARGET = 1.02
TOTAL_TARGET = 0.6
BASELINE = "seed, binary"
BIG = 1 << 20


def big_files(bed: Any) -> dict[str, list[str]]:
    """Per host: files of >= 1 MiB written since boot (the overlay's upper dir), with their sizes."""
    out: dict[str, list[str]] = {}
    for host in bed.hosts:
        argv = ["find", str(host.upper), "-xdev", "-type", "f", "-size", f"+{BIG - 1}c", "-printf", "%s %P\n"]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        out[host.name] = sorted(proc.stdout.split("\n")[:-1])
    return out


class Bench:
    def __init__(self, n: int, work: Path, tarball: Path) -> None:
        self.n, self.work, self.tarball = n, work, tarball
        self.size = tarball.stat().st_size
        self.rows: dict[str, dict[str, Any]] = {}
        self.files: dict[str, dict[str, list[str]]] = {}

    def measure(self, row: str, bed: Any, run: Callable[[Path], None]) -> None:
        """Run `run(ssh_config)` with every connection counted; record the row."""
        counts = self.work / f"bytes-{re.sub(r'[^a-z]+', '-', row)}-{time.monotonic_ns()}.jsonl"
        config = counting_ssh_config(Path(bed.ssh_config), counts)
        t0 = time.perf_counter()
        run(config)
        wall = time.perf_counter() - t0
        per_host = read_counts(counts)
        if set(per_host) != {h.name for h in bed.hosts}:
            raise ScenarioFailed(f"{row}: bytes counted for {sorted(per_host)}, not every host")
        self.rows[row] = {"per_host": per_host, "seconds": round(wall, 2)}
        top = max(per_host.values(), key=lambda v: v["up"] + v["down"])
        log(f"    {row:<15} {wall:6.2f} s  per host up to {top['up']:,} up + {top['down']:,} down bytes, "
            f"{top['connections']} connection(s)")  # fmt: skip

    # -- the tools -----------------------------------------------------------------------------------

    def seed(self, bed: Any, certs: Path) -> None:
        for row, copy in (("seed, binary", "binary"), ("seed, tarball", "tarball")):
            argv = ["bash", str(SEED_SCRIPT), "", str(self.tarball), str(certs), VERSION]
            argv += [h.name for h in bed.hosts]

            def run(cfg: Path, argv: list[str] = argv, copy: str = copy, row: str = row) -> None:
                argv[2] = str(cfg)
                proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, cwd=REPO,
                                      env={**os.environ, "SEED_COPY": copy})  # fmt: skip
                if proc.returncode != 0:
                    raise ScenarioFailed(f"{row}: exit {proc.returncode}\n{proc.stderr[-3000:]}")

            self.measure(row, bed, run)
            check_end_state(bed, row)

    def roachctl(self, bed: Any) -> None:
        home = Path(tempfile.mkdtemp(prefix="home-", dir=self.work))
        topo = self.work / f"topo-{self.n}.yaml"
        write_topology(topo, self.n)

        def deploy(noop: bool) -> Callable[[Path], None]:
            def run(cfg: Path) -> None:
                argv = [str(ROACHCTL), "--home", str(home), "--ssh-config", str(cfg), "--yes", "--no-color",
                        "deploy", str(topo), "--tarball", str(self.tarball)]  # fmt: skip
                _, proc = timed(argv, "roachctl deploy")
                text = proc.stdout + proc.stderr
                if noop and not re.search(r"(?m)^\s*0 changes\s*$", text):
                    raise ScenarioFailed(f'roachctl no-op: "0 changes" not reported:\n{text}')

            return run

        self.measure("roachctl cold", bed, deploy(noop=False))
        check_end_state(bed, "roachctl cold")
        self.files["roachctl cold"] = big_files(bed)
        self.measure("roachctl no-op", bed, deploy(noop=True))

    def ansible(self, bed: Any, certs: Path, mirror_url: str) -> None:
        from ready_bench import ANSIBLE_DIR, ANSIBLE_PLAYBOOK, RECAP, check_ready

        inv = self.work / f"inventory-{bed.name}.ini"
        inv.write_text("[nodes]\n" + "".join(f"{h.name} node_ip={h.ip}\n" for h in bed.hosts))
        cache = Path(tempfile.mkdtemp(prefix="ansible-cache-", dir=self.work))
        extra = json.dumps({"mirror_url": mirror_url, "version": VERSION, "certs_dir": str(certs),
                            "cache_dir": str(cache)})  # fmt: skip
        for row in ("ansible cold", "ansible no-op"):

            def run(cfg: Path, row: str = row) -> None:
                cp = tempfile.mkdtemp(prefix="acp-", dir="/tmp")
                env = {**os.environ, "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
                       "ANSIBLE_SSH_ARGS": f"-F {cfg} -o ControlMaster=auto -o ControlPersist=60s",
                       "ANSIBLE_SSH_CONTROL_PATH_DIR": cp,
                       "ANSIBLE_LOCAL_TEMP": str(self.work / "ansible-tmp"),
                       "ANSIBLE_HOME": str(self.work / "ansible-home")}  # fmt: skip
                argv = [
                    str(ANSIBLE_PLAYBOOK),
                    "-i",
                    str(inv),
                    "-e",
                    extra,
                    str(ANSIBLE_DIR / "cockroach.yml"),
                ]
                try:
                    proc = subprocess.run(
                        argv, capture_output=True, text=True, timeout=900, cwd=REPO, env=env
                    )
                finally:
                    for sock in Path(cp).glob("*"):
                        subprocess.run(
                            ["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"], capture_output=True
                        )
                    shutil.rmtree(cp, ignore_errors=True)
                if proc.returncode != 0:
                    raise ScenarioFailed(f"{row}: exit {proc.returncode}\n{proc.stdout[-3000:]}")
                changed = {m[0]: int(m[2]) for m in RECAP.findall(proc.stdout) if m[0] != "localhost"}
                if row.endswith("no-op") and any(changed.values()):
                    raise ScenarioFailed(f"{row}: changed on a re-run: {changed}")

            self.measure(row, bed, run)
            check_ready(bed, row)


def on_fresh_bed(n: int, name: str, body: Callable[[Any], None]) -> None:
    from tests.support.bed import Bed

    with Bed.up(n, name=name) as bed:
        settle(bed)
        body(bed)


# ---------------------------------------------------------------------------------------------------------
# report

ORDER = ("seed, binary", "seed, tarball", "roachctl cold", "roachctl no-op", "ansible cold", "ansible no-op")


def report(bench: Bench) -> list[dict[str, Any]]:
    size = bench.size
    base = bench.rows.get(BASELINE)
    base_total = sum(v["up"] + v["down"] for v in base["per_host"].values()) if base else None
    out = []
    for row in ORDER:
        if row not in bench.rows:
            continue
        per_host = bench.rows[row]["per_host"]
        total = sum(v["up"] + v["down"] for v in per_host.values())
        worst = max(v["up"] + v["down"] for v in per_host.values())
        out.append(
            {
                "row": row,
                "hosts": bench.n,
                "seconds": bench.rows[row]["seconds"],
                "per_host": per_host,
                "max_per_host_bytes": worst,
                "total_bytes": total,
                "x_tarball_per_host": round(worst / size, 4),
                "x_seed_total": round(total / base_total, 4) if base_total else None,
            }
        )
    return out


def print_table(rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    print()
    print(f"bytes benchmark — {meta['date']} — {meta['hosts']} hosts — tarball {meta['tarball_bytes']:,} "
          f"bytes, binary {meta['binary_bytes']:,} bytes")  # fmt: skip
    print("bytes on the wire through the counting relay (ssh transport: kex, encryption, MACs; no TCP/IP)")
    head = ("row", "s", "up/host", "down/host", "conn/host", "total", "x tarball/host", "x seed total")
    lines = [head]
    for r in rows:
        ph = r["per_host"].values()
        lines.append((r["row"], f"{r['seconds']:.1f}", f"{max(v['up'] for v in ph):,}",
                      f"{max(v['down'] for v in ph):,}", str(max(v["connections"] for v in ph)),
                      f"{r['total_bytes']:,}", f"{r['x_tarball_per_host']:.4f}",
                      "-" if r["x_seed_total"] is None else f"{r['x_seed_total']:.3f}"))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for i, line in enumerate(lines):
        print(
            "  ".join(
                c.ljust(w) if j == 0 else c.rjust(w)
                for j, (c, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for row, files in meta.get("big_files", {}).items():
        for host, listing in files.items():
            print(f"files >= 1 MiB on {host} after {row}: {', '.join(listing) or 'none'}")
    print(f"context: code {meta['code']}; load before {meta['load_before']}, after {meta.get('load_after')}")
    by = {r["row"]: r for r in rows}
    if "roachctl cold" in by:
        r = by["roachctl cold"]
        ok = r["x_tarball_per_host"] <= PER_HOST_TARGET
        print(f"TARGET per host <= {PER_HOST_TARGET} x tarball: roachctl cold {r['x_tarball_per_host']:.4f} "
              f"{'MET' if ok else 'MISSED'}")  # fmt: skip
        if r["x_seed_total"] is not None:
            ok = r["x_seed_total"] <= TOTAL_TARGET
            print(f"TARGET total <= {TOTAL_TARGET} x seed (binary): roachctl cold {r['x_seed_total']:.3f} "
                  f"{'MET' if ok else 'MISSED'}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=3)
    ap.add_argument("--pad-mb", type=int, default=100, help="tarball of about N MiB (0: the 36 KB stand-in)")
    ap.add_argument("--tools", default="seed,roachctl", help=f"comma-separated, of {','.join(TOOLS)}")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--save", type=Path)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    tools = [t for t in args.tools.split(",") if t]
    if set(tools) - set(TOOLS) or args.hosts < 1:
        ap.error(f"--tools: of {TOOLS}; --hosts >= 1")
    if os.geteuid() != 0:
        log("the test bed needs root")
        return 2
    from ready_bench import make_certs
    from tests.support.mirror import Mirror

    work = Path(tempfile.mkdtemp(prefix="roachctl-bytes-bench-"))
    meta: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "hosts": args.hosts,
        "tools": tools,
        "code": code_under_test(),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    bench: Bench | None = None
    with scenarios(work, args.keep) as outcome:
        tarball = build_release(work / "release")
        if args.pad_mb > 0:
            tarball = pad_release(tarball, args.pad_mb)
        else:
            import hashlib

            digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
            Path(f"{tarball}.sha256sum").write_text(f"{digest}  {tarball.name}\n")
        import tarfile

        with tarfile.open(tarball) as tar:
            meta["binary_bytes"] = tar.getmember(f"{tarball.name[:-4]}/cockroach").size
        meta["tarball_bytes"] = tarball.stat().st_size
        bench = Bench(args.hosts, work, tarball)
        certs = make_certs(work, [f"h{i}" for i in range(1, args.hosts + 1)])
        with Mirror(tarball.parent) as mirror:
            for tool in tools:
                log(f"{tool}: {args.hosts} fresh hosts")
                body: Callable[[Any], None] = {
                    "seed": lambda bed: bench.seed(bed, certs),  # type: ignore[union-attr]
                    "roachctl": lambda bed: bench.roachctl(bed),  # type: ignore[union-attr]
                    "ansible": lambda bed: bench.ansible(bed, certs, mirror.url),  # type: ignore[union-attr]
                }[tool]
                outcome.attempt(partial(on_fresh_bed, args.hosts, f"bytes-{tool[:4]}", body))
    if outcome.bed_unavailable:
        return 2
    meta["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = report(bench) if bench else []
    meta["big_files"] = bench.files if bench else {}
    doc = {"meta": meta, "rows": rows, "failed": outcome.failed}
    return emit(doc, args, lambda: print_table(rows, meta))


if __name__ == "__main__":
    sys.exit(main())
