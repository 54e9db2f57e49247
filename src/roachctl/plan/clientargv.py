"""The one place that builds the argv of `cockroach` client commands (pure).

Client commands come in two kinds (docs/cockroach-contract.md §2.1 `--cluster-name` row, §5):

- gRPC ("non-SQL") commands — `init`, `node drain`, `node decommission`, `node recommission`,
  `debug zip` —
  verify the cluster name on their heartbeat: against a cluster started with `--cluster-name` they
  must pass the same name, or fail with `cluster name check failed on ping response`.
- SQL commands — `sql`, `node status`, `node ls` — do not register the flag at all and fail with
  `unknown flag: --cluster-name` (exit 4).

So the name is added here, by kind, and nowhere else; an unknown subcommand is a programming
error (it must be classified before roachctl may send it). Local clusters have no cluster name.
"""

from __future__ import annotations

from collections.abc import Sequence

GRPC: frozenset[tuple[str, ...]] = frozenset(
    {("init",), ("node", "drain"), ("node", "decommission"), ("node", "recommission"), ("debug", "zip")}
)
"""Non-SQL client commands: they take (and need) `--cluster-name` (contract §2.1, §3, §5, §5.1)."""

SQL: frozenset[tuple[str, ...]] = frozenset({("sql",), ("node", "status"), ("node", "ls")})
"""SQL client commands: `--cluster-name` is an unknown flag to them (contract §2.1)."""


def subcommand(args: Sequence[str]) -> tuple[str, ...]:
    """The subcommand words of `args` (`("node", "drain")`, `("sql",)`); flags are not words."""
    if not args or args[0].startswith("-"):
        raise ValueError(f"no cockroach subcommand in {list(args)!r}")
    if args[0] in ("node", "debug"):
        if len(args) < 2 or args[1].startswith("-"):
            raise ValueError(f"`cockroach {args[0]}` needs a subcommand, got {list(args)!r}")
        return (args[0], args[1])
    return (args[0],)


def is_grpc(args: Sequence[str]) -> bool:
    """True for a gRPC client command, False for a SQL one; ValueError for anything unclassified."""
    words = subcommand(args)
    if words in GRPC:
        return True
    if words in SQL:
        return False
    raise ValueError(f"unclassified cockroach client command {' '.join(words)!r} (plan/clientargv.py)")


def client_args(args: Sequence[str], *, host: str, cluster_name: str | None) -> list[str]:
    """`args` + `--host=HOST` (+ `--cluster-name=NAME` on gRPC commands when the cluster has one).

    `args` must not carry `--cluster-name` or `--host` itself: this function owns both.
    """
    for arg in args:
        if arg.split("=", 1)[0] in ("--cluster-name", "--disable-cluster-name-verification", "--host"):
            raise ValueError(f"{arg!r} is added by client_args, not by the caller")
    out = [*args, f"--host={host}"]
    if is_grpc(args) and cluster_name:
        out.append(f"--cluster-name={cluster_name}")
    return out
