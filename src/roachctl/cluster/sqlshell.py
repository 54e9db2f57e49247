"""`roachctl sql CLUSTER` without -e: an interactive `cockroach sql` on one ready node.

Why this shape: a SQL shell needs a terminal, so it runs under `ssh -t` (the executor's own base
argv: same config, multiplexed master, BatchMode), not through the executor's captured pipes. Its
client cert must reach the node without touching the disk or argv, as for every client command
(cluster/client.py): a first command streams ca.crt + a short-lived client cert/key over stdin into
a private `mktemp -d` under /run and prints its path; the shell then runs with `--certs-dir` there,
behind a trap that removes the directory however the shell ends; a last command removes it again
in case the connection dropped before the trap could run (e.g. ssh killed).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Sequence

from roachctl.cluster.client import UNPACK_CERTS, bundle, make_dir
from roachctl.cluster.nodes import NodeClient, NodeTarget, probe_ready, targets
from roachctl.errors import RefusedError, RemoteCommandError, TransportError
from roachctl.exec.command import Command
from roachctl.operation.session import Session
from roachctl.plan.clientargv import client_args
from roachctl.plan.sqlinput import sql_stdin

DIR_PREFIX = "/run/roachctl-sql."
_DIR = re.compile(r"/run/roachctl-sql\.[A-Za-z0-9]{8}\Z")

# stdin = files framed by "#roachctl-file NAME"; prints the private directory it wrote them to.
_STAGE_SCRIPT = (
    make_dir(DIR_PREFIX)
    + UNPACK_CERTS
    + """printf '%s\\n' "$d"
"""
)

# $1 = the staged dir; $2... = cockroach binary and arguments. The dir goes whatever happens.
_SHELL_SCRIPT = r"""
d=$1
shift
case $d in /run/roachctl-sql.*) ;; *) echo "roachctl: bad certs dir $d" >&2; exit 70 ;; esac
trap 'rm -rf -- "$d"' EXIT
trap 'exit 130' HUP INT TERM
"$@" --certs-dir="$d"
"""


async def stage_certs(session: Session, target: NodeTarget, client: NodeClient) -> str:
    """Write the client certs into a fresh private dir under /run on the node; return its path."""
    executor = session.ssh.executor(target.host)
    cmd = Command.shell(_STAGE_SCRIPT, sudo=True, name="roachctl-sql-certs")
    result = await executor.run(cmd, stdin=bundle(client.client_files()), timeout=60)
    path = result.out.strip().splitlines()[-1] if result.out.strip() else ""
    if not _DIR.match(path):
        raise RemoteCommandError(f"could not stage client certificates (got {path!r})", where=target.host)
    return path


def shell_argv(session: Session, target: NodeTarget, certs_dir: str) -> list[str]:
    """`ssh -t HOST <sudo> sh -c <script> DIR cockroach sql --host=...` over the session's master."""
    executor = session.ssh.executor(target.host)
    cmd = Command.shell(
        _SHELL_SCRIPT,
        certs_dir,
        target.binary,
        *client_args(["sql"], host=target.rpc_addr, cluster_name=session.topology.effective_cluster_name),
        sudo=True,
        name="roachctl-sql",
    )
    remote = cmd.render(use_sudo=cmd.sudo and not executor.is_root)
    return [*session.ssh.base_argv(), "-t", "--", target.host, remote]


async def interactive_sql(session: Session, target: NodeTarget) -> int:
    """Run the shell on `target` with this terminal; returns its exit code (certs always removed)."""
    await session.ssh.executor(target.host).connect()  # the login uid decides whether to use sudo
    if not session.topology.secure:
        return await _attach(shell_argv_insecure(session, target))
    client = NodeClient(session)
    certs_dir = await stage_certs(session, target, client)
    try:
        return await _attach(shell_argv(session, target, certs_dir))
    finally:
        await _cleanup(session, target, certs_dir)


def shell_argv_insecure(session: Session, target: NodeTarget) -> list[str]:
    """The shell of an insecure cluster: no certs to stage."""
    executor = session.ssh.executor(target.host)
    args = client_args(["sql"], host=target.rpc_addr, cluster_name=session.topology.effective_cluster_name)
    cmd = Command.of(target.binary, *args, "--insecure", sudo=True)
    remote = cmd.render(use_sudo=cmd.sudo and not executor.is_root)
    return [*session.ssh.base_argv(), "-t", "--", target.host, remote]


async def _attach(argv: list[str]) -> int:
    """Run `argv` on this terminal (foreground process group: it must be able to read the tty)."""
    proc = await asyncio.create_subprocess_exec(*argv)
    try:
        return await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _cleanup(session: Session, target: NodeTarget, certs_dir: str) -> None:
    """Remove the staged dir (again): the trap cannot run when the connection died first."""
    cmd = Command.of("rm", "-rf", "--", certs_dir, sudo=True)
    # Unreachable now: /run is a tmpfs, so a reboot clears it at the latest.
    with contextlib.suppress(TransportError):
        await session.ssh.executor(target.host).run(cmd, timeout=30, check=False)


async def first_ready(session: Session) -> NodeTarget:
    """The first node (topology order) that answers /health?ready=1."""
    for target in targets(session):
        if (await probe_ready(session, target, timeout=5)).ready:
            return target
    name = session.topology.name
    raise RefusedError(f"no node of {name} is ready", hint=f"start it: roachctl start {name}")


async def run_statements(session: Session, statements: Sequence[str], fmt: str) -> str:
    """`roachctl sql CLUSTER -e ...`: the statements' output, run on a ready node as root.

    The statements go on stdin, never in argv (`ps`, sudo's log; contract §10).
    """
    target = await first_ready(session)
    args = ["sql", f"--format={fmt}"]
    result = await NodeClient(session).run(target, args, timeout=300, input=sql_stdin(statements))
    if not result.ok:
        raise RemoteCommandError(
            result.err.strip() or "sql failed", where=target.host, returncode=result.returncode
        )
    return result.out


async def shell(session: Session) -> None:
    """`roachctl sql CLUSTER` without -e: the interactive shell on a ready node; fails with its code."""
    code = await interactive_sql(session, await first_ready(session))
    if code != 0:
        raise RemoteCommandError(f"the SQL shell exited with code {code}", returncode=code)
