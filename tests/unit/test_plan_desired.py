"""Desired host state: layout, owners and modes, certificates, release and inputs checking."""

from __future__ import annotations

import hashlib

import pytest

from roachctl.errors import RefusedError
from roachctl.plan.desired import desired_state, desired_states, file_spec, node_addresses, release_spec
from roachctl.plan.state import DirSpec
from tests.support.plan_helpers import CERTS, FakeRelease, base_data, release, state_for, topology


def _dirs(state_dirs: tuple[DirSpec, ...]) -> dict[str, tuple[int, str, str, bool]]:
    return {d.path: (d.mode, d.owner, d.group, d.create_parents) for d in state_dirs}


def test_layout_modes_and_owners() -> None:
    state = state_for(topology())
    assert _dirs(state.dirs) == {
        "/opt/cockroach": (0o755, "root", "root", True),
        "/opt/cockroach/certs": (0o750, "root", "cockroach", True),
        "/var/lib/cockroach": (0o700, "cockroach", "cockroach", True),
        "/var/lib/cockroach/logs": (0o700, "cockroach", "cockroach", True),
        "/var/lib/cockroach/cockroach-data": (0o700, "cockroach", "cockroach", True),
        "/etc/roachctl": (0o755, "root", "root", True),
    }
    assert [(link.path, link.target) for link in state.links] == [
        ("/opt/cockroach/cockroach", "/opt/cockroach-v25.4.0.linux-amd64/cockroach"),
        ("/opt/cockroach/lib", "/opt/cockroach-v25.4.0.linux-amd64/lib"),
    ]
    assert (state.user.name, state.user.home) == ("cockroach", "/var/lib/cockroach")
    unit = state.units[0]
    assert (unit.name, unit.file.path, unit.file.mode, unit.file.owner, unit.enabled) == (
        "cockroach.service", "/etc/systemd/system/cockroach.service", 0o644, "root", True,
    )  # fmt: skip


def test_cert_files_modes_and_secret_flag() -> None:
    files = {f.path.rsplit("/", 1)[1]: f for f in state_for(topology()).files}
    assert sorted(files) == ["ca.crt", "node.crt", "node.key"]
    # Root's files in root's dir: the service user reads them, never replaces them (docs/findings.md S-H1);
    # the key's root:<svc> 0640 is within contract §7's 0740 rule for root-owned keys.
    key = files["node.key"]
    assert (key.mode, key.owner, key.group, key.secret) == (0o640, "root", "cockroach", True)
    for crt in ("ca.crt", "node.crt"):
        assert (files[crt].mode, files[crt].owner, files[crt].group, files[crt].secret) == (
            0o644, "root", "root", False,
        )  # fmt: skip
    assert files["node.crt"].sha256 == hashlib.sha256(CERTS["node.crt"]).hexdigest()


def test_client_certs_allowed_ca_key_refused() -> None:
    t = topology()
    extra = {**CERTS, "client.root.crt": b"c", "client.root.key": b"k"}
    s = desired_state(t, "store-1", release=release(t), certs=extra)
    assert {f.path.rsplit("/", 1)[1]: f.secret for f in s.files}["client.root.key"] is True
    with pytest.raises(ValueError, match="CA key never leaves"):
        desired_state(t, "store-1", release=release(t), certs={**CERTS, "ca.key": b"x"})
    with pytest.raises(ValueError, match=r"missing certificate files: node\.key"):
        desired_state(t, "store-1", release=release(t), certs={"ca.crt": b"", "node.crt": b""})
    with pytest.raises(ValueError, match="unexpected"):
        desired_state(t, "store-1", release=release(t), certs={**CERTS, "../x.crt": b""})


def test_insecure_has_no_certs() -> None:
    t = topology(secure=False)
    state = state_for(t)
    assert state.files == () and "/opt/cockroach/certs" not in _dirs(state.dirs)
    with pytest.raises(ValueError, match="insecure"):
        desired_state(t, "store-1", release=release(t), certs=CERTS)


def test_external_stores_do_not_create_mount_points() -> None:
    data = base_data()
    data["nodes"][0]["stores"] = ["/var/lib/cockroach/s1", "/mnt/ssd1/crdb"]
    dirs = _dirs(state_for(topology(data), backend="none").dirs)
    assert dirs["/var/lib/cockroach/s1"][3] is True
    assert dirs["/mnt/ssd1/crdb"] == (0o700, "cockroach", "cockroach", False)
    assert "/etc/roachctl" not in dirs


def test_release_spec_from_release() -> None:
    t = topology()
    spec = release_spec(t, FakeRelease(arch="arm64"))
    assert spec.install_dir == "/opt/cockroach-v25.4.0.linux-arm64"
    assert spec.tarball_name == "cockroach-v25.4.0.linux-arm64.tgz"
    with pytest.raises(ValueError, match="not the topology's version"):
        release_spec(t, FakeRelease(version="v24.1.0"))
    binary_only = FakeRelease()
    binary_only.tarball = None  # type: ignore[assignment]
    binary_only.tarball_sha256 = None
    assert release_spec(t, binary_only).tarball_sha256 == ""


def test_unknown_host_and_incomplete_inputs() -> None:
    t = topology()
    with pytest.raises(KeyError):
        state_for(t, "nope")
    releases = {n.host: release(t) for n in t.nodes}
    with pytest.raises(RefusedError):
        desired_states(t, releases=releases, certs={}, firewall_backends={n.host: "none" for n in t.nodes})
    states = desired_states(
        t,
        releases=releases,
        certs={n.host: CERTS for n in t.nodes},
        firewall_backends={n.host: "nftables" for n in t.nodes},
    )
    assert list(states) == ["store-1", "store-2", "store-3"]


def test_deterministic() -> None:
    t = topology()
    assert state_for(t) == state_for(t)


def test_node_addresses_for_certificates() -> None:
    assert node_addresses(topology(), "store-2") == ["10.0.0.12", "store-2", "localhost", "127.0.0.1", "::1"]


def test_file_spec_hashes_content() -> None:
    spec = file_spec("/x", b"abc", 0o600, secret=True)
    assert spec.sha256 == hashlib.sha256(b"abc").hexdigest() and spec.secret
