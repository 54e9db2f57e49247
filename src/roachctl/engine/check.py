"""`check`: preflight every host and change nothing; each failure says which host, what, how to fix.

Checks: reachable over ssh, root via sudo (for every command class deploy runs), systemd,
architecture, free SQL/HTTP ports, disk space for the data dir, the install/data/config dirs can
be created, the firewall backend can load rules (`nft -c` of the node's own rules; ufw/firewalld
running), `ssh -W` forwarding to the node's HTTP port (readiness probes use it), clock offset
between hosts (CockroachDB shuts a node down at 80% of --max-offset = 400 ms), and every node
reaching every other node's RPC port. `check` predicts `deploy`: whatever deploy needs is tried
here, without changing anything.

Every step is bounded and a failing or timed-out step on one host becomes a FAILED row for that
host, so the report is always complete.

A port held by the cluster's own running unit is fine (`check` on a deployed, running cluster
passes); any other listener fails the check with the process that holds the port.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass

from roachctl.engine import adopt as adopt_mod
from roachctl.errors import RoachctlError
from roachctl.exec.command import Command
from roachctl.exec.fanout import fanout
from roachctl.exec.openssh import OpenSSHExecutor
from roachctl.facts.gather import gather_facts
from roachctl.model.arch import ARCHES
from roachctl.model.facts import HostFacts
from roachctl.model.netaddr import host_port
from roachctl.model.topology import NodeConfig, Topology
from roachctl.operation.session import Session
from roachctl.plan import firewall as fw
from roachctl.plan.layout import SYSTEMD_DIR, layout_for

MAX_OFFSET_S = 0.5
CLOCK_LIMIT_S = 0.8 * MAX_OFFSET_S
MIN_DISK_BYTES = 2 * 1024**3

REACH_TIMEOUT_S = 3  # per peer
REACH_PARALLEL = 16  # peers probed at once from one host

# $1 = parallelism, $2 = seconds per probe, then host:port pairs. Prints "host:port ok|refused|blocked"
# per pair (refused = reachable, nothing listens yet). Peers are probed in parallel batches, so 100
# blocked peers cost 100 / parallelism probe timeouts, not 100.
REACH_SCRIPT = r"""
command -v bash >/dev/null 2>&1 || { echo "nobash"; exit 0; }
n=$1 t=$2
shift 2
probe() {
  h=${1%:*} p=${1##*:}
  h=${h#\[} h=${h%\]}
  out=$(timeout "$t" bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$h" "$p" 2>&1); rc=$?
  if [ $rc = 0 ]; then echo "$1 ok"
  elif [ $rc = 124 ]; then echo "$1 blocked"
  elif printf %s "$out" | grep -qi refused; then echo "$1 refused"
  else echo "$1 blocked"; fi
}
i=0
for hp in "$@"; do
  probe "$hp" &
  i=$((i + 1))
  if [ $((i % n)) = 0 ]; then wait; fi
done
wait
"""


# $1 = unit name, then ports. Prints "PORT ours PID", "PORT other PID NAME" or "PORT free" per port
# (ours = the listener runs in the unit's cgroup). Runs as root so `ss -p` sees every process.
_PORT_OWNER_SCRIPT = r"""
unit=$1
shift
for p in "$@"; do
  line=$(ss -Htlnp "sport = :$p" 2>/dev/null | head -n 1)
  if [ -z "$line" ]; then echo "$p free"; continue; fi
  pid=$(printf '%s\n' "$line" | sed -n 's/.*pid=\([0-9][0-9]*\).*/\1/p')
  name=$(printf '%s\n' "$line" | sed -n 's/.*users:(("\([^"]*\)".*/\1/p')
  if [ -n "$pid" ] && grep -q "/$unit\$" "/proc/$pid/cgroup" 2>/dev/null; then echo "$p ours $pid"
  else echo "$p other ${pid:-?} ${name:-?}"; fi
done
"""


# As root. $1 = firewall backend (or none), $2 = the nft rules deploy would load (nftables), then
# directories deploy creates. Prints "fw ok|fail|skip DETAIL" and per directory "dir INDEX ok|fail
# REASON". Nothing is changed: `nft -c` only checks the rules against the kernel (it needs the
# same netlink access as loading them), a directory is judged by its nearest existing ancestor, and
# `firewall-cmd` is not asked when the bus says firewalld is not running (it would D-Bus-activate an
# enabled one: contract §12).
_HOST_SCRIPT = (
    fw.FIREWALLD_OWNED_SH
    + r"""
backend=$1 rules=$2
shift 2
first() { tr '\n' ' ' | cut -c1-300; }
case $backend in
  nftables)
    if out=$(printf '%s\n' "$rules" | nft -c -f - 2>&1); then echo "fw ok nft accepts this node's rules"
    else echo "fw fail nft cannot load rules: $(printf %s "$out" | first)"; fi ;;
  ufw)
    if ! out=$(ufw status 2>&1); then echo "fw fail ufw status failed: $(printf %s "$out" | first)"
    elif printf %s "$out" | grep -q '^Status: active'; then echo "fw ok ufw active"
    else echo "fw fail ufw is installed but not active"; fi ;;
  firewalld)
    if ! firewalld_owned || [ "$(firewall-cmd --state 2>/dev/null)" != running ]; then
      echo "fw fail firewalld is not running"
    elif ! out=$(firewall-cmd --permanent --get-ipsets 2>&1); then
      echo "fw fail firewall-cmd failed: $(printf %s "$out" | first)"
    else echo "fw ok firewalld running"; fi ;;
  *) echo "fw skip not managed (firewall.manage: false)" ;;
