"""Field types of the topology file: each rejects bad input with a message *and* a hint.

Why custom validators instead of `Field(pattern=...)`: pydantic's pattern error only says
"String should match pattern '...'", which tells a user nothing. Every value that ends up in a
systemd unit, an nft ruleset or a shell command is restricted to a character set that needs no
quoting anywhere (no whitespace, no shell metacharacters, no `%`/`$` systemd specifiers), so the
planner can never render an injection or a unit systemd misreads.

The JSON schema still carries the patterns (via `WithJsonSchema`) for editor completion.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StrictInt, WithJsonSchema
from pydantic_core import PydanticCustomError

from roachctl.model import versions
from roachctl.model.netaddr import is_ipv6

NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
VERSION_RE = re.compile(r"v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?")
COCKROACH_CLUSTER_NAME_RE = re.compile(r"[A-Za-z](?:[-.A-Za-z0-9]{0,254}[A-Za-z0-9])?")
LINUX_USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
SSH_USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
UNIT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,200}")
SSH_TARGET_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}")
DNS_NAME_RE = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
PATH_CHARS_RE = re.compile(r"[A-Za-z0-9._/-]+")
LOCALITY_RE = re.compile(r"[A-Za-z0-9_.-]+=[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+=[A-Za-z0-9_.-]+)*")
FRACTION_RE = re.compile(r"0?\.[0-9]+")
SIZE_RE = re.compile(r"[1-9][0-9]*(\.[0-9]+)?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)")

#: Directories any local user can write to: a path there can be hijacked or blocked by anyone
#: (the seed's `ConditionPathExists=!/var/tmp/...` mistake). `/run` and `/dev` are tmpfs/devtmpfs:
#: data there vanishes at reboot. `/proc`, `/sys` are not storage at all.
UNSAFE_ROOTS = ("/tmp", "/var/tmp", "/dev/shm", "/dev", "/run", "/var/run", "/var/lock", "/proc", "/sys")

#: Directories systemd's `ProtectSystem=full` makes read-only for the service: data cannot live there.
READ_ONLY_ROOTS = ("/usr", "/etc", "/boot", "/efi", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")

#: System directories that roachctl must never chown/chmod (it would if `data`/`home` were one of them).
SYSTEM_DIRS = frozenset(
    {
        "/", "/opt", "/srv", "/var", "/var/lib", "/var/opt", "/var/log", "/var/cache", "/var/spool",
        "/home", "/root", "/mnt", "/media", "/usr", "/usr/local", "/usr/local/lib", "/usr/lib", "/etc",
        "/data",
    }
)  # fmt: skip

#: Other software's places: login users' homes, root's home and the state dirs of well-known
#: daemons and package managers. roachctl chowns data and stores to the service user and
#: `destroy --wipe` deletes them, so none of them (or anything below) may be data, a store or
#: home (docs/findings.md S-M5). Checked as prefixes: `/home/deploy` is refused like `/home` itself.
FOREIGN_DAEMON_DIRS = (
    "apt", "dpkg", "rpm", "dnf", "yum", "snapd", "flatpak", "systemd", "private", "machines",
    "portables", "polkit-1", "dbus", "sudo", "pam", "ucf", "ufw", "nftables", "firewalld", "iptables",
    "NetworkManager", "dhcp", "chrony", "ntp", "ntpsec", "cloud", "sss", "lxd", "lxc", "libvirt",
    "docker", "containerd", "containers", "kubelet", "etcd", "mysql", "mariadb", "postgresql",
    "pgsql", "mongodb", "redis", "cassandra", "elasticsearch", "opensearch", "kafka", "zookeeper",
    "rabbitmq", "influxdb", "grafana", "prometheus", "clickhouse", "nginx", "apache2", "httpd",
    "openvpn", "tailscale", "logrotate", "mlocate", "plocate", "sshd", "ssh",
)  # fmt: skip
FOREIGN_ROOTS = (
    "/home", "/root", "/var/spool", "/var/mail", "/var/www", "/var/log", "/var/cache", "/var/backups",
    "/snap", "/var/snap", "/lost+found", *(f"/var/lib/{d}" for d in FOREIGN_DAEMON_DIRS),
)  # fmt: skip

#: Package-manager territory: home and install_root may live under /usr/local (where the
#: cockroach docs put the binary) but not elsewhere under /usr, nor under /etc or /boot.
SYSTEM_ROOTS = ("/etc", "/boot", "/efi", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
LOCAL_ROOT = "/usr/local"

#: Accounts that must never run the database: system and daemon accounts, and the default login
#: users of common cloud images. Adopting one hands the data to it, and `destroy --wipe` would
#: delete it (docs/findings.md S-M5). `systemd-*` is refused as a prefix.
FORBIDDEN_SERVICE_USERS = frozenset(
    {
        "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
        "www-data", "backup", "list", "irc", "gnats", "nobody", "nogroup", "adm", "operator", "halt",
        "shutdown", "ftp", "messagebus", "dbus", "syslog", "_apt", "sshd", "ntp", "chrony", "_chrony",
        "polkitd", "tss", "avahi", "rpc", "rpcuser", "nfsnobody", "uuidd", "tcpdump", "dnsmasq",
        "lxd", "sssd", "landscape", "pollinate", "postgres", "mysql", "mariadb", "mongodb", "redis",
        "docker", "nginx", "apache", "http", "git", "ubuntu", "debian", "admin", "ec2-user", "centos",
        "fedora", "rocky", "almalinux", "cloud-user", "opc", "azureuser", "pi", "vagrant", "core",
    }
)  # fmt: skip
FORBIDDEN_SERVICE_USER_PREFIXES = ("systemd-",)

#: Units of the operating system and of common daemons: a roachctl unit with one of these names
#: overwrites it in /etc/systemd/system, and `destroy` disables and deletes it (docs/findings.md S-M5).
FORBIDDEN_UNITS = frozenset(
    {
        "ssh", "sshd", "dbus", "dbus-broker", "nftables", "firewalld", "ufw", "iptables", "ip6tables",
        "netfilter-persistent", "networking", "network", "NetworkManager", "wpa_supplicant", "cron",
        "crond", "cronie", "anacron", "atd", "rsyslog", "syslog", "syslog-ng", "auditd", "polkit",
        "chrony", "chronyd", "ntp", "ntpd", "ntpsec", "sudo", "snapd", "docker", "containerd", "kubelet",
        "mysql", "mysqld", "mariadb", "postgresql", "redis", "redis-server", "nginx", "apache2",
        "httpd", "unattended-upgrades", "apt-daily", "apt-daily-upgrade", "logrotate", "fstrim",
        "emergency", "rescue", "getty", "serial-getty", "console-getty", "container-getty", "autovt",
        "rc-local", "irqbalance", "tuned", "smartd", "multipathd", "iscsid", "rpcbind", "apparmor",
        "qemu-guest-agent", "walinuxagent", "amazon-ssm-agent", "tailscaled", "fail2ban", "postfix",
        "exim4", "sendmail", "avahi-daemon", "cups", "bluetooth", "ModemManager", "accounts-daemon",
        "user", "user-runtime-dir", "dm-event", "mdmonitor", "udisks2", "upower", "packagekit",
    }
)  # fmt: skip
FORBIDDEN_UNIT_PREFIXES = (
    "systemd-", "dbus-", "snap.", "cloud-", "lvm2-", "nfs-", "plymouth", "kmod", "getty", "serial-getty",
)  # fmt: skip

#: Ports below this need root (or CAP_NET_BIND_SERVICE) to bind; cockroach runs as the service user.
MIN_SERVICE_PORT = 1024


def invalid(message: str, hint: str) -> PydanticCustomError:
    """A validation error that carries a fix-it hint (the loader shows it under the message)."""
    return PydanticCustomError("roachctl", message, {"hint": hint})


def _full(regex: re.Pattern[str], value: str) -> bool:
    return regex.fullmatch(value) is not None


def _require_str(value: Any, what: str, example: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str):
        raise invalid(f"{what} must be a string, got {_show(value)}", f"write it like: {example}")
    return value


def _show(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


# --- names ---------------------------------------------------------------------------------------


def check_cluster_name(raw: Any) -> str:
    value = _require_str(raw, "the cluster name", "prod")
    if not _full(NAME_RE, value):
        raise invalid(
            f"invalid cluster name {value!r}",
            "use 1-40 characters: lowercase letters, digits and '-', starting with a letter or digit",
        )
    return value


def check_cockroach_cluster_name(raw: Any) -> str:
    value = _require_str(raw, "cluster_name", "prod-eu")
    if not _full(COCKROACH_CLUSTER_NAME_RE, value):
        raise invalid(
            f"invalid cockroach cluster name {value!r}",
            "cockroach's --cluster-name takes letters, digits, '-' and '.', starts with a letter "
            "and ends with a letter or digit",
        )
    return value


def check_version(raw: Any) -> str:
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        raise invalid(
            f"the version must be a release name, got the number {raw}",
            "write the full release with a leading 'v', e.g. v25.4.0",
        )
    value = _require_str(raw, "the version", "v25.4.0")
    if not _full(VERSION_RE, value):
        if _full(VERSION_RE, "v" + value):
            raise invalid(f"invalid version {value!r}", f"release names start with 'v': v{value}")
        raise invalid(
            f"invalid version {value!r}",
            "use a CockroachDB release name like v25.4.0 or v25.4.0-rc.1",
        )
    if versions.below_floor(value):
        raise invalid(versions.floor_message(value), versions.floor_hint())
    return value


def check_service_user(raw: Any) -> str:
    value = _require_str(raw, "the service user", "cockroach")
    if not _full(LINUX_USER_RE, value):
        raise invalid(
            f"invalid Linux user name {value!r}",
            "use at most 32 lowercase letters, digits, '_' and '-', starting with a letter or '_'",
        )
    if value in FORBIDDEN_SERVICE_USERS or value.startswith(FORBIDDEN_SERVICE_USER_PREFIXES):
        raise invalid(
            f"the database must not run as {value!r}, an account of the system or of other software",
            "use a dedicated system account such as 'cockroach'; roachctl creates it",
        )
    return value


def check_ssh_user(raw: Any) -> str:
    value = _require_str(raw, "the ssh user", "deploy")
    if not _full(SSH_USER_RE, value):
        raise invalid(f"invalid ssh user name {value!r}", "use letters, digits, '_', '.' and '-'")
    return value


def check_unit_name(raw: Any) -> str:
    value = _require_str(raw, "the unit name", "cockroach")
    value = value.removesuffix(".service")
    if not _full(UNIT_RE, value) or "@" in value:
        raise invalid(
            f"invalid systemd unit name {value!r}",
            "use letters, digits, '_', '.', ':' and '-' (no template '@'); '.service' is added for you",
        )
    if value in FORBIDDEN_UNITS or value.startswith(FORBIDDEN_UNIT_PREFIXES):
        raise invalid(
            f"{value}.service is a unit of the system or of other software",
            "roachctl would overwrite it and `destroy` would remove it; use e.g. cockroach",
        )
    return value


# --- addresses -----------------------------------------------------------------------------------


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def check_ssh_target(raw: Any) -> str:
    """An ssh destination: an ssh-config alias, a DNS name or an IP address (no user@, no port)."""
    value = _require_str(raw, "the host", "store-1")
    if "@" in value:
        raise invalid(f"host {value!r} contains a user", "set the login user once under ssh: user:")
    if value.startswith("["):
        raise invalid(f"host {value!r} has brackets", "write IPv6 addresses without brackets")
    if _ip(value) is not None and "%" not in value:
        return value
    if not _full(SSH_TARGET_RE, value):
        raise invalid(
            f"invalid host {value!r}",
            "use an ssh config alias, a DNS name or an IP address: letters, digits, '.', '_' and '-' "
            "(set the port under ssh: port:)",
        )
    return value


def check_address(raw: Any) -> str:
    """An address other nodes use to reach this one: an IP literal or a DNS name (no port)."""
    value = _require_str(raw, "the address", "198.51.100.11")
    if value.startswith("["):
        raise invalid(f"address {value!r} has brackets", "write IPv6 addresses without brackets")
    ip = _ip(value)
    if ip is not None and "%" not in value:
        if ip.is_unspecified or ip.is_multicast:
            raise invalid(f"{value} cannot be advertised", "advertise the address other nodes route to")
        return value
    if value.count(":") == 1 and value.rsplit(":", 1)[1].isdigit():
        raise invalid(f"address {value!r} includes a port", "set ports with sql_port: / http_port:")
    if not _full(DNS_NAME_RE, value):
        raise invalid(
            f"invalid address {value!r}",
            "use an IP address or a DNS name (letters, digits, '-' and '.') that every node resolves",
        )
    return value


def check_host_port(raw: Any) -> str:
    """A `host:port` join target (IPv6 as `[addr]:port`)."""
    value = _require_str(raw, "the join address", "198.51.100.11:26257")
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise invalid(f"invalid join address {value!r}", "write host:port, e.g. 198.51.100.11:26257")
    if host.startswith("[") and host.endswith("]"):
        if not isinstance(_ip(host[1:-1]), ipaddress.IPv6Address):
            raise invalid(f"invalid IPv6 join address {value!r}", "write [2001:db8::1]:26257")
        return value
    if is_ipv6(host):
        raise invalid(f"IPv6 join address {value!r} needs brackets", f"write [{host}]:{port}")
    check_address(host)
    return value


def check_cidr(raw: Any) -> str:
    value = _require_str(raw, "a client network", "10.0.0.0/8")
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise invalid(
                f"invalid network {value!r}", "write an address or a CIDR, e.g. 10.0.0.0/8 or 2001:db8::/32"
            ) from exc
        raise invalid(f"{value!r} has host bits set", f"did you mean {loose}?") from exc


def check_locality(raw: Any) -> str:
    value = _require_str(raw, "the locality", "region=eu,zone=a")
    if not _full(LOCALITY_RE, value):
        raise invalid(
            f"invalid locality {value!r}",
            "write ordered key=value tiers separated by commas, e.g. region=eu,zone=a "
            "(letters, digits, '_', '.', '-'; no spaces)",
        )
    keys = locality_keys(value)
    if len(set(keys)) != len(keys):
        raise invalid(f"locality {value!r} repeats a key", "each tier key (region, zone, ...) appears once")
    return value


def locality_keys(locality: str) -> tuple[str, ...]:
    """The ordered tier keys of a `k=v,k=v` locality."""
    return tuple(part.split("=", 1)[0] for part in locality.split(","))


# --- paths ---------------------------------------------------------------------------------------


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def check_abs_path(raw: Any) -> str:
    """An absolute, normalized path safe to write unquoted in units, rules and shell commands."""
    value = _require_str(raw, "a path", "/var/lib/cockroach")
    if value.startswith("~"):
        raise invalid(
            f"path {value!r} uses '~'", "write the absolute path; '~' means a different home per user"
        )
    if not value.startswith("/"):
        raise invalid(f"path {value!r} is relative", f"write an absolute path, e.g. /{value}")
    if not _full(PATH_CHARS_RE, value):
        raise invalid(
            f"path {value!r} contains unsupported characters",
            "use letters, digits, '.', '_', '-' and '/' only (no spaces or shell characters)",
        )
    normal = posixpath.normpath(value)
    if normal.startswith("//"):
        normal = normal[1:]
    if normal != value:
        raise invalid(f"path {value!r} is not normalized", f"write {normal}")
    if value == "/":
        raise invalid("the root directory cannot be used here", "use a dedicated directory")
    for root in UNSAFE_ROOTS:
        if _under(value, root):
            raise invalid(
                f"{value} is under {root}, which is world-writable or not persistent",
                "use a root-owned persistent location such as /opt or /var/lib",
            )
    return value


def check_data_path(raw: Any) -> str:
    """A directory roachctl hands to the service user (data dir, store): never a system dir."""
    value = check_abs_path(raw)
    for root in READ_ONLY_ROOTS:
        if _under(value, root):
            raise invalid(
                f"{value} is under {root}, which the service cannot write to (ProtectSystem=full)",
                "put data under /var/lib, /srv, /data/... or a dedicated mount",
            )
    check_not_system_dir(value)
    return check_not_foreign(value)


def check_not_system_dir(value: str) -> str:
    if value in SYSTEM_DIRS:
        raise invalid(
            f"{value} is a system directory; roachctl would change its owner and mode",
            f"use a dedicated subdirectory, e.g. {value.rstrip('/')}/cockroach",
        )
    return value


def check_not_foreign(value: str) -> str:
    """Refuse a path in (or at) another program's or user's place (FOREIGN_ROOTS)."""
    for root in FOREIGN_ROOTS:
        if _under(value, root):
            raise invalid(
                f"{value} is {'' if value == root else 'under '}{root}, which belongs to other "
                "software or to a login user; roachctl would take it over and destroy --wipe deletes it",
                "use a dedicated directory such as /var/lib/cockroach, /srv/cockroach or a mount",
            )
    return value


def check_not_package_dir(value: str) -> str:
    """Refuse the package manager's trees (/usr except /usr/local/..., /etc, /boot, ...)."""
    if _under(value, LOCAL_ROOT):
        return value
    for root in SYSTEM_ROOTS:
        if _under(value, root):
            raise invalid(
                f"{value} is under {root}, which belongs to the operating system's packages",
                "use /opt (the default) or /usr/local",
            )
    return value


