"""Run `cockroach` client commands (init, node status/drain, sql) on a node, without leaving keys.

Client commands need ca.crt + client.root.crt/key (contract §3, §5, §10), and nodes must never
hold a client key (issue #4). So each call streams a short-lived client cert (minted by the
controller, see ClusterHome.ephemeral_client) through ssh stdin into a private `mktemp -d` under
/run (tmpfs: never on disk), runs the command with `--certs-dir` pointing there, and removes the
directory on exit — success, failure or signal alike. Keys never appear in argv (no `ps` leak),
nor does a command's input (SQL statements): it follows the certs on the same stdin.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from roachctl.exec.command import Command
from roachctl.tls import store

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*\Z")

# Shell fragments shared by every command that receives client certs over stdin: a fresh private
# directory `$d` under /run, then the files framed by "#roachctl-file NAME" (see `bundle`) unpacked
# into it. The directory prefix is filled in by `make_dir`.
_MAKE_DIR = """
umask 077
d=$(mktemp -d @PREFIX@XXXXXXXX) || exit 70
"""
UNPACK_CERTS = r"""
pat='^#roachctl-file [a-z0-9][a-z0-9._-]*$'
awk -v d="$d" -v pat="$pat" '$0 ~ pat { f = d "/" $2; next } f != "" { print > f }' \
  || { rm -rf -- "$d"; exit 70; }
"""


def make_dir(prefix: str) -> str:
    """The fragment creating the private dir `$d` named `<prefix>XXXXXXXX` (prefix: a constant of ours)."""
    return _MAKE_DIR.replace("@PREFIX@", prefix)


# The marker after the cert files of a client call with input: every line after it, verbatim (no
# line is taken for a file header), is the command's stdin, kept in `$d.in` (0600, /run) beside the
# certs dir (not in it: cockroach scans the certs dir) and removed with it.
INPUT_MARKER = "#roachctl-stdin"
_UNPACK_CERTS_AND_INPUT = r"""
pat='^#roachctl-file [a-z0-9][a-z0-9._-]*$'
awk -v d="$d" -v in_="$d.in" -v pat="$pat" -v mark="@MARK@" '
  raw { print > in_; next }
  $0 == mark { raw = 1; printf "" > in_; next }
  $0 ~ pat { f = d "/" $2; next }
  f != "" { print > f }' || exit 70
""".replace("@MARK@", INPUT_MARKER)

# $1 = cockroach binary; $2... = its arguments. stdin = the framed cert files, then optionally
# INPUT_MARKER and the command's own input (e.g. SQL: never in argv, docs/findings.md S-M7).
_SECURE_SCRIPT = (
    make_dir("/run/roachctl-client.")
    + """trap 'rm -rf -- "$d" "$d.in"' EXIT
trap 'exit 130' HUP INT TERM
"""
    + _UNPACK_CERTS_AND_INPUT
    + """bin=$1
shift
if [ -f "$d.in" ]; then
  "$bin" "$@" --certs-dir="$d" <"$d.in"
else
  "$bin" "$@" --certs-dir="$d"
fi
"""
)


@dataclass(frozen=True)
class ClientCall:
    """A command plus the bytes to feed on its stdin."""

    command: Command
    stdin: bytes | None


def bundle(files: dict[str, bytes]) -> bytes:
    """Frame PEM files for the remote awk splitter."""
    out = bytearray()
    for name, data in files.items():
        if not _NAME.match(name):
            raise ValueError(f"bad cert file name {name!r}")
        out += f"#roachctl-file {name}\n".encode() + data.rstrip(b"\n") + b"\n"
    return bytes(out)


def client_call(
    binary: str,
    args: Sequence[str],
    *,
    ca_pem: bytes | None,
    client_cert_pem: bytes | None = None,
    client_key_pem: bytes | None = None,
    user: str = "root",
    sudo: bool = True,
    input: bytes | None = None,
) -> ClientCall:
    """Build the call for `binary args...` with ephemeral certs, or `--insecure` when ca_pem is None.

    `input` is the command's stdin (e.g. SQL statements): it travels over ssh stdin, after the
    certs, and never appears in any argv.
    """
    if ca_pem is None:
        return ClientCall(Command.of(binary, *args, "--insecure", sudo=sudo), input)
    if client_cert_pem is None or client_key_pem is None:
        raise ValueError("a secure client call needs a client certificate and key")
    files = {
        store.CA_CERT: ca_pem,
        store.client_cert_name(user): client_cert_pem,
        store.client_key_name(user): client_key_pem,
    }
    command = Command.shell(_SECURE_SCRIPT, binary, *args, sudo=sudo, name="roachctl-client")
    stdin = bundle(files)
    if input is not None:
        stdin += f"{INPUT_MARKER}\n".encode() + input
    return ClientCall(command, stdin)
