"""Firewall rules for a node's SQL and HTTP ports, rendered for nftables, ufw or firewalld.

Policy (the seed opened 26257/8080 to Anywhere): each port accepts loopback, every node of the
cluster and the configured client networks, and drops everything else. Nothing else is touched:
the chain's policy is `accept`, so ssh and other services keep working whatever the rules say.

Addresses: rules need IPs. A node whose advertise address is an IP is allowed by that IP. A node
advertised by *name* must be resolved by the caller (from facts: e.g. `getent ahosts NAME` on the
hosts) and passed in `peer_addresses`; an unresolved name is an error, never a silent gap. Extra
addresses per node (e.g. all of its interface IPs, for multi-homed hosts) may be passed the same way.

nftables: roachctl owns one table, `inet roachctl_<cluster>`. The file is idempotently reloadable
(`table X {}` + `delete table X` + the full table, applied atomically by `nft -f`), and a oneshot
unit loads it at boot before the database (and again whenever nftables.service reloads, which
flushes the ruleset). ufw and firewalld get a small POSIX sh script of their own commands that
converges both ways: rules of the cluster that are no longer wanted are removed before the wanted
ones are added (ufw: every rule carries a comment naming the cluster and the rule; firewalld: the
sources live in ipsets roachctl owns, one per port and family, with one rich rule each).

firewalld enabled but not running: it starts at the next boot (or at the first D-Bus call to it)
with its *permanent* configuration, whose zone would then reject the ports. So besides the rules
of the backend in use, deploy writes the same ipsets and rich rules into that permanent
configuration with `firewall-offline-cmd` (made for a firewalld that is not running; contract §12),
and the facts read them back the same way, so a second deploy has nothing to do.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import shlex
from collections.abc import Iterable, Mapping, Sequence

from roachctl.errors import RefusedError
from roachctl.model.facts import HostFacts
from roachctl.model.topology import NodeConfig, Topology
from roachctl.plan.layout import ROACHCTL_ETC, SYSTEMD_DIR, firewall_unit_name

NFT = "/usr/sbin/nft"
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
BACKENDS = ("nftables", "ufw", "firewalld")
OFFLINE = "firewalld-offline"  # firewalld's permanent configuration, written while it is not running
# firewalld.service unit-file states (`systemctl show -p UnitFileState`) in which it cannot start
# at boot nor by D-Bus activation; in any other (enabled, static, indirect, ...) it may.
FIREWALLD_NEVER_STARTS = ("", "disabled", "masked", "masked-runtime")


def table_name(cluster: str) -> str:
    """The nft table roachctl owns for `cluster` (nft identifiers: no '-')."""
    return "roachctl_" + cluster.replace("-", "_")


def nft_table(cluster: str) -> str:
    """`family name`, as fact gathering asks for it."""
    return f"inet {table_name(cluster)}"


def choose_backend(topology: Topology, active: str, available: Sequence[str]) -> str:
    """The backend to write rules for, or "none" when `firewall.manage` is false.

    `active` is the frontend that manages the host's ruleset (facts.firewall_active), `available`
    the installed tools (facts.firewall_backends). An active firewalld/ufw must be used: their own
    input policy would drop what a separate nft table accepts.

    Raises:
        RefusedError: the configured backend is missing, or no backend exists at all.
    """
    fw = topology.firewall
    if not fw.manage:
        return "none"
    if fw.backend != "auto":
        if fw.backend not in available and fw.backend != active:
            raise RefusedError(
                f"firewall.backend is {fw.backend} but it is not installed",
                hint=f"install {fw.backend}, choose another backend, or set firewall: manage: false",
            )
        return fw.backend
    if active in ("firewalld", "ufw"):
        return active
    if "nftables" in available:
        return "nftables"
    raise RefusedError(
        "no firewall tool found (nft, ufw or firewall-cmd)",
        hint="install nftables, or set firewall: manage: false to manage the firewall yourself",
    )


def firewalld_may_start(unit_file_state: str) -> bool:
    """Whether an installed firewalld that is not running may start with its permanent
    configuration: at the next boot, or when anything calls it over D-Bus (contract §12)."""
    return unit_file_state not in FIREWALLD_NEVER_STARTS


def host_firewall(topology: Topology, facts: HostFacts) -> tuple[str, bool]:
    """(backend, firewalld_offline) of one host: where its rules go (`choose_backend`) and whether
    firewalld's permanent configuration is written too (`firewalld_offline`); raises as they do."""
    backend = choose_backend(topology, facts.firewall_active, facts.firewall_backends)
    return backend, firewalld_offline(backend, facts)


