#!/usr/bin/env python3
"""Where a roachctl deploy spends its time: a timeline of phases and of every ssh process, per host.

    sudo .venv/bin/python bench/deploy_phases.py --hosts 9 [--json FILE]

Boots a fresh bed of N hosts, then runs `roachctl deploy` twice (cold, then the no-op re-deploy) IN THIS
PROCESS, with timing wrappers around the deploy engine's stages and around every ssh client it spawns.
Nothing in src/ is changed; the wrappers only observe. A diagnostic, not a benchmark: the numbers carry
the wrappers' (small) overhead, and `deploy_bench.py` is where the speed claims live.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

T0 = time.perf_counter()
EVENTS: list[dict[str, Any]] = []


def now() -> float:
    return time.perf_counter() - T0


def record(kind: str, name: str, start: float, end: float, host: str = "") -> None:
    EVENTS.append({"kind": kind, "name": name, "host": host, "start": round(start, 4), "end": round(end, 4)})


def wrap_async(module: Any, attr: str, kind: str, host_arg: int | None = None) -> None:
    orig = getattr(module, attr)

    @functools.wraps(orig)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = now()
        try:
            return await orig(*args, **kwargs)
        finally:
            host = ""
            if host_arg is not None and len(args) > host_arg:
                host = str(args[host_arg])
            host = kwargs.get("host", host) or host
            record(kind, attr, start, now(), str(host))

    setattr(module, attr, wrapper)


def wrap_sync(module: Any, attr: str, kind: str, host_arg: int | None = None) -> None:
    orig = getattr(module, attr)

    @functools.wraps(orig)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = now()
        try:
            return orig(*args, **kwargs)
        finally:
            host = str(args[host_arg]) if host_arg is not None and len(args) > host_arg else ""
            record(kind, attr, start, now(), host)

    setattr(module, attr, wrapper)


def describe_ssh(argv: list[str]) -> tuple[str, str]:
    """(host, short label) of an ssh argv built by roachctl.exec.openssh."""
    if "-O" in argv:
        i = argv.index("-O")
        return argv[-1], f"ssh -O {argv[i + 1]}"
    if "--" in argv:
        i = argv.index("--")
        host = argv[i + 1]
        rest = argv[i + 2 :]
        if not rest:
            return host, "ssh (no command)"
        cmd = rest[0].split("; __rc=$?")[0]
        words = cmd.split()
        label = " ".join(words[:3])
        if "sh -c" in cmd or len(cmd) > 60:
            label = cmd[:60].replace("\n", " ")
        return host, label
    return "", shlex.join(argv[:3])


def install() -> None:
    start_import = now()
    import roachctl.cli.app  # noqa: F401  (import cost is what the CLI pays before anything else)
    import roachctl.engine.deploy as deploy
    import roachctl.exec.openssh as openssh

    record("phase", "import roachctl.cli.app", start_import, now())

    orig_run = openssh.run_process

    async def run_process(argv: list[str], *args: Any, **kwargs: Any) -> Any:
        start = now()
        try:
            return await orig_run(argv, *args, **kwargs)
        finally:
            host, label = describe_ssh(list(argv))
            record("ssh", label, start, now(), host)

    openssh.run_process = run_process
    wrap_async(deploy, "make_plan", "phase")
    wrap_async(deploy, "apply", "phase")
    wrap_async(deploy, "_probe", "host-step", host_arg=1)
    wrap_async(deploy, "gather_facts", "host-step")
    wrap_async(deploy, "apply_plan", "host-step")
    wrap_sync(deploy, "obtain_releases", "phase")
    wrap_sync(deploy, "node_certs", "phase", host_arg=2)
    wrap_sync(deploy, "record", "phase")
    wrap_async(openssh.OpenSSH, "close", "phase")


def what_if(ca_cache: bool, connect_cap: int | None) -> None:
    """Counterfactuals for the findings, applied in THIS process only (src/ is not edited).

    ca_cache: ClusterHome.ca() loads (and RSA-validates) the CA private key on every call; memoize it.
    connect_cap: SSHOptions.max_new_connections (default 8) for the session's transport.
    """
    if ca_cache:
        import roachctl.operation.home as home_mod

        orig_ca = home_mod.ClusterHome.ca
        cache: dict[int, Any] = {}

        def ca(self: Any) -> Any:
            if id(self) not in cache:
                cache[id(self)] = orig_ca(self)
            return cache[id(self)]

        home_mod.ClusterHome.ca = ca  # type: ignore[method-assign]
    if connect_cap is not None:
        import dataclasses

        import roachctl.operation.session as session_mod

        orig_opts = session_mod.ssh_options

        def ssh_options(*args: Any, **kwargs: Any) -> Any:
            return dataclasses.replace(orig_opts(*args, **kwargs), max_new_connections=connect_cap)

        session_mod.ssh_options = ssh_options


def run_cli(args: list[str]) -> int:
    from roachctl.cli.app import main

    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def summarize(events: list[dict[str, Any]], t_start: float, t_end: float) -> str:
    lines = [f"  total {t_end - t_start:.3f} s"]
    phases = [e for e in events if e["kind"] == "phase"]
    for e in phases:
        if e["name"] == "node_certs":
            continue
        lines.append(
            f"  {e['start'] - t_start:7.3f} → {e['end'] - t_start:7.3f}"
            f"  {e['end'] - e['start']:6.3f} s  {e['name']}"
        )
    certs = [e for e in phases if e["name"] == "node_certs"]
    if certs:
        total = sum(e["end"] - e["start"] for e in certs)
        span = max(e["end"] for e in certs) - min(e["start"] for e in certs)
        lines.append(
            f"  node_certs: {len(certs)} calls, sum {total:.3f} s, wall span {span:.3f} s"
            " (serial if sum ≈ span)"
        )
    steps: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        if e["kind"] == "host-step":
            steps.setdefault(e["name"], []).append(e)
    for name, es in steps.items():
        durs = sorted(e["end"] - e["start"] for e in es)
        first = min(e["start"] for e in es) - t_start
        last = max(e["end"] for e in es) - t_start
        lines.append(
            f"  {name}: {len(es)} calls, each {durs[0]:.3f}–{durs[-1]:.3f} s, span {first:.3f} → {last:.3f}"
        )
    ssh = [e for e in events if e["kind"] == "ssh"]
    by_label: dict[str, list[float]] = {}
    for e in ssh:
        by_label.setdefault(e["name"], []).append(e["end"] - e["start"])
    hosts = {e["host"] for e in ssh if e["host"]}
    lines.append(f"  ssh processes: {len(ssh)} ({len(ssh) / max(1, len(hosts)):.1f} per host)")
    for label, durs in sorted(by_label.items(), key=lambda kv: -sum(kv[1])):
        durs.sort()
        lines.append(
            f"    {len(durs):3d} × {label!r}: {durs[0]:.3f}–{durs[-1]:.3f} s"
            f" (median {durs[len(durs) // 2]:.3f})"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=9)
    ap.add_argument("--pad-mb", type=int, default=0, help="pad the stand-in release (see deploy_bench.py)")
    ap.add_argument("--what-if-ca-cache", action="store_true", help="memoize ClusterHome.ca() (this process)")
    ap.add_argument("--what-if-connect-cap", type=int, help="SSHOptions.max_new_connections (default 8)")
    ap.add_argument("--noop-repeat", type=int, default=1, help="no-op re-deploys to run (default 1)")
    ap.add_argument("--json", type=Path, help="write every event to this file")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (the test bed)", file=sys.stderr)
        return 2
    from deploy_bench import precompile

    precompile()  # before install(): its import of the CLI is timed
    install()
    what_if(args.what_if_ca_cache, args.what_if_connect_cap)
    from deploy_bench import build_release, pad_release, write_topology

    work = Path(tempfile.mkdtemp(prefix="roachctl-phases-"))
    tarball = build_release(work / "release")
    if args.pad_mb > 0:
        tarball = pad_release(tarball, args.pad_mb)
    topo = work / "topo.yaml"
    write_topology(topo, args.hosts)
    report: dict[str, Any] = {}
    try:
        report = run_deploys(args, work, tarball, topo)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_report(args, report)
    return 0


def run_deploys(args: argparse.Namespace, work: Path, tarball: Path, topo: Path) -> dict[str, Any]:
    from deploy_bench import settle
    from tests.support.bed import Bed

    report: dict[str, Any] = {}
    with Bed.up(args.hosts, name="bench-phases") as bed:
        settle(bed)
        cli = ["--home", str(work / "home"), "--ssh-config", str(bed.ssh_config), "--yes", "--no-color"]
        cli += ["deploy", str(topo), "--tarball", str(tarball)]
        labels = ["cold"] + [f"no-op#{i + 1}" for i in range(args.noop_repeat)]
        for label in labels:
            first = len(EVENTS)
            t_start = now()
            rc = run_cli(cli)
            t_end = now()
            events = EVENTS[first:]
            report[label] = {"rc": rc, "start": t_start, "end": t_end, "events": events}
            print(f"\n== {label} deploy, {args.hosts} hosts (rc {rc})", file=sys.stderr)
            print(summarize(events, t_start, t_end), file=sys.stderr)
            asyncio.set_event_loop(asyncio.new_event_loop())
    return report


def write_report(args: argparse.Namespace, report: dict[str, Any]) -> None:
    totals = {label: round(r["end"] - r["start"], 3) for label, r in report.items()}
    noops = sorted(v for k, v in totals.items() if k.startswith("no-op"))
    print(f"\ntotals (in-process, no CLI start-up): {totals}", file=sys.stderr)
    if noops:
        print(f"no-op median: {noops[len(noops) // 2]:.3f} s over {len(noops)}", file=sys.stderr)
    imp = [e for e in EVENTS if e["name"] == "import roachctl.cli.app"]
    if imp:
        print(
            f"\nimport roachctl.cli.app: {imp[0]['end'] - imp[0]['start']:.3f} s"
            " (paid by every CLI invocation)",
            file=sys.stderr,
        )
    if args.json:
        args.json.write_text(json.dumps({"hosts": args.hosts, "import": imp, **report}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
