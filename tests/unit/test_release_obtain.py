"""release.obtain: download, verify, cache, and refuse — against a real local HTTP server."""

from __future__ import annotations

import io
import json
import re
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from roachctl import release
from roachctl.errors import ExitCode, ReleaseError, UsageError
from roachctl.release.names import parse_tarball_name
from roachctl.ui import console as console_mod
from roachctl.ui.env import Environment
from tests.support.release_support import (
    Member,
    Mirror,
    build_tgz,
    release_members,
    sha,
    write_release,
)

V = "v25.4.0"
STEM = f"cockroach-{V}.linux-amd64"


@pytest.fixture
def mirror() -> Iterator[Mirror]:
    m = Mirror().start()
    yield m
    m.stop()


def _cache_entries(home: Path) -> list[str]:
    root = home / "cache" / "releases"
    return sorted(p.name for p in root.iterdir() if p.name != ".lock") if root.exists() else []


def _capture_console(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """Route roachctl's stderr console into a buffer (warnings are asserted on)."""
    out = io.StringIO()
    monkeypatch.setattr(
        console_mod, "_env", Environment(rich_console=Console(file=out, force_terminal=False, width=400))
    )
    return out


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_download_verifies_extracts_with_fixed_modes(tmp_path: Path, mirror: Mirror) -> None:
    data = mirror.publish(STEM)
    rel = release.obtain(
        V, home=tmp_path, arch="amd64", mirror=mirror.url, allow_insecure_mirror=True, progress=False
    )
    assert (rel.version, rel.arch) == (V, "amd64")
    assert rel.dir == tmp_path / "cache" / "releases" / STEM
    assert rel.binary == rel.dir / "cockroach"
    assert rel.tarball is not None and rel.tarball.read_bytes() == data
    assert rel.tarball_sha256 == sha(data)
    assert rel.binary_sha256 == sha(rel.binary.read_bytes())
    assert stat.S_IMODE(rel.binary.stat().st_mode) == 0o755
    assert stat.S_IMODE((rel.dir / "lib").stat().st_mode) == 0o755
    assert stat.S_IMODE((rel.dir / "lib" / "libgeos.so").stat().st_mode) == 0o644
    assert stat.S_IMODE((rel.dir / "lib" / "libgeos_c.so").stat().st_mode) == 0o644
    assert (rel.dir / "cockroach").stat().st_uid == (tmp_path.stat().st_uid)
    assert _cache_entries(tmp_path) == [STEM, f"{STEM}.json", f"{STEM}.tgz", f"{STEM}.tgz.sha256sum"]
    manifest = json.loads((tmp_path / "cache" / "releases" / f"{STEM}.json").read_text())
    assert manifest["release"]["binary_sha256"] == rel.binary_sha256
    assert mirror.requests == [f"{STEM}.tgz.sha256sum", f"{STEM}.tgz"]


def test_cached_release_is_reused_offline_with_a_warning(
    tmp_path: Path, mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _capture_console(monkeypatch)
    mirror.publish(STEM)
    first = release.obtain(
        V, home=tmp_path, arch="amd64", mirror=mirror.url, allow_insecure_mirror=True, progress=False
    )
    mirror.stop()  # the same source, now unreachable: the copy verified against it is used, loudly
    again = release.obtain(
        V, home=tmp_path, arch="amd64", mirror=mirror.url, allow_insecure_mirror=True, progress=False
    )
    assert again == first
    assert len(mirror.requests) == 2
    assert "warning: cannot re-check the cached" in out.getvalue()
    assert f"{mirror.url}/{STEM}.tgz.sha256sum" in out.getvalue()
    # Another source cannot vouch for it: offline, a copy cached from elsewhere is not used.
    with pytest.raises(ReleaseError, match="cannot download") as err:
        release.obtain(
            V,
            home=tmp_path,
            arch="amd64",
            mirror=_closed_port_url(),
            allow_insecure_mirror=True,
            progress=False,
        )
    assert f"came from {mirror.url}" in err.value.render()
    assert _cache_entries(tmp_path) == [STEM, f"{STEM}.json", f"{STEM}.tgz", f"{STEM}.tgz.sha256sum"]


def test_damaged_cache_is_discarded_and_fetched_again(tmp_path: Path, mirror: Mirror) -> None:
    mirror.publish(STEM)
    first = release.obtain(
        V, home=tmp_path, arch="amd64", mirror=mirror.url, allow_insecure_mirror=True, progress=False
    )
    first.binary.write_bytes(b"#!/bin/sh\necho tampered\n")
    again = release.obtain(
        V, home=tmp_path, arch="amd64", mirror=mirror.url, allow_insecure_mirror=True, progress=False
    )
    assert again.binary_sha256 == first.binary_sha256
    assert len(mirror.requests) == 4


def test_checksum_mismatch_keeps_nothing(tmp_path: Path, mirror: Mirror) -> None:
    mirror.publish(STEM, digest="0" * 64)
    with pytest.raises(ReleaseError, match="checksum mismatch") as err:
        release.obtain(
            V, home=tmp_path, arch="amd64", mirror=mirror.url, allow_insecure_mirror=True, progress=False
        )
    assert err.value.exit_code == ExitCode.BAD_INPUT
    assert _cache_entries(tmp_path) == []


def test_interrupted_download_keeps_nothing(tmp_path: Path, mirror: Mirror) -> None:
    mirror.publish(STEM)
    mirror.truncate.add(f"{STEM}.tgz")
    with pytest.raises(ReleaseError, match=r"truncated|cut short|interrupted"):
        release.obtain(
            V, home=tmp_path, arch="amd64", mirror=mirror.url, allow_insecure_mirror=True, progress=False
        )
    assert _cache_entries(tmp_path) == []


def test_truncated_archive_with_matching_checksum_is_refused(tmp_path: Path, mirror: Mirror) -> None:
    data = build_tgz(release_members(STEM))
    mirror.publish(STEM, data[: len(data) - 40])
    with pytest.raises(ReleaseError, match="truncated or corrupt"):
        release.obtain(
            V, home=tmp_path, arch="amd64", mirror=mirror.url, allow_insecure_mirror=True, progress=False
        )
    assert _cache_entries(tmp_path) == []


def test_not_published_is_a_clear_error(tmp_path: Path, mirror: Mirror) -> None:
    with pytest.raises(ReleaseError, match="HTTP 404"):
        release.obtain(
            "v99.1.0",
            home=tmp_path,
            arch="amd64",
            mirror=mirror.url,
            allow_insecure_mirror=True,
            progress=False,
        )
    assert _cache_entries(tmp_path) == []


def test_offline_error_names_every_alternative(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError) as err:
        release.obtain(
            V,
            home=tmp_path,
            arch="amd64",
            mirror=_closed_port_url(),
            allow_insecure_mirror=True,
            progress=False,
        )
    text = err.value.render()
    for flag in ("--mirror", "--tarball", "--binary", "ROACHCTL_MIRROR"):
        assert flag in text
    assert text.count("cannot") == 2  # one message ("cannot download ... cannot reach ...")
    assert _cache_entries(tmp_path) == []


def test_mirror_env_is_used(tmp_path: Path, mirror: Mirror, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror.publish(STEM)
    monkeypatch.setenv("ROACHCTL_MIRROR", mirror.url)
    with pytest.raises(UsageError, match="plain HTTP") as err:
        release.obtain(V, home=tmp_path, arch="amd64", progress=False)
    assert "--allow-insecure-mirror" in err.value.render() and mirror.requests == []
    monkeypatch.setenv("ROACHCTL_ALLOW_INSECURE_MIRROR", "1")
    assert release.obtain(V, home=tmp_path, arch="amd64", progress=False).version == V


def test_bad_checksum_file_is_refused(tmp_path: Path, mirror: Mirror) -> None:
    mirror.publish(STEM)
    mirror.files[f"{STEM}.tgz.sha256sum"] = f"{'a' * 64}  cockroach-v1.0.0.linux-amd64.tgz\n".encode()
    with pytest.raises(ReleaseError, match="checksum file is for"):
        release.obtain(
            V, home=tmp_path, arch="amd64", mirror=mirror.url, allow_insecure_mirror=True, progress=False
        )
    mirror.files[f"{STEM}.tgz.sha256sum"] = b"<html>oops</html> not a checksum\n"
    with pytest.raises(ReleaseError, match="fields"):
        release.obtain(
            V, home=tmp_path, arch="amd64", mirror=mirror.url, allow_insecure_mirror=True, progress=False
        )


def test_local_tarball_with_checksum_beside(tmp_path: Path) -> None:
    src = tmp_path / "dl"
    src.mkdir()
    tgz = write_release(src, STEM)
    rel = release.obtain(home=tmp_path / "home", arch="amd64", tarball=tgz, progress=False)
    assert rel.version == V and rel.tarball_sha256 == sha(tgz.read_bytes())


def test_local_tarball_needs_a_checksum(tmp_path: Path) -> None:
    tgz = write_release(tmp_path, STEM, checksum=False)
    with pytest.raises(ReleaseError, match="no checksum") as err:
        release.obtain(home=tmp_path / "home", arch="amd64", tarball=tgz, progress=False)
    assert "--sha256" in err.value.render()


def test_sha256_flag(tmp_path: Path) -> None:
    tgz = write_release(tmp_path, STEM, checksum=False)
    with pytest.raises(ReleaseError, match="checksum mismatch"):
        release.obtain(home=tmp_path / "home", arch="amd64", tarball=tgz, sha256="1" * 64, progress=False)
    assert _cache_entries(tmp_path / "home") == []
    with pytest.raises(ReleaseError, match="not a SHA-256"):
        release.obtain(home=tmp_path / "home", arch="amd64", tarball=tgz, sha256="xyz", progress=False)
    good = sha(tgz.read_bytes())
    rel = release.obtain(
        home=tmp_path / "home", arch="amd64", tarball=tgz, sha256=good.upper(), progress=False
    )
    assert rel.tarball_sha256 == good
    with pytest.raises(ReleaseError, match="checksum mismatch"):
        release.obtain(home=tmp_path / "home", arch="amd64", tarball=tgz, sha256="2" * 64, progress=False)


def test_sha256_flag_must_agree_with_published(tmp_path: Path, mirror: Mirror) -> None:
    mirror.publish(STEM)
    with pytest.raises(ReleaseError, match="differs from the published"):
        release.obtain(
            V,
            home=tmp_path,
            arch="amd64",
            mirror=mirror.url,
            allow_insecure_mirror=True,
            sha256="3" * 64,
            progress=False,
        )


def test_wrong_arch_tarball_name_is_refused(tmp_path: Path) -> None:
    tgz = write_release(tmp_path, f"cockroach-{V}.linux-arm64")
    with pytest.raises(ReleaseError, match="arm64 but this machine needs amd64"):
        release.obtain(home=tmp_path / "home", arch="amd64", tarball=tgz, progress=False)
    assert _cache_entries(tmp_path / "home") == []


def test_archive_for_another_arch_inside_is_refused(tmp_path: Path) -> None:
    data = build_tgz(release_members(f"cockroach-{V}.linux-arm64"))
    tgz = write_release(tmp_path, STEM, data)
    with pytest.raises(ReleaseError, match="a release for arm64"):
        release.obtain(home=tmp_path / "home", arch="amd64", tarball=tgz, progress=False)
    assert _cache_entries(tmp_path / "home") == []


UNSAFE = {
    "dotdot": [Member(f"{STEM}/../evil", data=b"x")],
    "absolute": [Member("/tmp/roachctl-evil", data=b"x")],
    "other-top": [Member("elsewhere/cockroach", data=b"x")],
    "symlink-escape": [Member(f"{STEM}/lib/up", "sym", link="../../../outside")],
    "symlink-absolute": [Member(f"{STEM}/lib/abs", "sym", link="/etc/passwd")],
    "symlink-chain": [
        Member(f"{STEM}/here", "sym", link="."),
        Member(f"{STEM}/out", "sym", link="here/../x"),
    ],
    "write-through-link": [
        Member(f"{STEM}/d", "sym", link="lib"),
        Member(f"{STEM}/dd", "sym", link="d/../.."),
        Member(f"{STEM}/dd/evil", data=b"x"),
    ],
    "hardlink-outside": [Member(f"{STEM}/lib/h", "hard", link="/etc/passwd")],
    "fifo": [Member(f"{STEM}/lib/pipe", "fifo")],
    "binary-is-link": [Member(f"{STEM}/cockroach", "sym", link="lib/libgeos.so")],
}

WHY = {
    "dotdot": "climbs out",
    "absolute": "absolute path",
    "other-top": "outside the expected top directory",
    "symlink-escape": "outside the release",
    "symlink-absolute": "links to absolute path",
    "symlink-chain": "outside the release",
    "write-through-link": "outside the release",
    "hardlink-outside": "not an earlier file",
    "fifo": "special file",
    "binary-is-link": "must be a regular file",
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_members_are_refused(tmp_path: Path, case: str) -> None:
    members = release_members(STEM)
    if case == "binary-is-link":
        members = [m for m in members if not m.name.endswith("/cockroach")]
    data = build_tgz(members[:3] + UNSAFE[case] + members[3:])
    (tmp_path / "src").mkdir()
    tgz = write_release(tmp_path / "src", STEM, data)
    home = tmp_path / "home"
    with pytest.raises(ReleaseError) as err:
        release.obtain(home=home, arch="amd64", tarball=tgz, progress=False)
    assert re.search(WHY[case], err.value.render()), err.value.render()
    assert _cache_entries(home) == []
    assert not (tmp_path / "outside").exists() and not (tmp_path / "x").exists()
    assert not (home / "cache" / "evil").exists()


def test_archive_without_binary_is_refused(tmp_path: Path) -> None:
    members = [m for m in release_members(STEM) if not m.name.endswith("/cockroach")]
    tgz = write_release(tmp_path, STEM, build_tgz(members))
    with pytest.raises(ReleaseError, match=r"no .*cockroach binary"):
        release.obtain(home=tmp_path / "home", arch="amd64", tarball=tgz, progress=False)


def test_version_and_names() -> None:
    assert release.normalize_version("25.4.0") == "v25.4.0"
    with pytest.raises(UsageError):
        release.normalize_version("v25.4/../x")
    assert parse_tarball_name(f"{STEM}.tgz").arch == "amd64"
    with pytest.raises(ReleaseError):
        parse_tarball_name("cockroach.tgz")
    assert release.DEFAULT_VERSION == "v25.4.0"


def test_tarball_version_must_match(tmp_path: Path) -> None:
    tgz = write_release(tmp_path, STEM)
    with pytest.raises(UsageError, match="does not match"):
        release.obtain("v24.1.0", home=tmp_path / "home", arch="amd64", tarball=tgz, progress=False)


def test_from_binary(tmp_path: Path) -> None:
    binary = tmp_path / "cockroach"
    binary.write_bytes(b"#!/bin/sh\n[ \"$1 $2\" = 'version --build-tag' ] && echo v25.4.0\n")
    binary.chmod(0o755)
    rel = release.from_binary(binary, arch="amd64")
    assert (rel.version, rel.tarball, rel.binary) == ("v25.4.0", None, binary.resolve())
    notexec = tmp_path / "plain"
    notexec.write_bytes(b"x")
    with pytest.raises(UsageError, match="not executable"):
        release.from_binary(notexec)
    elf = tmp_path / "armbin"
    elf.write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 11 + (0xB7).to_bytes(2, "little") + b"\0" * 40)
    elf.chmod(0o755)
    with pytest.raises(ReleaseError, match="built for arm64"):
        release.from_binary(elf, arch="amd64")
    broken = tmp_path / "broken"
    broken.write_bytes(b"#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(UsageError, match="not a working cockroach"):
        release.from_binary(broken, arch="amd64")