esac
i=0
for d in "$@"; do
  i=$((i + 1))
  a=$d
  while [ ! -e "$a" ] && [ ! -L "$a" ]; do a=$(dirname -- "$a"); done
  if [ "$a" = "$d" ] && [ ! -d "$d" ]; then echo "dir $i fail exists and is not a directory"
  elif [ ! -d "$a" ]; then echo "dir $i fail a parent is not a directory"
  elif ! env test -w "$a"; then echo "dir $i fail not writable (read-only file system?)"
  else echo "dir $i ok"; fi
done
"""
)

# As the login user (not root). $@ = the commands deploy runs as root, one per argument. `sudo -l
# CMD` says whether sudo would run CMD without a password, and runs nothing.
_SUDO_SCRIPT = r"""
set -f
i=0
for c in "$@"; do
  i=$((i + 1))
  if sudo -n -l -- env LC_ALL=C $c >/dev/null 2>&1; then echo "sudo $i ok"; else echo "sudo $i fail"; fi
done
"""

# Every command class deploy/lifecycle run through `sudo -n -- env LC_ALL=C ...` (exec.command).
SUDO_CLASSES = (
    "sh -c true",
    "systemctl daemon-reload",
    "mv -f -T -- a b",
    "rm -f -- a",
    "mkdir -p -- a",
    "journalctl -u a",
)


@dataclass(frozen=True)
class PortOwner:
    """Who listens on a port: the cluster's own unit, or another process (pid, name)."""

    ours: bool
    pid: str = "?"
    name: str = "?"


@dataclass(frozen=True)
class Finding:
    host: str
    check: str
    ok: bool
    detail: str
    hint: str = ""


async def run_checks(session: Session, *, adopt: bool = False) -> list[Finding]:
    """Every check on every host; the list is the report (nothing on any host changes).

    Never raises for a host's failure: each becomes a FAILED finding for that host.
    `adopt`: non-empty data dirs of another owner are fine (as with `deploy --adopt`).
    """
    topology = session.topology
    findings: list[Finding] = []
    facts: dict[str, HostFacts] = {}
    owners: dict[str, dict[int, PortOwner]] = {}
    extra: dict[str, list[Finding]] = {}
    data_dir = topology.paths.data
    owner = session.home.load_state().owner_id if session.home.exists() else ""

    async def observe(host: str) -> None:
        executor = session.ssh.executor(host)
        node = topology.node_config(host)
        try:
            if isinstance(executor, OpenSSHExecutor):
                await executor.connect()  # the clock sample must not include connection setup
            watched = adopt_mod.watched(topology, host)
            facts[host] = await gather_facts(
                executor, host=host, disk_dirs=[data_dir, *node.stores], **watched
            )
        except RoachctlError as exc:
            findings.append(Finding(host, "ssh+sudo", False, exc.message.splitlines()[0], exc.hint or ""))
            return
        extra[host] = await _capability_findings(session, node, facts[host])
        try:
            owners[host] = await _port_owners(session, host, facts[host])
        except RoachctlError as exc:
            extra[host].append(Finding(host, "ports", False, f"could not ask who listens: {exc.message}"))

    await fanout(session.hosts, observe, continue_on_error=True, interrupts=session.interrupts)
    for node in topology.node_configs():
        f = facts.get(node.host)
        if f is None:
            continue
        findings += _host_findings(f, node.sql_port, node.http_port, data_dir, owners.get(node.host, {}))
        foreign = adopt_mod.foreign_objects(topology, node.host, f, adopt=adopt, owner=owner)
        findings.append(_foreign_finding(foreign, f))
        findings += store_findings(f, node.stores, data_dir)
        findings += extra.get(node.host, [])
    findings += clock_findings(facts)
    findings += await _reach_findings(session, facts)
    return findings