def firewalld_offline(backend: str, facts: HostFacts) -> bool:
    """Whether deploy must also write firewalld's permanent configuration offline on this host:
    rules go to `backend` (nftables or ufw) while an installed firewalld is not running but may
    start, and would then reject the ports (see the module docstring).

    Raises:
        RefusedError: firewalld may start but `firewall-offline-cmd` is missing (nothing can write
            its permanent configuration without starting it).
    """
    if backend not in ("nftables", "ufw") or facts.firewall_active == "firewalld":
        return False
    if not firewalld_may_start(facts.firewalld_unit):
        return False
    if not facts.firewalld_offline_cmd:
        raise RefusedError(
            f"firewalld is {facts.firewalld_unit} but not running: when it starts (at the next boot) its "
            "permanent configuration would block the cluster's ports, and firewall-offline-cmd, which "
            "writes that configuration without starting it, is not installed",
            hint="start firewalld ('systemctl start firewalld') so that deploy writes its rules, "
            "or disable it ('systemctl disable firewalld'), then re-run deploy",
            where=facts.host,
        )
    return True


@functools.lru_cache(maxsize=1024)
def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """`address` as an IP, None for a name (memoized: asked per node, per host planned)."""
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None


def unresolved_names(topology: Topology) -> dict[str, str]:
    """host -> advertise name for every node advertised by a DNS name (the caller resolves these)."""
    return {n.host: n.advertise for n in topology.node_configs() if _ip(n.advertise) is None}


def node_networks(topology: Topology, peer_addresses: Mapping[str, Sequence[str]]) -> list[IPNetwork]:
    """Every node's addresses as single-address networks.

    Raises:
        RefusedError: a node is advertised by name and `peer_addresses` has no IP for it.
    """
    missing = [h for h in unresolved_names(topology) if not peer_addresses.get(h)]
    if missing:
        raise RefusedError(
            f"cannot write firewall rules: no IP address known for {', '.join(sorted(missing))}",
            hint="advertise nodes by IP address, make their names resolvable on the hosts, "
            "or set firewall: manage: false",
        )
    addresses: list[str] = []
    for node in topology.node_configs():
        if _ip(node.advertise) is not None:
            addresses.append(node.advertise)
        addresses += list(peer_addresses.get(node.host, ()))
    networks: list[IPNetwork] = []
    for address in addresses:
        try:
            networks.append(_network(address))
        except ValueError as exc:
            raise RefusedError(f"invalid resolved address {address!r}", hint="resolve names to IPs") from exc
    return networks


def allowed_sources(
    topology: Topology, node: NodeConfig, peers: Sequence[IPNetwork]
) -> dict[int, tuple[str, ...]]:
    """Port -> sorted, collapsed CIDRs allowed to reach it (loopback is accepted separately)."""
    fw = topology.firewall
    return {
        node.sql_port: _sources(tuple(peers), fw.sql_clients),
        node.http_port: _sources(tuple(peers), fw.http_clients),
    }


# Memoized by value (networks and strings are immutable): planning asks for the same peers per host
# and per firewall backend, which made a deploy's planning quadratic in the node count (issue 13).
@functools.lru_cache(maxsize=1024)
def _network(address: str) -> IPNetwork:
    return ipaddress.ip_network(address, strict=False)


@functools.lru_cache(maxsize=64)
def _sources(peers: tuple[IPNetwork, ...], clients: tuple[str, ...]) -> tuple[str, ...]:
    """`peers` and `clients` merged: sorted, collapsed CIDRs as text."""
    return tuple(_show(n) for n in _collapse([*peers, *(ipaddress.ip_network(c) for c in clients)]))


def _show(network: IPNetwork) -> str:
    """A network as text; a single address without its /32 or /128 (readable plans and rules)."""
    return str(network.network_address) if network.num_addresses == 1 else str(network)


def _collapse(networks: Iterable[IPNetwork]) -> list[IPNetwork]:
    """Merge overlapping networks (nft interval sets reject overlaps), v4 first, sorted."""
    v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in networks if isinstance(n, ipaddress.IPv6Network)]
    return [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]


