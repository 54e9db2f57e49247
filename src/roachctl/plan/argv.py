"""The `cockroach start` command line: one builder shared by local mode and systemd units.

Flags and their meaning follow docs/cockroach-contract.md §2.1. Every path is absolute (the seed's
lesson 3: cockroach puts store, logs, temp and extern dirs relative to the CWD unless told).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class StartSpec:
    """Everything `cockroach start` needs for one node.

    `certs_dir=None` means an insecure node (`--insecure`).
    """

    binary: str
    stores: tuple[str, ...]
    listen_addr: str
    http_addr: str
    join: tuple[str, ...]
    certs_dir: str | None = None
    advertise_addr: str | None = None
    sql_addr: str | None = None
    advertise_sql_addr: str | None = None
    cache: str = ".25"
    max_sql_memory: str = ".25"
    locality: str | None = None
    log_dir: str | None = None
    temp_dir: str | None = None
    external_io_dir: str | None = None
    pid_file: str | None = None
    cluster_name: str | None = None
    extra: tuple[str, ...] = field(default_factory=tuple)


def _require_absolute(name: str, path: str | None) -> None:
    if path is not None and not path.startswith("/"):
        raise ValueError(f"{name} must be an absolute path, got {path!r}")


def start_argv(spec: StartSpec) -> list[str]:
    """Render `spec` as an argv list (binary first). Pure; raises ValueError on relative paths."""
    for name, path in [
        ("binary", spec.binary),
        ("certs_dir", spec.certs_dir),
        ("log_dir", spec.log_dir),
        ("temp_dir", spec.temp_dir),
        ("pid_file", spec.pid_file),
        *(("store", s) for s in spec.stores),
    ]:
        _require_absolute(name, path)
    if spec.external_io_dir not in (None, "disabled"):
        _require_absolute("external_io_dir", spec.external_io_dir)
    if not spec.stores:
        raise ValueError("at least one store is required")
    if not spec.join:
        raise ValueError("--join is mandatory for cockroach start")
    argv = [spec.binary, "start"]
    argv.append(f"--certs-dir={spec.certs_dir}" if spec.certs_dir else "--insecure")
    argv += [f"--store=path={s}" for s in spec.stores]
    optional = [
        ("listen-addr", spec.listen_addr),
        ("advertise-addr", spec.advertise_addr),
        ("sql-addr", spec.sql_addr),
        ("advertise-sql-addr", spec.advertise_sql_addr),
        ("http-addr", spec.http_addr),
        ("join", ",".join(spec.join)),
        ("cache", spec.cache),
        ("max-sql-memory", spec.max_sql_memory),
        ("locality", spec.locality),
        ("log-dir", spec.log_dir),
        ("temp-dir", spec.temp_dir),
        ("external-io-dir", spec.external_io_dir),
        ("pid-file", spec.pid_file),
        ("cluster-name", spec.cluster_name),
    ]
    argv += [f"--{flag}={value}" for flag, value in optional if value]
    argv += list(spec.extra)
    return argv