async def _settle(host: str, what: str, step: Awaitable[list[Finding]]) -> list[Finding]:
    """Await `step`; a failure (transport, timeout) becomes one FAILED finding instead of an abort."""
    try:
        return await step
    except RoachctlError as exc:
        return [Finding(host, what, False, exc.message.splitlines()[0], exc.hint or "")]


async def _capability_findings(session: Session, node: NodeConfig, facts: HostFacts) -> list[Finding]:
    """Firewall backend, writable dirs, sudo per command class and `ssh -W`: what deploy needs
    (concurrently, over the host's one connection; a step that fails is its own FAILED row)."""
    host = node.host

    async def one(step: Awaitable[Finding]) -> list[Finding]:
        return [await step]

    parts = await asyncio.gather(
        _settle(host, "firewall+dirs", _host_probe(session, node, facts)),
        _settle(host, "sudo", one(_sudo_finding(session, host))),
        _settle(host, "ssh -W", one(_forward_finding(session, node))),
    )
    return [finding for part in parts for finding in part]


def firewall_probe_rules(topology: Topology, node: NodeConfig) -> str:
    """The nft rules deploy would load on `node` (nodes advertised by name get a placeholder IP:
    the check is whether the kernel takes such rules, not their exact addresses)."""
    peers = {h: ["192.0.2.1"] for h in fw.unresolved_names(topology)}
    allowed = fw.allowed_sources(topology, node, fw.node_networks(topology, peers))
    return fw.render_nft(topology.name, allowed)


def creatable_dirs(topology: Topology, node: NodeConfig) -> list[str]:
    """Directories deploy creates or writes into on `node` (their nearest existing ancestor must
    be a writable directory)."""
    layout = layout_for(topology, node, "amd64")
    dirs = [topology.paths.install_root, layout.certs_dir, topology.paths.data, *layout.stores]
    dirs += [layout.log_dir, SYSTEMD_DIR]
    if topology.firewall.manage:
        dirs.append(layout.firewall_dir)
    return list(dict.fromkeys(dirs))


async def _host_probe(session: Session, node: NodeConfig, facts: HostFacts) -> list[Finding]:
    topology, host = session.topology, node.host
    out: list[Finding] = []
    try:
        backend = fw.choose_backend(topology, facts.firewall_active, facts.firewall_backends)
    except RoachctlError as exc:
        out.append(Finding(host, "firewall", False, exc.message, exc.hint or ""))
        backend = "none"
    out += firewalld_offline_findings(host, backend, facts)
    rules = firewall_probe_rules(topology, node) if backend == "nftables" else ""
    dirs = creatable_dirs(topology, node)
    cmd = Command.shell(_HOST_SCRIPT, backend, rules, *dirs, sudo=True, name="roachctl-check")
    result = await session.ssh.executor(host).run(cmd, timeout=60, check=False)
    return out + parse_host_probe(host, backend, dirs, result.out, result.err)


def firewalld_offline_findings(host: str, backend: str, facts: HostFacts) -> list[Finding]:
    """firewalld enabled but not running: deploy writes its permanent configuration offline, or
    refuses when it cannot (plan/firewall.py `firewalld_offline`)."""
    try:
        if not fw.firewalld_offline(backend, facts):
            return []
    except RoachctlError as exc:
        return [Finding(host, "firewalld", False, exc.message, exc.hint or "")]
    detail = (
        f"firewalld is {facts.firewalld_unit} but not running: deploy also writes the cluster's rules "
        "into its permanent configuration (firewall-offline-cmd), so they hold when it starts"
    )
    return [Finding(host, "firewalld", True, detail, "")]


