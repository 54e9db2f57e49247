"""tests/standin/make_release.py: layout, modes, ownership, checksum, reproducibility, validation."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.standin import make_release

SCRIPT = Path(make_release.__file__)
DUMMY = (
    "#!/usr/bin/env python3\nimport sys\nBAKED_VERSION = None  # replaced by make_release.py\n"
    "print(BAKED_VERSION)\n"
)


@pytest.fixture
def standin(tmp_path: Path) -> Path:
    path = tmp_path / "standin"
    path.write_text(DUMMY)
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_layout_modes_owner(tmp_path: Path, standin: Path, arch: str) -> None:
    out = tmp_path / "out"
    res = run("v25.4.0", str(out), "--arch", arch, "--standin", str(standin))
    assert res.returncode == 0, res.stderr
    tgz = out / f"cockroach-v25.4.0.linux-{arch}.tgz"
    assert res.stdout.strip() == str(tgz)
    top = f"cockroach-v25.4.0.linux-{arch}"
    with tarfile.open(tgz) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {
            top,
            f"{top}/cockroach",
            f"{top}/lib",
            f"{top}/lib/libgeos.so",
            f"{top}/lib/libgeos_c.so",
        }
        binary = members[f"{top}/cockroach"]
        assert binary.isfile() and binary.mode == 0o755
        for m in members.values():
            assert (m.uid, m.gid) == (1002, 1003), m.name
            assert m.mtime == make_release.MTIME
        for lib in ("libgeos.so", "libgeos_c.so"):
            assert members[f"{top}/lib/{lib}"].isfile() and members[f"{top}/lib/{lib}"].size > 0
        f = tar.extractfile(binary)
        assert f is not None
        text = f.read().decode()
    assert 'BAKED_VERSION = "v25.4.0"' in text
    assert "BAKED_VERSION = None" not in text
    assert text.startswith("#!/usr/bin/env python3\n")


def test_checksum_file_matches(tmp_path: Path, standin: Path) -> None:
    tgz = make_release.build("v25.2.0", tmp_path, "amd64", standin)
    sumfile = tmp_path / "cockroach-v25.2.0.linux-amd64.tgz.sha256sum"
    content = sumfile.read_text()
    digest = hashlib.sha256(tgz.read_bytes()).hexdigest()
    assert content == f"{digest}  cockroach-v25.2.0.linux-amd64.tgz\n"
    # the format `sha256sum -c` accepts
    res = subprocess.run(
        ["sha256sum", "-c", sumfile.name], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_corruption_detected_by_checksum(tmp_path: Path, standin: Path) -> None:
    tgz = make_release.build("v25.2.0", tmp_path, "amd64", standin)
    data = bytearray(tgz.read_bytes())
    data[len(data) // 2] ^= 0x01
    tgz.write_bytes(bytes(data))
    res = subprocess.run(
        ["sha256sum", "-c", f"{tgz.name}.sha256sum"], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert res.returncode != 0
    assert "FAILED" in res.stdout


def test_reproducible(tmp_path: Path, standin: Path) -> None:
    a = make_release.build("v25.4.0", tmp_path / "a", "arm64", standin)
    b = make_release.build("v25.4.0", tmp_path / "b", "arm64", standin)
    assert a.read_bytes() == b.read_bytes()
    c = make_release.build("v25.2.0", tmp_path / "c", "arm64", standin)
    assert c.read_bytes() != a.read_bytes()


@pytest.mark.parametrize("version", ["25.4.0", "v25.4", "v25.4.0 ", "v25.4.0-", "v25.4.0/x", "latest", ""])
def test_invalid_version_rejected(tmp_path: Path, standin: Path, version: str) -> None:
    res = run(version, str(tmp_path), "--standin", str(standin))
    assert res.returncode != 0
    assert "invalid version" in res.stderr
    assert not list(tmp_path.glob("*.tgz"))


@pytest.mark.parametrize("version", ["v25.4.0", "v24.1.12", "v25.4.0-beta.1", "v26.1.0-alpha.2"])
def test_valid_versions(tmp_path: Path, standin: Path, version: str) -> None:
    assert run(version, str(tmp_path), "--standin", str(standin)).returncode == 0


def test_missing_standin_clear_error(tmp_path: Path) -> None:
    res = run("v25.4.0", str(tmp_path), "--standin", str(tmp_path / "nope"))
    assert res.returncode == 2
    assert "stand-in not found" in res.stderr


def test_standin_without_bake_line_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_text("#!/usr/bin/env python3\nprint('x')\n")
    res = run("v25.4.0", str(tmp_path / "o"), "--standin", str(bad))
    assert res.returncode == 2
    assert "BAKED_VERSION" in res.stderr


def test_real_standin_prints_baked_version(tmp_path: Path) -> None:
    if not make_release.STANDIN.is_file():
        pytest.skip("tests/standin/cockroach not written yet")
    tgz = make_release.build("v25.4.0", tmp_path, make_release.host_arch())
    with tarfile.open(tgz) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    binary = tmp_path / "x" / f"cockroach-v25.4.0.linux-{make_release.host_arch()}" / "cockroach"
    res = subprocess.run([str(binary), "version", "--build-tag"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "v25.4.0\n"


def test_padded_release_has_a_realistic_size_and_compressibility(tmp_path: Path, standin: Path) -> None:
    """--pad-mb: the tarball about N MiB, the binary about N / ratio (a real release's binary is several
    times its tarball), byte-identical on a rebuild, and the binary still the stand-in."""
    a = make_release.build_padded("v25.4.0", tmp_path / "a", "amd64", tarball_mb=2, gzip_ratio=0.3,
                                  standin=standin)  # fmt: skip
    b = make_release.build_padded("v25.4.0", tmp_path / "b", "amd64", tarball_mb=2, gzip_ratio=0.3,
                                  standin=standin)  # fmt: skip
    assert a.read_bytes() == b.read_bytes()
    assert abs(a.stat().st_size - (2 << 20)) < (2 << 20) * 0.03, a.stat().st_size
    assert a.with_name(a.name + ".sha256sum").read_text() == (
        f"{hashlib.sha256(a.read_bytes()).hexdigest()}  {a.name}\n"
    )
    with tarfile.open(a) as tar:
        tar.extractall(tmp_path / "x", filter="data")
        names = sorted(tar.getnames())
    assert names == sorted(make_release.release_name("v25.4.0", "amd64") + p for p in
                           ("", "/cockroach", "/lib", "/lib/libgeos.so", "/lib/libgeos_c.so"))  # fmt: skip
    binary = tmp_path / "x" / "cockroach-v25.4.0.linux-amd64" / "cockroach"
    assert abs(binary.stat().st_size - (2 << 20) / 0.3) < 1 << 16, binary.stat().st_size
    res = subprocess.run([sys.executable, str(binary)], capture_output=True, text=True, timeout=30)
    assert (res.returncode, res.stdout) == (0, "v25.4.0\n"), res.stderr
    res = run("v25.4.0", str(tmp_path / "c"), "--arch", "amd64", "--standin", str(standin), "--pad-mb", "2")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "c" / a.name).read_bytes() == a.read_bytes()
