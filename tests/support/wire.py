"""Bytes on the wire per host: every ssh connection of a tool goes through bench/delayproxy.py as its
`ProxyCommand` in counting mode (0 ms delay), which appends one JSON line per connection.

    config, counts = counting_ssh_config(bed.ssh_config, work / "bytes.jsonl")
    ... run the tool with -F config / --ssh-config config ...
    per_host = read_counts(counts)      # {"h1": {"up": N, "down": M, "connections": K}, ...}

`up` is what the controller sent towards the host, `down` what came back: the ssh transport stream
(key exchange, encrypted packets, MACs, padding), without TCP/IP headers. The same relay serves every
tool alike (roachctl, the seed script, Ansible), so their figures compare.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

RELAY = Path(__file__).resolve().parents[2] / "bench" / "delayproxy.py"


def counting_ssh_config(
    ssh_config: Path, counts: Path, *, delay_ms: float = 0.0, out: Path | None = None
) -> Path:
    """A copy of `ssh_config` with the counting relay as every Host's ProxyCommand; returns its path."""
    proxy = f"    ProxyCommand {sys.executable} -I -S {RELAY} {delay_ms:g} %h %p {counts} %n\n"
    text = re.sub(r"(?m)^(Host .*\n)", lambda m: m.group(1) + proxy, ssh_config.read_text())
    path = out or counts.with_name(counts.stem + ".ssh_config")
    path.write_text(text)
    return path


def live_relays(counts: Path) -> int:
    """How many counting relays writing to `counts` are still running (their line is not written yet)."""
    needle = str(counts).encode()
    n = 0
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                n += needle in (proc / "cmdline").read_bytes()
            except OSError:
                continue
    return n


def read_counts(counts: Path, *, settle_s: float = 10.0) -> dict[str, dict[str, int]]:
    """Per host label: bytes up, bytes down and connections, summed over every relay of `counts`.

    A relay writes its line when ssh ends it, which for a ControlMaster can trail the tool's exit a
    little: wait up to `settle_s` until none is running any more."""
    deadline = time.monotonic() + settle_s
    while live_relays(counts) and time.monotonic() < deadline:
        time.sleep(0.1)
    per_host: dict[str, dict[str, int]] = {}
    for line in counts.read_text().splitlines() if counts.exists() else []:
        rec = json.loads(line)
        acc = per_host.setdefault(rec["label"], {"up": 0, "down": 0, "connections": 0})
        acc["up"] += rec["up"]
        acc["down"] += rec["down"]
        acc["connections"] += 1
    return per_host