def parse_host_probe(host: str, backend: str, dirs: list[str], out: str, err: str = "") -> list[Finding]:
    """Findings from `_HOST_SCRIPT` output; a missing answer is a failure, never a pass."""
    findings: list[Finding] = []
    dir_results: dict[int, str] = {}
    fw_line = ""
    for line in out.splitlines():
        words = line.split(" ", 2)
        if words[0] == "fw" and len(words) >= 2:
            fw_line = line
        elif words[0] == "dir" and len(words) >= 3 and words[1].isdigit():
            dir_results[int(words[1])] = words[2]
    if backend != "none":
        _, status, detail = [*fw_line.split(" ", 2), "", ""][:3]
        if not fw_line:
            status, detail = "fail", f"no answer from the firewall probe: {err.strip()[:200]}"
        hint = _FIREWALL_HINTS.get(backend, "") if status != "ok" else ""
        findings.append(Finding(host, "firewall", status == "ok", f"{backend}: {detail}", hint))
    bad = []
    for i, d in enumerate(dirs, start=1):
        answer = dir_results.get(i, "fail no answer")
        if answer != "ok":
            bad.append(f"{d}: {answer.removeprefix('fail ')}")
    detail = "; ".join(bad) if bad else f"{len(dirs)} install, data and config dirs can be created"
    hint = "point paths.* at writable locations, or fix the mounts" if bad else ""
    findings.append(Finding(host, "dirs", not bad, detail, hint))
    return findings


_FIREWALL_HINTS = {
    "nftables": "the host (or container) must allow nft to load rules (CAP_NET_ADMIN), "
    "or set firewall: manage: false and manage the firewall yourself",
    "ufw": "enable ufw ('ufw enable'), choose another firewall.backend, or set firewall: manage: false",
    "firewalld": "start firewalld, choose another firewall.backend, or set firewall: manage: false",
}


async def _sudo_finding(session: Session, host: str) -> Finding:
    executor = session.ssh.executor(host)
    if isinstance(executor, OpenSSHExecutor) and executor.is_root:
        return Finding(host, "sudo", True, "logged in as root (no sudo needed)")
    result = await executor.run(Command.shell(_SUDO_SCRIPT, *SUDO_CLASSES), timeout=30, check=False)
    return parse_sudo(host, result.out)


def parse_sudo(host: str, out: str) -> Finding:
    """One finding for `_SUDO_SCRIPT` output: every command class must be allowed."""
    allowed = {int(w[1]) for line in out.splitlines() if len(w := line.split()) == 3 and w[2] == "ok"
               and w[1].isdigit()}  # fmt: skip
    denied = [c.split()[0] for i, c in enumerate(SUDO_CLASSES, start=1) if i not in allowed]
    if denied:
        return Finding(host, "sudo", False, f"sudo -n refuses: {', '.join(denied)}",
                       "allow the ssh user to run these as root without a password (NOPASSWD)")  # fmt: skip
    return Finding(host, "sudo", True, f"sudo -n allows every command class ({len(SUDO_CLASSES)})")


FORWARD_SETTLE_S = 3.0


