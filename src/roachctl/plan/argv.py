"""The `cockroach start` command line: one builder shared by local mode and systemd units.

Flags and their meaning follow cockroach-contract.md §2.1. Every path is absolute (the seed's
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
    argv.append(f"--listen-addr={spec.listen_addr}")
    if spec.advertise_addr:
        argv.append(f"--advertise-addr={spec.advertise_addr}")
    if spec.sql_addr:
        argv.append(f"--sql-addr={spec.sql_addr}")
    if spec.advertise_sql_addr:
        argv.append(f"--advertise-sql-addr={spec.advertise_sql_addr}")
    argv.append(f"--http-addr={spec.http_addr}")
    argv.append(f"--join={','.join(spec.join)}")
    argv += [f"--cache={spec.cache}", f"--max-sql-memory={spec.max_sql_memory}"]
    if spec.locality:
        argv.append(f"--locality={spec.locality}")
    if spec.log_dir:
        argv.append(f"--log-dir={spec.log_dir}")
    if spec.temp_dir:
        argv.append(f"--temp-dir={spec.temp_dir}")
    if spec.external_io_dir:
        argv.append(f"--external-io-dir={spec.external_io_dir}")
    if spec.pid_file:
        argv.append(f"--pid-file={spec.pid_file}")
    if spec.cluster_name:
        argv.append(f"--cluster-name={spec.cluster_name}")
    argv += list(spec.extra)
    return argv
