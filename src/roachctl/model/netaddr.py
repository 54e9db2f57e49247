"""`host:port` for every address roachctl hands to cockroach, ssh or a URL: one rule, one place.

An IPv6 literal must be bracketed: cockroach's `--host`/`--join`/`--advertise-addr` parse with
`addr.SplitHostPort` and refuse `fd00::1:26257` ("invalid address format", hint "enclose IPv6
addresses within [...]", docs/cockroach-contract.md §2.1), OpenSSH's `-W` refuses it ("Bad stdio
forwarding specification"), and URLs need `[...]` (RFC 3986). `node status` reports the address
as advertised, so matching its rows needs the same form.
"""

from __future__ import annotations

import ipaddress


def is_ipv6(address: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(address), ipaddress.IPv6Address)
    except ValueError:
        return False


def host_port(address: str, port: int) -> str:
    """`address:port`, with IPv6 addresses in brackets."""
    return f"[{address}]:{port}" if is_ipv6(address) else f"{address}:{port}"