def check_home_path(value: Any) -> str:
    path = check_not_system_dir(check_abs_path(value))
    return check_not_foreign(check_not_package_dir(path))


def check_install_root(value: Any) -> str:
    """The parent of the versioned release dirs: root-owned, outside others' places."""
    return check_not_foreign(check_not_package_dir(check_abs_path(value)))


# --- sizes ---------------------------------------------------------------------------------------


def check_memory(raw: Any) -> str:
    """A cockroach memory setting: a decimal fraction of RAM (.25) or a size with a unit (1GiB)."""
    if isinstance(raw, float):
        text = repr(raw)
        if not 0 < raw < 1:
            raise invalid(
                f"{text} is not a fraction of RAM", "write a decimal fraction between 0 and 1, e.g. .25"
            )
        return text
    if isinstance(raw, int) and not isinstance(raw, bool):
        raise invalid(
            f"{raw} has no unit",
            "write a fraction of RAM (.25) or a size with a unit (512MiB, 2GiB)",
        )
    value = _require_str(raw, "a memory size", ".25")
    if value.endswith("%"):
        raise invalid(
            f"percentages such as {value!r} are not accepted",
            "write a decimal fraction instead (25% -> .25): '%' is a specifier in systemd units",
        )
    if _full(FRACTION_RE, value):
        if not 0 < float(value) < 1:
            raise invalid(
                f"{value} is not a fraction of RAM", "write a decimal fraction between 0 and 1, e.g. .25"
            )
        return value
    if not _full(SIZE_RE, value):
        raise invalid(
            f"invalid memory size {value!r}",
            "write a fraction of RAM (.25) or a size with a unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)",
        )
    return value


