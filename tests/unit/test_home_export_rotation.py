"""The home's CA rotation state (signing CA, trust bundle, finish) and `home export`/`import`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from roachctl import fsutil
from roachctl.errors import RefusedError, UsageError
from roachctl.operation import homeexport
from roachctl.operation.home import ClusterHome, ClusterState
from roachctl.operation.lock import controller_lock
from roachctl.tls import inspect, pki, store

PASS = "correct horse battery"


@pytest.fixture
def home(tmp_path: Path) -> ClusterHome:
    h = ClusterHome(tmp_path / "home", "prod")
    h.begin_new_ca()
    h.commit_new_ca()
    h.save_state(ClusterState(name="prod", hosts=["n1"]))
    h.node_cert("n1", ["n1", "10.0.0.1"])
    h.operator_certs()
    return h


def test_rotation_phases_move_signer_and_trust_then_finish(home: ClusterHome) -> None:
    old = home.ca()
    new = home.begin_ca_rotation()
    assert home.rotation_phase() == 1
    assert home.ca().cert_pem() == old.cert_pem()  # phase 1: nodes may not trust the new CA yet
    assert home.node_ca_pem() == home.trust_pem() == new.cert_pem() + old.cert_pem()
    home.set_rotation_phase(2)
    assert home.ca().cert_pem() == new.cert_pem()
    home.operator_certs()
    client = (home.certs_dir / store.client_cert_name("root")).read_bytes()
    assert inspect.issued_by(inspect.load_pems(client)[0], [new.cert]) is not None
    assert (home.certs_dir / store.CA_CERT).read_bytes() == new.cert_pem() + old.cert_pem()
    home.set_rotation_phase(3)
    assert home.node_ca_pem() == new.cert_pem()
    retired = home.finish_ca_rotation()
    assert home.rotation_phase() == 0 and (retired / "old.key").is_file()
    assert ClusterHome(home.root, "prod").ca().cert_pem() == new.cert_pem()
    assert home.trust_pem() == new.cert_pem()


def test_a_half_finished_rotation_end_still_pairs_key_and_cert(home: ClusterHome) -> None:
    new = home.begin_ca_rotation()
    home.set_rotation_phase(3)
    (home.rotation_dir / store.CA_KEY).replace(home.ca_dir / store.CA_KEY)  # crash after the key moved
    assert ClusterHome(home.root, "prod").ca().cert_pem() == new.cert_pem()


def test_a_crash_while_beginning_leaves_nothing_that_blocks_a_rerun(
    home: ClusterHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_rename = os.rename

    def crash(src: object, dst: object) -> None:
        raise OSError("crash before rotation/ appears")

    monkeypatch.setattr(os, "rename", crash)
    with pytest.raises(OSError):
        home.begin_ca_rotation()
    monkeypatch.setattr(os, "rename", real_rename)
    assert home.rotation_phase() == 0 and not home.rotation_dir.exists()
    new = home.begin_ca_rotation()
    assert home.rotation_phase() == 1 and home.new_ca().cert_pem() == new.cert_pem()


def test_a_rotation_dir_without_state_is_set_aside(home: ClusterHome) -> None:
    home.rotation_dir.mkdir()
    (home.rotation_dir / "old.key").write_bytes(b"left by a crash")
    new = home.begin_ca_rotation()
    assert home.new_ca().cert_pem() == new.cert_pem()
    assert any(p.name.startswith("abandoned-") for p in home.ca_dir.iterdir())


@pytest.mark.parametrize("crash_at", [1, 2, 3])  # after 0, 1 or 2 files were copied, or before the rename
def test_a_crash_while_finishing_is_finished_by_a_rerun(
    home: ClusterHome, monkeypatch: pytest.MonkeyPatch, crash_at: int
) -> None:
    new = home.begin_ca_rotation()
    home.set_rotation_phase(3)
    calls: list[int] = []
    real_rename = os.rename

    def write(path: Path, data: bytes, mode: int = 0o644) -> None:
        calls.append(1)
        if len(calls) == crash_at:
            raise OSError("crash")
        fsutil.atomic_write(path, data, mode)

    def rename(src: Path, dst: Path) -> None:
        if crash_at == 3:
            raise OSError("crash")
        real_rename(src, dst)

    monkeypatch.setattr("roachctl.operation.home.atomic_write", write)
    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError):
        home.finish_ca_rotation()
    monkeypatch.undo()
    fresh = ClusterHome(home.root, "prod")
    assert fresh.rotation_phase() == 3
    assert fresh.ca().cert_pem() == fresh.new_ca().cert_pem() == new.cert_pem()
    fresh.operator_certs()
    fresh.finish_ca_rotation()
    assert ClusterHome(home.root, "prod").ca().cert_pem() == new.cert_pem()
    assert fresh.rotation_phase() == 0


def test_a_new_ca_other_than_the_recorded_one_is_refused(home: ClusterHome) -> None:
    home.begin_ca_rotation()
    other = pki.create_ca()
    (home.rotation_dir / store.CA_CERT).write_bytes(other.cert_pem())
    (home.rotation_dir / store.CA_KEY).write_bytes(other.key_pem())
    with pytest.raises(RefusedError, match="not the one this rotation began with"):
        home.new_ca()


def test_export_import_round_trip_refuses_overwrite_and_wrong_passphrase(
    home: ClusterHome, tmp_path: Path
) -> None:
    out = tmp_path / "prod.rce"
    homeexport.export_home(home, out, PASS)
    assert out.stat().st_mode & 0o777 == 0o600
    assert b"BEGIN" not in out.read_bytes()  # the CA key is not readable in the file
    with pytest.raises(RefusedError):
        homeexport.export_home(home, out, PASS)  # never over an existing file
    with pytest.raises(RefusedError, match="wrong passphrase"):
        homeexport.read_export(out, "not the passphrase")
    with pytest.raises(RefusedError, match="already has an entry"):
        homeexport.import_home(home.root, out, PASS, force=False)
    other = tmp_path / "other-home"
    restored = homeexport.import_home(other, out, PASS, force=False)
    assert restored.ca().cert_pem() == home.ca().cert_pem()
    assert (restored.ca_dir / store.CA_KEY).stat().st_mode & 0o077 == 0
    homeexport.import_home(home.root, out, PASS, force=True)
    assert any(p.name.startswith(".prod.replaced-") for p in (home.root / "clusters").iterdir())
    assert ClusterHome(home.root, "prod").ca().cert_pem() == restored.ca().cert_pem()


def test_an_altered_export_is_refused(home: ClusterHome, tmp_path: Path) -> None:
    out = tmp_path / "prod.rce"
    homeexport.export_home(home, out, PASS)
    data = bytearray(out.read_bytes())
    data[-5] ^= 1
    out.write_bytes(bytes(data))
    with pytest.raises(RefusedError):
        homeexport.read_export(out, PASS)
    with pytest.raises(UsageError, match="at least"):
        homeexport.export_home(home, tmp_path / "x.rce", "short")
    with pytest.raises(UsageError, match="at least 12"):
        homeexport.export_home(home, tmp_path / "x.rce", "elevenchars")


def test_scrypt_parameters_beyond_256_mib_are_refused_before_deriving(tmp_path: Path) -> None:
    header = {
        "cluster": "prod",
        "kdf": "scrypt",
        "n": 2**18,
        "r": 16,
        "p": 1,
        "salt": "AAAA",
        "nonce": "AAAA",
    }
    path = tmp_path / "big.rce"
    path.write_bytes(homeexport.MAGIC + json.dumps(header).encode() + b"\n" + b"x" * 32)
    with pytest.raises(UsageError, match="more than 256 MiB"):
        homeexport.read_export(path, PASS)


def test_export_waits_for_no_one_and_refuses_while_the_cluster_is_locked(
    home: ClusterHome, tmp_path: Path
) -> None:
    with controller_lock(home.root, "prod", "certs-rotate"), pytest.raises(RefusedError):
        homeexport.export_home(home, tmp_path / "locked.rce", PASS)
    assert not (tmp_path / "locked.rce").exists()


def test_exclusive_write_without_hard_links_still_never_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(src: Path, dst: Path) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    target = tmp_path / "k.key"
    fsutil.exclusive_write(target, b"secret", 0o600)
    assert target.read_bytes() == b"secret" and target.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        fsutil.exclusive_write(target, b"other", 0o600)
    assert target.read_bytes() == b"secret"
    assert [p.name for p in tmp_path.iterdir()] == ["k.key"]  # no temp file left