def _split(cidrs: Iterable[str]) -> tuple[list[str], list[str]]:
    """IPv4 and IPv6 elements, in order."""
    return [c for c in cidrs if ":" not in c], [c for c in cidrs if ":" in c]


def _nft_set(name: str, kind: str, elements: list[str]) -> str:
    body = f"type {kind}; flags interval;"
    if elements:
        body += f" elements = {{ {', '.join(elements)} }};"
    return f"\tset {name} {{ {body} }}"


def render_nft(cluster: str, allowed: Mapping[int, Sequence[str]]) -> str:
    """The nft ruleset file for one node (see the module docstring)."""
    table = nft_table(cluster)
    sets: list[str] = []
    rules: list[str] = ['\t\tiif "lo" accept']
    for port in sorted(allowed):
        v4, v6 = _split(allowed[port])
        sets += [_nft_set(f"p{port}_v4", "ipv4_addr", v4), _nft_set(f"p{port}_v6", "ipv6_addr", v6)]
        rules += [
            f"\t\ttcp dport {port} ip saddr @p{port}_v4 accept",
            f"\t\ttcp dport {port} ip6 saddr @p{port}_v6 accept",
            f"\t\ttcp dport {port} drop",
        ]
    lines = [
        f"#!{NFT} -f",
        f"# Managed by roachctl (cluster {cluster}): who may reach this node's CockroachDB ports.",
        "# Only these ports are filtered; the policy is accept, so ssh and everything else is untouched.",
        f"table {table} {{}}",
        f"delete table {table}",
        f"table {table} {{",
        *sets,
        "\tchain input {",
        "\t\ttype filter hook input priority filter; policy accept;",
        *rules,
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def render_nft_unit(cluster: str, nft_file: str, database_unit: str) -> str:
    """The oneshot unit that loads the table at boot, before the network and the database."""
    lines = [
        f"# Managed by roachctl (cluster {cluster}).",
        "[Unit]",
        f"Description=roachctl firewall rules for CockroachDB cluster {cluster} ({nft_table(cluster)})",
        "Documentation=man:nft(8)",
        "DefaultDependencies=no",
        "Wants=network-pre.target",
        f"Before=network-pre.target shutdown.target {database_unit}",
        "# nftables.service flushes the whole ruleset when it (re)starts: load ours again after it.",
        "After=nftables.service",
        "PartOf=nftables.service",
        "Conflicts=shutdown.target",
        "",
        "[Service]",
        "Type=oneshot",
        "RemainAfterExit=yes",
        f"ExecStart={NFT} -f {nft_file}",
        f"ExecReload={NFT} -f {nft_file}",
        "",
        "[Install]",
        "WantedBy=sysinit.target",
    ]
    return "\n".join(lines) + "\n"


def ufw_tag(cluster: str) -> str:
    """The comment prefix of every ufw rule roachctl adds for `cluster` (the trailing space keeps
    cluster "prod" from matching "prod2")."""
    return f"roachctl {cluster} "


def _ufw_rules(cluster: str, allowed: Mapping[int, Sequence[str]]) -> list[tuple[str, list[str]]]:
    """(comment, ufw argv) per rule, in the order they are added.

    Each rule's comment names the cluster *and* the rule, so the script can tell a rule that is
    still wanted from one that left the topology by its comment alone (`ufw status numbered`
    prints it after `#`), without parsing ufw's display of addresses.
    """
    tag = ufw_tag(cluster)
    rules: list[tuple[str, list[str]]] = []
    for port in sorted(allowed):
        for cidr in allowed[port]:
            comment = f"{tag}{port}/tcp allow {cidr}"
            rules.append(
                (comment, ["ufw", "prepend", "allow", "proto", "tcp", "from", cidr, "to", "any", "port",
                           str(port), "comment", comment])
            )  # fmt: skip
        comment = f"{tag}{port}/tcp deny"
        deny = ["ufw", "deny", "proto", "tcp", "to", "any", "port", str(port), "comment", comment]
        rules.append((comment, deny))
    return rules


def ufw_comments(cluster: str, allowed: Mapping[int, Sequence[str]]) -> tuple[str, ...]:
    """The comments of the rules ufw must list once the script ran (what facts compare against)."""
    return tuple(sorted({comment for comment, _ in _ufw_rules(cluster, allowed)}))


# Deletes every rule tagged "$tag" whose comment is not a line of "$wanted", highest number first
# (numbers shift on delete); a comment that is just the tag, as older versions wrote, is stale too.
# ufw lists rules only while active, so an inactive ufw is refused: rules added then would not be
# enforced, and stale ones could not be found.
_UFW_PRUNE = r"""
if ! ufw status | grep -q '^Status: active'; then
  echo "ufw is not active, so its rules would not be enforced:" \
    "enable it ('ufw enable') or choose another firewall.backend" >&2
  exit 3
fi
ufw status numbered | tag=$tag wanted=$wanted awk '
  BEGIN { tag = ENVIRON["tag"]; n = split(ENVIRON["wanted"], w, "\n"); for (i = 1; i <= n; i++) keep[w[i]] }
  /^\[ *[0-9]+\]/ {
    line = $0; sub(/[ \t]+$/, "", line)
    at = index(line " ", " # " tag); if (at == 0) next
    comment = substr(line, at + 3)
    if (comment in keep) next
    num = $0; sub(/^\[ */, "", num); sub(/\].*/, "", num); print num
  }' | sort -rn | while read -r num; do ufw --force delete "$num" >/dev/null; done
"""


# Removes every firewalld rich rule that refers to one of our ipsets ("$prefix*") and is not a line
# of "$rules", every ipset of ours not named in "$sets" (lines "name family"), and the entries of
# our ipsets that are not lines "name entry" of "$entries"; then creates what is missing. Works on
# the permanent configuration; the caller reloads it into the runtime.
_FIREWALLD_CONVERGE = r"""
fc() { firewall-cmd --permanent "$@" >/dev/null; }
has() { printf '%s\n' "$1" | grep -qxF -- "$2"; }
firewall-cmd --permanent --list-rich-rules | while IFS= read -r r; do
  case $r in *"ipset=\"$prefix"*) has "$rules" "$r" || fc --remove-rich-rule="$r" ;; esac
done
for s in $(firewall-cmd --permanent --get-ipsets); do
  case $s in "$prefix"*) printf '%s\n' "$sets" | grep -q "^$s " || fc --delete-ipset="$s" ;; esac
done
printf '%s\n' "$sets" | while read -r s family; do
  [ -n "$s" ] || continue
  firewall-cmd --permanent --info-ipset="$s" >/dev/null 2>&1 ||
    fc --new-ipset="$s" --type=hash:net --option=family="$family"
  current=$(firewall-cmd --permanent --ipset="$s" --get-entries)
  for e in $current; do has "$entries" "$s $e" || fc --ipset="$s" --remove-entry="$e"; done
  printf '%s\n' "$entries" | while read -r set e; do
    if [ "$set" = "$s" ] && ! has "$current" "$e"; then fc --ipset="$s" --add-entry="$e"; fi
  done
done
current=$(firewall-cmd --permanent --list-rich-rules)
printf '%s\n' "$rules" | while IFS= read -r r; do
  if [ -n "$r" ] && ! has "$current" "$r"; then fc --add-rich-rule="$r"; fi
done
"""


def ipset_prefix(cluster: str) -> str:
    """The prefix of the firewalld ipsets roachctl owns for `cluster`.

    ipset names are short (31 characters), so the cluster is named by a hash of its name.
    """
    return f"rc{hashlib.sha256(cluster.encode()).hexdigest()[:10]}_"


def _firewalld_model(
    cluster: str, allowed: Mapping[int, Sequence[str]]
) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """(ipsets as (name, family), entries as "name entry", rich rules) for `allowed`.

    One ipset per port and address family, replaced as a whole by the script, and one rich rule
    per ipset that accepts its sources on the port: a source that leaves the topology leaves
    the ipset. Rich rules are written the way `--list-rich-rules` prints them, so the facts
    compare them as text.
    """
    prefix = ipset_prefix(cluster)
    sets: list[tuple[str, str]] = []
    entries: list[str] = []
    rules: list[str] = []
    for port in sorted(allowed):
        for cidrs, suffix, family, rule_family in zip(
            _split(allowed[port]), ("4", "6"), ("inet", "inet6"), ("ipv4", "ipv6"), strict=True
        ):
            if not cidrs:
                continue
            name = f"{prefix}{port}_{suffix}"
            sets.append((name, family))
            entries += [f"{name} {c}" for c in cidrs]
            rules.append(
                f'rule family="{rule_family}" source ipset="{name}" port port="{port}" protocol="tcp" accept'
            )
    return sets, entries, rules


def firewalld_loaded_keys(cluster: str, allowed: Mapping[int, Sequence[str]]) -> tuple[str, ...]:
    """What the runtime firewalld must show once the script ran: each rich rule of ours, and
    each ipset entry as "ipset NAME ENTRY" (the facts report the same lines)."""
    _, entries, rules = _firewalld_model(cluster, allowed)
    return tuple(sorted([*rules, *(f"ipset {e}" for e in entries)]))


# Removes what an earlier nftables deploy of this cluster left: its table (whose drop rules would
# still apply next to ufw/firewalld, so a new client would stay blocked), the boot unit that would
# load it again, and its rules file. $1..: table, unit, unit file, rules file.
_NFT_LEFTOVERS = r"""
drop_nft() {
  if command -v nft >/dev/null 2>&1; then nft delete table $1 2>/dev/null || true; fi
  if [ -e "$3" ]; then
    systemctl disable --now -- "$2" >/dev/null 2>&1 || true
    rm -f -- "$3" "$4"
    systemctl daemon-reload
  else
    rm -f -- "$4"
  fi
}
"""


def _nft_leftovers(cluster: str) -> list[str]:
    """Script lines that remove the nftables setup of `cluster` (see _NFT_LEFTOVERS)."""
    unit = firewall_unit_name(cluster)
    args = [nft_table(cluster), unit, f"{SYSTEMD_DIR}/{unit}", f"{ROACHCTL_ETC}/firewall-{cluster}.nft"]
    return [_NFT_LEFTOVERS.strip("\n"), shlex.join(["drop_nft", *args])]


def ufw_script(cluster: str, allowed: Mapping[int, Sequence[str]]) -> str:
    """The ufw rules script: delete our rules that are no longer wanted, then add the wanted ones
    (ufw skips a rule it already has)."""
    rules = _ufw_rules(cluster, allowed)
    wanted = "\n".join(comment for comment, _ in rules)
    return _script(cluster, "ufw", [
        f"tag={shlex.quote(ufw_tag(cluster))}",
        f"wanted={shlex.quote(wanted)}",
        _UFW_PRUNE.strip("\n"),
        *(shlex.join(argv) + " >/dev/null" for _, argv in rules),
        *_nft_leftovers(cluster),  # last: the ports are never without rules
    ])  # fmt: skip


def _firewalld_inputs(cluster: str, allowed: Mapping[int, Sequence[str]]) -> list[str]:
    """The converge script's inputs as shell assignments: ipset prefix, ipsets, entries, rich rules."""
    sets, entries, rules = _firewalld_model(cluster, allowed)
    return [
        f"prefix={shlex.quote(ipset_prefix(cluster))}",
        f"sets={shlex.quote(chr(10).join(f'{n} {f}' for n, f in sets))}",
        f"entries={shlex.quote(chr(10).join(entries))}",
        f"rules={shlex.quote(chr(10).join(rules))}",
    ]


def firewalld_script(cluster: str, allowed: Mapping[int, Sequence[str]]) -> str:
    """The firewalld rules script: converge our ipsets and rich rules, close the plain ports, reload."""
    lines = [*_firewalld_inputs(cluster, allowed), _FIREWALLD_CONVERGE.strip("\n")]
    lines += [shlex.join(["fc", f"--remove-port={port}/tcp"]) for port in sorted(allowed)]
    lines.append("firewall-cmd --reload >/dev/null")
    lines += _nft_leftovers(cluster)  # last: the ports are never without rules
    return _script(cluster, "firewalld", lines)


def _offline_converge() -> str:
    """The converge script written against `firewall-offline-cmd`, which takes the same options as
    `firewall-cmd --permanent` for ipsets, rich rules and ports (contract §12)."""
    return _FIREWALLD_CONVERGE.strip("\n").replace("firewall-cmd --permanent", "firewall-offline-cmd")


def firewalld_offline_script(cluster: str, allowed: Mapping[int, Sequence[str]]) -> str:
    """firewalld's permanent configuration, converged offline (firewalld not running): the same
    ipsets, rich rules and closed plain ports as `firewalld_script`, without a reload (nothing is
    loaded until firewalld starts) and without touching the nft table of the backend in use."""
    lines = [*_firewalld_inputs(cluster, allowed), _offline_converge()]
    lines += [shlex.join(["fc", f"--remove-port={port}/tcp"]) for port in sorted(allowed)]
    return _script(cluster, "firewalld (permanent configuration, offline)", lines)


def _script(cluster: str, backend: str, body: list[str]) -> str:
    """A POSIX sh script (run as root), safe to run again."""
    lines = [
        "#!/bin/sh",
        f"# Managed by roachctl (cluster {cluster}): {backend} rules for this node's CockroachDB ports.",
        "set -eu",
        *body,
    ]
    return "\n".join(lines) + "\n"


# True unless the system bus says nobody owns firewalld's D-Bus name (contract §12): only then is
# firewalld known not to run without asking `firewall-cmd --state`, which would D-Bus-activate an
# enabled firewalld. A firewalld that is not running has its permanent configuration edited offline.
FIREWALLD_OWNED_SH = r"""
firewalld_owned() {
  [ "$(busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
      NameHasOwner s org.fedoraproject.FirewallD1 2>/dev/null)" != "b false" ]
}
"""


def removal_script(cluster: str) -> str:
    """Removes every ufw and firewalld rule roachctl added for `cluster` (destroy).

    The same scripts as deploy, with nothing wanted; a backend that is not installed or not
    running is skipped (nothing of ours can be loaded there), except firewalld's permanent
    configuration, edited offline while firewalld is not running (deploy may have written it
    there). The nft table is dropped by name.
    """
    ufw = ufw_script(cluster, {}).split("set -eu\n", 1)[1]
    firewalld = firewalld_script(cluster, {}).split("set -eu\n", 1)[1]
    offline = firewalld_offline_script(cluster, {}).split("set -eu\n", 1)[1]
    return "\n".join([
        "#!/bin/sh",
        f"# roachctl destroy (cluster {cluster}): remove its firewall rules.",
        "set -eu",
        "if command -v nft >/dev/null 2>&1; then",
        f"  nft delete table {nft_table(cluster)} 2>/dev/null || true",
        "fi",
        "if command -v ufw >/dev/null 2>&1 && ufw status | grep -q '^Status: active'; then",
        ufw,
        "fi",
        FIREWALLD_OWNED_SH.strip("\n"),
        "fwd_state=",
        "if command -v firewall-cmd >/dev/null 2>&1 && firewalld_owned; then",
        "  fwd_state=$(firewall-cmd --state 2>/dev/null || true)",
        "fi",
        "if [ \"$fwd_state\" = running ]; then",
        firewalld,
        "elif command -v firewall-offline-cmd >/dev/null 2>&1; then",
        offline,
        "fi",
    ]) + "\n"  # fmt: skip


def render_rules(backend: str, cluster: str, allowed: Mapping[int, Sequence[str]]) -> tuple[str, str]:
    """(file extension, text) of the rules file for `backend`."""
    if backend == "nftables":
        return "nft", render_nft(cluster, allowed)
    if backend == "ufw":
        return "sh", ufw_script(cluster, allowed)
    if backend == "firewalld":
        return "sh", firewalld_script(cluster, allowed)
    if backend == OFFLINE:
        return f"{OFFLINE}.sh", firewalld_offline_script(cluster, allowed)
    raise ValueError(f"unknown firewall backend {backend!r}")


def loaded_keys(backend: str, cluster: str, allowed: Mapping[int, Sequence[str]]) -> tuple[str, ...]:
    """What the facts must list as loaded for ufw/firewalld (nftables: the table, by name)."""
    if backend == "ufw":
        return ufw_comments(cluster, allowed)
    if backend in ("firewalld", OFFLINE):
        return firewalld_loaded_keys(cluster, allowed)
    return ()


def rules_fact(backend: str, cluster: str) -> str:
    """The fact item that lists the loaded ufw/firewalld rules of `cluster` ("" for nftables):
    the backend and what marks our rules (ufw: the comment tag; firewalld: the ipset prefix)."""
    if backend == "ufw":
        return f"ufw {ufw_tag(cluster)}"
    if backend in ("firewalld", OFFLINE):
        return f"{backend} {ipset_prefix(cluster)}"
    return ""


def apply_argv(backend: str, path: str) -> tuple[str, ...]:
    """The command that (re)loads the rules file `path` (run as root)."""
    return (NFT, "-f", path) if backend == "nftables" else ("/bin/sh", path)
