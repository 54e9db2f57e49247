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
flushes the ruleset). ufw and firewalld get a small POSIX sh script of their own commands.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Iterable, Mapping, Sequence

from roachctl.errors import RefusedError
from roachctl.model.topology import NodeConfig, Topology

NFT = "/usr/sbin/nft"
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
BACKENDS = ("nftables", "ufw", "firewalld")


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


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
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
            networks.append(ipaddress.ip_network(address, strict=False))
        except ValueError as exc:
            raise RefusedError(f"invalid resolved address {address!r}", hint="resolve names to IPs") from exc
    return networks


def allowed_sources(
    topology: Topology, node: NodeConfig, peers: Sequence[IPNetwork]
) -> dict[int, tuple[str, ...]]:
    """Port -> sorted, collapsed CIDRs allowed to reach it (loopback is accepted separately)."""
    fw = topology.firewall
    wanted = {
        node.sql_port: [*peers, *(ipaddress.ip_network(c) for c in fw.sql_clients)],
        node.http_port: [*peers, *(ipaddress.ip_network(c) for c in fw.http_clients)],
    }
    return {port: tuple(_show(n) for n in _collapse(nets)) for port, nets in wanted.items()}


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


def ufw_commands(cluster: str, allowed: Mapping[int, Sequence[str]]) -> list[list[str]]:
    """ufw commands: `prepend` the allows (so they precede any older rule) then deny the port."""
    comment = f"roachctl {cluster}"
    commands: list[list[str]] = []
    for port in sorted(allowed):
        for cidr in allowed[port]:
            commands.append(
                ["ufw", "prepend", "allow", "proto", "tcp", "from", cidr, "to", "any", "port", str(port),
                 "comment", comment]
            )  # fmt: skip
        commands.append(["ufw", "deny", "proto", "tcp", "to", "any", "port", str(port), "comment", comment])
    return commands


def firewalld_commands(cluster: str, allowed: Mapping[int, Sequence[str]]) -> list[list[str]]:
    """firewall-cmd commands: close the plain port, allow each source by a rich rule, reload."""
    commands: list[list[str]] = []
    for port in sorted(allowed):
        commands.append(["firewall-cmd", "--permanent", f"--remove-port={port}/tcp"])
        for cidr in allowed[port]:
            family = "ipv6" if ":" in cidr else "ipv4"
            rule = f'rule family="{family}" source address="{cidr}" port port="{port}" protocol="tcp" accept'
            commands.append(["firewall-cmd", "--permanent", f"--add-rich-rule={rule}"])
    commands.append(["firewall-cmd", "--reload"])
    return commands


def render_script(cluster: str, backend: str, commands: list[list[str]]) -> str:
    """A POSIX sh script running `commands` (for ufw/firewalld), safe to run again."""
    lines = [
        "#!/bin/sh",
        f"# Managed by roachctl (cluster {cluster}): {backend} rules for this node's CockroachDB ports.",
        "set -eu",
        *(shlex.join(c) for c in commands),
    ]
    return "\n".join(lines) + "\n"


def render_rules(backend: str, cluster: str, allowed: Mapping[int, Sequence[str]]) -> tuple[str, str]:
    """(file extension, text) of the rules file for `backend`."""
    if backend == "nftables":
        return "nft", render_nft(cluster, allowed)
    if backend == "ufw":
        return "sh", render_script(cluster, backend, ufw_commands(cluster, allowed))
    if backend == "firewalld":
        return "sh", render_script(cluster, backend, firewalld_commands(cluster, allowed))
    raise ValueError(f"unknown firewall backend {backend!r}")


def apply_argv(backend: str, path: str) -> tuple[str, ...]:
    """The command that (re)loads the rules file `path` (run as root)."""
    return (NFT, "-f", path) if backend == "nftables" else ("/bin/sh", path)
