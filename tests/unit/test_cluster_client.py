"""The ephemeral-certs client runner, executed for real by a local sh (awk, mktemp, trap)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from roachctl.cluster.client import bundle, client_call

# A fake "cockroach" that reports what it saw: its args and the certs dir's files and modes.
PROBE = r"""
import os, sys
certs = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--certs-dir=")][0]
print("args", " ".join(a for a in sys.argv[1:] if not a.startswith("--certs-dir=")))
print("dir", certs, oct(os.stat(certs).st_mode & 0o777))
for name in sorted(os.listdir(certs)):
    p = os.path.join(certs, name)
    print("file", name, oct(os.stat(p).st_mode & 0o777), open(p).read().strip())
if os.environ.get("PROBE_STDIN"):
    print("stdin", repr(sys.stdin.read()), oct(os.stat(certs + ".in").st_mode & 0o777))
sys.exit(int(os.environ.get("PROBE_EXIT", "0")))
"""


@pytest.fixture
def probe(tmp_path: Path) -> str:
    path = tmp_path / "cockroach"
    path.write_text(f"#!{sys.executable}\n{PROBE}")
    path.chmod(0o755)
    return str(path)


def _run(
    call_argv: list[str], stdin: bytes | None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        call_argv,
        input=(stdin or b"").decode(),
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=30,
        check=False,
    )


@pytest.mark.skipif(not os.access("/run", os.W_OK), reason="needs a writable /run (root)")
def test_certs_exist_only_during_the_command(probe: str) -> None:
    call = client_call(
        probe,
        ["node", "status", "--host=h1:26257"],
        ca_pem=b"CA",
        client_cert_pem=b"CRT",
        client_key_pem=b"KEY",
        sudo=False,
    )
    result = _run([str(a) for a in call.command.argv], call.stdin)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "args node status --host=h1:26257"
    certs_dir = lines[1].split()[1]
    assert certs_dir.startswith("/run/roachctl-client.") and lines[1].endswith("0o700")
    assert "file ca.crt 0o600 CA" in lines
    assert "file client.root.key 0o600 KEY" in lines
    assert not Path(certs_dir).exists(), "ephemeral certs dir must be removed"


@pytest.mark.skipif(not os.access("/run", os.W_OK), reason="needs a writable /run (root)")
def test_failure_exit_code_is_kept_and_dir_removed(probe: str) -> None:
    call = client_call(probe, ["init"], ca_pem=b"CA", client_cert_pem=b"C", client_key_pem=b"K", sudo=False)
    result = _run([str(a) for a in call.command.argv], call.stdin, env={"PROBE_EXIT": "1"})
    assert result.returncode == 1
    certs_dir = result.stdout.splitlines()[1].split()[1]
    assert not Path(certs_dir).exists()


def test_insecure_has_no_stdin_and_no_certs() -> None:
    call = client_call("/opt/cockroach/cockroach", ["init", "--host=h1:26257"], ca_pem=None)
    assert call.stdin is None
    assert call.command.argv[-1] == "--insecure"


def test_keys_never_in_argv() -> None:
    call = client_call(
        "/x/cockroach", ["init"], ca_pem=b"CA", client_cert_pem=b"C", client_key_pem=b"SECRETKEY"
    )
    assert all("SECRETKEY" not in str(a) for a in call.command.argv)
    assert b"SECRETKEY" in (call.stdin or b"")


def test_bundle_refuses_path_names() -> None:
    with pytest.raises(ValueError):
        bundle({"../evil": b"x"})


@pytest.mark.skipif(not os.access("/run", os.W_OK), reason="needs a writable /run (root)")
def test_input_follows_the_certs_on_stdin_verbatim_and_is_removed(probe: str) -> None:
    """docs/findings.md S-M7: SQL reaches the command on its stdin, never in argv; its file goes with
    the certs."""
    sql = b"ALTER USER app WITH PASSWORD 'hunter2';\n#roachctl-file client.root.key\nSELECT 1;\n"
    call = client_call(
        probe,
        ["sql", "--format=csv"],
        ca_pem=b"CA",
        client_cert_pem=b"C",
        client_key_pem=b"K",
        sudo=False,
        input=sql,
    )
    assert all("hunter2" not in str(a) for a in call.command.argv)
    result = _run([str(a) for a in call.command.argv], call.stdin, env={"PROBE_STDIN": "1"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "args sql --format=csv"
    assert f"stdin {sql.decode()!r} 0o600" in lines  # verbatim: a header-like line stays input
    assert "file client.root.key 0o600 K" in lines  # ... and does not overwrite a cert file
    certs_dir = lines[1].split()[1]
    assert not Path(certs_dir).exists() and not Path(certs_dir + ".in").exists()


def test_insecure_input_is_the_stdin_itself() -> None:
    call = client_call("/x/cockroach", ["sql"], ca_pem=None, input=b"SELECT 1;\n")
    assert call.stdin == b"SELECT 1;\n" and "SELECT" not in " ".join(map(str, call.command.argv))