async def _forward_finding(session: Session, node: NodeConfig) -> Finding:
    """`ssh -W` to the node's HTTP port: readiness and the stop guards need it (docs/findings.md S-M2)."""
    executor = session.ssh.executor(node.host)
    target = f"{node.advertise}:{node.http_port}"
    if not isinstance(executor, OpenSSHExecutor):
        return Finding(node.host, "ssh -W", True, "skipped (not an ssh host)")
    await executor.connect()
    proc = await asyncio.create_subprocess_exec(
        *unmultiplexed(executor.pipe_argv(target)),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        await asyncio.wait_for(proc.wait(), FORWARD_SETTLE_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return Finding(node.host, "ssh -W", True, f"forwarding to {target} works (port open)")
    err = (await proc.stderr.read()).decode(errors="replace") if proc.stderr else ""
    return forward_finding(node.host, target, proc.returncode or 0, err)


def unmultiplexed(argv: list[str]) -> list[str]:
    """`argv` on its own connection instead of the host's master.

    Through a master, every refused `-W` reads "Session open refused by peer", whether sshd
    forbids forwarding or nothing listens yet; on its own connection ssh prints the server's
    reason ("administratively prohibited" vs "connect failed"), which is what check must tell apart.
    """
    out: list[str] = []
    skip = False
    for i, word in enumerate(argv):
        if skip:
            skip = False
            continue
        if word == "-o" and i + 1 < len(argv) and argv[i + 1].split("=", 1)[0] in _MUX_OPTIONS:
            skip = True
            continue
        out.append(word)
    # ssh logs the server's reason ("channel 0: open failed: ...") at INFO
    return [out[0], "-o", "ControlPath=none", "-o", "ControlMaster=no", "-o", "LogLevel=INFO", *out[1:]]


_MUX_OPTIONS = ("ControlMaster", "ControlPath", "ControlPersist")


def forward_finding(host: str, target: str, returncode: int, stderr: str) -> Finding:
    """Judge an `ssh -W` that ended: refused by the node = forwarding works (nothing listens yet)."""
    text = " ".join(stderr.split())
    if "administratively prohibited" in text:
        return Finding(host, "ssh -W", False, f"sshd refuses forwarding to {target}",
                       "set AllowTcpForwarding yes (or local) for the ssh user in sshd_config: "
                       "readiness and stop safety probe the node through ssh -W")  # fmt: skip
    if "connect failed" in text or "Connection refused" in text:
        return Finding(host, "ssh -W", True, f"forwarding to {target} works (nothing listens yet)")
    if returncode == 0:
        return Finding(host, "ssh -W", True, f"forwarding to {target} works")
    return Finding(host, "ssh -W", False, f"ssh -W {target} failed: {text[:200] or f'exit {returncode}'}",
                   "check that the advertise address is an address of this host")  # fmt: skip


def _unit_name(session: Session, host: str) -> str:
    topology = session.topology
    return layout_for(topology, topology.node_config(host), "amd64").unit_name


async def _port_owners(session: Session, host: str, facts: HostFacts) -> dict[int, PortOwner]:
    """Who holds the node's busy SQL/HTTP ports (only asked when one is busy: no extra round trip)."""
    node = session.topology.node_config(host)
    busy = [p for p in (node.sql_port, node.http_port) if p in facts.listening_ports]
    if not busy:
        return {}
    cmd = Command.shell(_PORT_OWNER_SCRIPT, _unit_name(session, host), *map(str, busy), sudo=True)
    result = await session.ssh.executor(host).run(cmd, timeout=30, check=False)
    return parse_port_owners(result.out)


def parse_port_owners(text: str) -> dict[int, PortOwner]:
    """Parse `_PORT_OWNER_SCRIPT` output (unknown lines are ignored: the port stays "busy")."""
    owners: dict[int, PortOwner] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) < 2 or not words[0].isdigit() or words[1] == "free":
            continue
        pid = words[2] if len(words) > 2 else "?"
        name = words[3] if len(words) > 3 else "?"
        owners[int(words[0])] = PortOwner(ours=words[1] == "ours", pid=pid, name=name)
    return owners


def _host_findings(
    f: HostFacts, sql_port: int, http_port: int, data_dir: str, owners: Mapping[int, PortOwner]
) -> list[Finding]:
    out = [Finding(f.host, "ssh+sudo", True, "reachable, root via sudo")]
    out.append(
        Finding(
            f.host,
            "systemd",
            f.has_systemd,
            "running" if f.has_systemd else "not running",
            "" if f.has_systemd else "use a host booted with systemd",
        )
    )
    arch_ok = f.arch in ARCHES
    out.append(
        Finding(
            f.host,
            "arch",
            arch_ok,
            f"{f.os_id} {f.os_version} {f.arch}",
            "" if arch_ok else "CockroachDB ships linux-amd64 and linux-arm64 only",
        )
    )
    out.append(ports_finding(f, (sql_port, http_port), owners))
    free = f.disk_free_bytes.get(data_dir, 0)
    disk_ok = free >= MIN_DISK_BYTES
    out.append(
        Finding(
            f.host,
            "disk",
            disk_ok,
            f"{free / 1024**3:.1f} GiB free for {data_dir}",
            "" if disk_ok else "free space or point paths.data at a bigger disk",
        )
    )
    return out


def _foreign_finding(found: list[adopt_mod.Foreign], f: HostFacts) -> Finding:
    """One row: nothing deploy would take over belongs to someone else (engine/adopt.py)."""
    if not found:
        return Finding(
            f.host, "ownership", True, "service user, unit files and data dirs are free or roachctl's"
        )
    hint = "; ".join(dict.fromkeys(x.hint for x in found))
    return Finding(f.host, "ownership", False, "; ".join(x.detail for x in found), hint)


def store_findings(f: HostFacts, stores: Sequence[str], data_dir: str) -> list[Finding]:
    """Free space of every store outside the data dir (a store on its own disk: docs/findings.md S-L13)."""
    out = []
    for store in stores:
        if store == data_dir or store.startswith(data_dir.rstrip("/") + "/"):
            continue
        free = f.disk_free_bytes.get(store, 0)
        ok = free >= MIN_DISK_BYTES
        hint = "" if ok else "free space or point the store at a bigger disk"
        out.append(Finding(f.host, "disk", ok, f"{free / 1024**3:.1f} GiB free for {store}", hint))
    return out


def ports_finding(f: HostFacts, ports: tuple[int, ...], owners: Mapping[int, PortOwner]) -> Finding:
    """Free, held by this cluster's own node (fine), or held by something else (named)."""
    busy = [p for p in ports if p in f.listening_ports]
    foreign = [p for p in busy if not (p in owners and owners[p].ours)]
    listed = ", ".join(map(str, ports))
    if foreign:
        who = "; ".join(_holder(p, owners.get(p)) for p in foreign)
        hint = "stop what listens there, or pick other ports in the topology"
        return Finding(f.host, "ports", False, f"port {who}", hint)
    detail = f"{listed} in use by this cluster's node" if busy else f"{listed} free"
    return Finding(f.host, "ports", True, detail)


def _holder(port: int, owner: PortOwner | None) -> str:
    if owner is None:
        return f"{port} is in use"
    return f"{port} is in use by {owner.name} (pid {owner.pid})"


def clock_findings(facts: dict[str, HostFacts]) -> list[Finding]:
    """Clock offset between hosts, as measured from here: each host's skew is exact only to within
    half its round trip, so a slow ssh round trip (a loaded controller) is not taken for a clock
    problem. Fails when the offset is surely over the limit; says so when it cannot tell."""
    measured = {h: (f.clock_skew, f.clock_uncertainty) for h, f in facts.items() if f.clock_unix}
    if len(measured) < 2:
        return []
    skews = [s for s, _ in measured.values()]
    spread = max(skews) - min(skews)
    # the smallest offset the measurements allow: each pair's difference less both uncertainties
    surely = max(abs(a - b) - ua - ub for (a, ua) in measured.values() for (b, ub) in measured.values())
    unsure = max(u for _, u in measured.values()) * 2
    ok = surely < CLOCK_LIMIT_S
    detail = f"offset between hosts ≈ {spread * 1000:.0f} ms (limit {CLOCK_LIMIT_S * 1000:.0f})"
    if unsure >= 0.05:
        detail += f", measured to within ±{unsure * 1000:.0f} ms (slow round trips)"
    hint = "" if ok else "run NTP/chrony on every host from the same source (contract §8)"
    return [Finding("*", "clocks", ok, detail, hint)]


async def _reach_findings(session: Session, facts: dict[str, HostFacts]) -> list[Finding]:
    peers = [host_port(n.advertise, n.sql_port) for n in session.topology.node_configs()]
    findings: list[Finding] = []
    batches = -(-len(peers) // REACH_PARALLEL)
    timeout = 30 + batches * (REACH_TIMEOUT_S + 2)

    async def probe(host: str) -> None:
        cmd = Command.shell(REACH_SCRIPT, str(REACH_PARALLEL), str(REACH_TIMEOUT_S), *peers)
        try:
            result = await session.ssh.executor(host).run(cmd, timeout=timeout, check=False)
        except RoachctlError as exc:
            findings.append(Finding(host, "rpc reach", False, exc.message.splitlines()[0], exc.hint or ""))
            return
        findings.append(parse_reach(host, peers, result.out))

    await fanout(list(facts), probe, continue_on_error=True, interrupts=session.interrupts)
    order = {h: i for i, h in enumerate(session.hosts)}
    return sorted(findings, key=lambda f: order.get(f.host, len(order)))


def parse_reach(host: str, peers: list[str], out: str) -> Finding:
    """One finding for `REACH_SCRIPT` output; a peer without an answer counts as blocked."""
    if out.strip() == "nobash":
        return Finding(host, "rpc reach", True, "skipped (no bash on host)")
    answered = {w[0]: w[1] for line in out.splitlines() if len(w := line.split()) == 2}
    blocked = [p for p in peers if answered.get(p, "blocked") == "blocked"]
    detail = f"cannot reach {', '.join(blocked)}" if blocked else f"reaches all {len(peers)} nodes"
    hint = "open the RPC port between the nodes (and check routes)" if blocked else ""
    return Finding(host, "rpc reach", not blocked, detail, hint)