def memory_fraction(value: str) -> float | None:
    """The fraction of RAM a memory setting asks for, or None for absolute sizes."""
    return float(value) if _full(FRACTION_RE, value) else None


def check_port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise invalid(f"port {value} is out of range", "use a TCP port between 1 and 65535")
    return value


def check_service_port(value: int) -> int:
    check_port(value)
    if value < MIN_SERVICE_PORT:
        raise invalid(
            f"port {value} is privileged",
            f"use a port >= {MIN_SERVICE_PORT}: cockroach runs as an unprivileged service user",
        )
    return value


def _schema(pattern: str | None = None, **extra: Any) -> WithJsonSchema:
    schema: dict[str, Any] = {"type": "string", **extra}
    if pattern:
        schema["pattern"] = f"^{pattern}$"
    return WithJsonSchema(schema)


ClusterName = Annotated[str, BeforeValidator(check_cluster_name), _schema(NAME_RE.pattern)]
CockroachClusterName = Annotated[
    str, BeforeValidator(check_cockroach_cluster_name), _schema(COCKROACH_CLUSTER_NAME_RE.pattern)
]
Version = Annotated[str, BeforeValidator(check_version), _schema(versions.FLOOR_PATTERN)]
ServiceUser = Annotated[str, BeforeValidator(check_service_user), _schema(LINUX_USER_RE.pattern)]
SSHUser = Annotated[str, BeforeValidator(check_ssh_user), _schema(SSH_USER_RE.pattern)]
UnitName = Annotated[str, BeforeValidator(check_unit_name), _schema(UNIT_RE.pattern)]
SSHTarget = Annotated[
    str, BeforeValidator(check_ssh_target), _schema(description="ssh alias, DNS name or IP")
]
Address = Annotated[str, BeforeValidator(check_address), _schema(description="IP address or DNS name")]
HostPort = Annotated[str, BeforeValidator(check_host_port), _schema(description="host:port")]
Cidr = Annotated[str, BeforeValidator(check_cidr), _schema(description="IP address or CIDR network")]
Locality = Annotated[str, BeforeValidator(check_locality), _schema(LOCALITY_RE.pattern)]
AbsPath = Annotated[str, BeforeValidator(check_abs_path), _schema(PATH_CHARS_RE.pattern)]
HomePath = Annotated[str, BeforeValidator(check_home_path), _schema(PATH_CHARS_RE.pattern)]
InstallRoot = Annotated[str, BeforeValidator(check_install_root), _schema(PATH_CHARS_RE.pattern)]
DataPath = Annotated[str, BeforeValidator(check_data_path), _schema(PATH_CHARS_RE.pattern)]
Memory = Annotated[
    str,
    BeforeValidator(check_memory),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                {"type": "string", "pattern": f"^({FRACTION_RE.pattern}|{SIZE_RE.pattern})$"},
            ]
        }
    ),
]
Port = Annotated[
    StrictInt, AfterValidator(check_port), Field(json_schema_extra={"minimum": 1, "maximum": 65535})
]
ServicePort = Annotated[
    StrictInt,
    AfterValidator(check_service_port),
    Field(json_schema_extra={"minimum": MIN_SERVICE_PORT, "maximum": 65535}),
]
IdentityFile = Annotated[str, Field(min_length=1, max_length=4096, pattern=r"^[^\x00\n\r]+$")]
