"""Small pure helpers of drift, debug-zip (no hosts)."""

from __future__ import annotations

import io
import tarfile
import zipfile

from roachctl.cluster.debugzip import add_tar, zip_args
from roachctl.engine.drift import HostDrift
from roachctl.plan.clientargv import client_args
from roachctl.plan.state import Change, ChangeKind


def test_zip_args_keep_stacks_off_unless_asked() -> None:
    args = zip_args("/var/tmp/d/debug.zip", redact=False, goroutine_stacks=False)
    assert args == ["debug", "zip", "/var/tmp/d/debug.zip", "--include-goroutine-stacks=false"]
    assert zip_args("f", redact=True, goroutine_stacks=True)[-2:] == [
        "--include-goroutine-stacks=true",
        "--redact",
    ]
    assert client_args(args, host="h:26257", cluster_name="prod")[-1] == "--cluster-name=prod"


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("./cockroach.log.link")
        link.type, link.linkname = tarfile.SYMTYPE, "cockroach.log"
        tar.addfile(link)
    return buf.getvalue()


def test_down_node_logs_stay_under_their_prefix() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        added = add_tar(
            dst, _tar({"./cockroach.log": b"x", "./../../etc/passwd": b"no"}), "debug/down-nodes/h3/logs"
        )
    assert added == 1
    assert zipfile.ZipFile(out).namelist() == ["debug/down-nodes/h3/logs/cockroach.log"]


def test_drift_json() -> None:
    change = Change("h1", ChangeKind.WRITE_FILE, "/etc/systemd/system/cockroach.service", "content differs")
    assert HostDrift("h1").to_json() == {"converged": True, "changes": [], "error": None}
    drifted = HostDrift("h1", [change]).to_json()
    assert drifted["converged"] is False and drifted["changes"] == [
        {"kind": "write-file", "target": "/etc/systemd/system/cockroach.service", "reason": "content differs"}
    ]
    assert HostDrift("h2", error="unreachable").to_json()["converged"] is False
