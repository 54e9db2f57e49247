"""Which client commands carry `--cluster-name` (contract §2.1): gRPC ones must, SQL ones must not."""

from __future__ import annotations

import pytest

from roachctl.plan.clientargv import GRPC, SQL, client_args, is_grpc


@pytest.mark.parametrize(
    "args",
    [
        ["init"],
        ["node", "drain", "--self"],
        ["node", "drain", "3"],
        ["node", "decommission", "4", "5"],
        ["node", "recommission", "4"],
        ["debug", "zip", "/var/tmp/x/debug.zip", "--include-goroutine-stacks=false"],
    ],
)
def test_grpc_commands_get_the_cluster_name(args: list[str]) -> None:
    assert is_grpc(args)
    out = client_args(args, host="10.0.0.1:26257", cluster_name="prod")
    assert out == [*args, "--host=10.0.0.1:26257", "--cluster-name=prod"]


@pytest.mark.parametrize(
    "args", [["sql", "-e", "SELECT 1"], ["node", "status", "--format=json", "--ranges"], ["node", "ls"]]
)
def test_sql_commands_never_get_it(args: list[str]) -> None:
    """`sql`, `node status`, `node ls` reject the flag as unknown (exit 4)."""
    assert not is_grpc(args)
    out = client_args(args, host="h:26257", cluster_name="prod")
    assert out == [*args, "--host=h:26257"]
    assert not any(a.startswith("--cluster-name") for a in out)


def test_a_local_cluster_has_no_name_to_pass() -> None:
    assert client_args(["node", "drain", "--self"], host="127.0.0.1:26257", cluster_name=None) == [
        "node",
        "drain",
        "--self",
        "--host=127.0.0.1:26257",
    ]


@pytest.mark.parametrize(
    "args", [["debug", "ballast", "x"], ["debug"], ["node", "frobnicate"], ["node"], [], ["--host=x"]]
)
def test_an_unclassified_command_is_a_programming_error(args: list[str]) -> None:
    with pytest.raises(ValueError):
        client_args(args, host="h:1", cluster_name="prod")


@pytest.mark.parametrize("flag", ["--cluster-name=x", "--disable-cluster-name-verification", "--host=h:1"])
def test_callers_cannot_add_the_flags_this_module_owns(flag: str) -> None:
    with pytest.raises(ValueError, match="added by client_args"):
        client_args(["node", "drain", "--self", flag], host="h:1", cluster_name="prod")


def test_the_two_kinds_do_not_overlap() -> None:
    assert not GRPC & SQL
