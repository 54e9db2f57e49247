"""release: provenance, mirror trust and size bounds (docs/findings.md S-H3, S-L8), against a real HTTP
server.

The attack in S-H3: a self-attested ``--tarball`` (the quickstart's stand-in) was cached under the official
name and later served for a plain ``--version`` as "sha256 verified". Here it must never answer a download.
"""

from __future__ import annotations

import gzip
import http.client
import io
import json
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from roachctl import release
from roachctl.errors import ExitCode, ReleaseError, UsageError
from roachctl.release import checksum as ck
from roachctl.release import extract as extract_mod
from roachctl.release.fetch import NoDowngradeRedirects
from roachctl.release.names import check_base_url
from roachctl.ui import console as console_mod
from roachctl.ui.env import Environment
from tests.support.release_support import (
    STANDIN_SCRIPT,
    Member,
    Mirror,
    build_tgz,
    release_members,
    sha,
    write_release,
)

V = "v25.4.0"
STEM = f"cockroach-{V}.linux-amd64"
EVIL = b"#!/bin/sh\necho 'not cockroach'\n"


@pytest.fixture
def mirror() -> Iterator[Mirror]:
    m = Mirror().start()
    yield m
    m.stop()


@pytest.fixture
def out(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    buf = io.StringIO()
    monkeypatch.setattr(
        console_mod, "_env", Environment(rich_console=Console(file=buf, force_terminal=False, width=400))
    )
    return buf


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _get(home: Path, url: str, sha256: str | None = None) -> release.Release:
    return release.obtain(
        V, home=home, arch="amd64", mirror=url, allow_insecure_mirror=True, progress=False, sha256=sha256
    )


def _evil_tarball(directory: Path) -> Path:
    """A stand-in under the official name with its own (self-attested) .sha256sum beside it."""
    members = [
        m if not m.name.endswith("/cockroach") else Member(m.name, data=EVIL, mode=0o755)
        for m in release_members(STEM)
    ]
    directory.mkdir(parents=True, exist_ok=True)
    return write_release(directory, STEM, build_tgz(members))


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` with its content (to show that nothing changed)."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_self_attested_tarball_never_answers_a_download(tmp_path: Path, mirror: Mirror) -> None:
    home = tmp_path / "home"
    evil = release.obtain(home=home, arch="amd64", tarball=_evil_tarball(tmp_path / "dl"), progress=False)
    assert evil.binary.read_bytes() == EVIL
    assert not (home / "cache" / "releases").exists()  # kept apart, keyed by its digest
    assert evil.dir == home / "cache" / "tarballs" / evil.tarball_sha256 / STEM

    # Offline, a plain --version has nothing it may use: refused, the home unchanged.
    before = _tree(home)
    with pytest.raises(ReleaseError, match="cannot download") as err:
        _get(home, _closed_port_url())
    assert err.value.exit_code == ExitCode.BAD_INPUT
    assert _tree(home) == before

    # Online, the official release is downloaded and verified against the published checksum.
    official = mirror.publish(STEM)
    rel = _get(home, mirror.url)
    assert rel.tarball is not None and rel.tarball.read_bytes() == official
    assert rel.binary.read_bytes() == STANDIN_SCRIPT
    assert mirror.requests == [f"{STEM}.tgz.sha256sum", f"{STEM}.tgz"]
    # ... and a later --tarball of the stand-in still gets its own copy, not the official one.
    again = release.obtain(home=home, arch="amd64", tarball=tmp_path / "dl" / f"{STEM}.tgz", progress=False)
    assert again == evil


def test_the_cache_is_compared_with_the_published_checksum_every_time(
    tmp_path: Path, mirror: Mirror, out: io.StringIO
) -> None:
    mirror.publish(STEM)
    first = _get(tmp_path, mirror.url)
    again = _get(tmp_path, mirror.url)
    assert again == first and mirror.requests.count(f"{STEM}.tgz.sha256sum") == 2
    assert mirror.requests.count(f"{STEM}.tgz") == 1
    changed = mirror.publish(STEM, build_tgz([*release_members(STEM), Member(f"{STEM}/LICENSE", data=b"x")]))
    third = _get(tmp_path, mirror.url)
    assert third.tarball_sha256 == sha(changed) != first.tarball_sha256
    assert mirror.requests.count(f"{STEM}.tgz") == 2
    assert "warning: cached" in out.getvalue() and "downloading it again" in out.getvalue()
    manifest = json.loads((tmp_path / "cache" / "releases" / f"{STEM}.json").read_text())
    assert manifest["schema"] == 2
    prov = manifest["provenance"]
    assert (prov["kind"], prov["base"], prov["published"]) == ("mirror", mirror.url, sha(changed))
    assert prov["origin"] == f"{mirror.url}/{STEM}.tgz" and prov["sha256"] == sha(changed)


def test_a_cache_entry_of_unknown_origin_is_never_used(
    tmp_path: Path, mirror: Mirror, out: io.StringIO
) -> None:
    """An entry cached by an older roachctl (manifest schema 1, no provenance) may be a stand-in."""
    mirror.publish(STEM)
    _get(tmp_path, mirror.url)
    manifest = tmp_path / "cache" / "releases" / f"{STEM}.json"
    doc = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({"schema": 1, "release": doc["release"]}))
    with pytest.raises(ReleaseError, match="cannot download") as err:
        _get(tmp_path, _closed_port_url())
    assert "no record of where it came from" in err.value.render()
    _get(tmp_path, mirror.url)
    assert mirror.requests.count(f"{STEM}.tgz") == 2
    assert "no record of where it came from" in out.getvalue()


def test_a_pinned_digest_vouches_for_the_cache_offline(tmp_path: Path, mirror: Mirror) -> None:
    data = mirror.publish(STEM)
    del mirror.files[f"{STEM}.tgz.sha256sum"]
    first = _get(tmp_path, mirror.url, sha256=sha(data))
    assert _get(tmp_path, _closed_port_url(), sha256=sha(data)) == first
    with pytest.raises(ReleaseError, match=f"has sha256 {sha(data)}, not 1111"):
        _get(tmp_path, _closed_port_url(), sha256="1" * 64)


def test_plain_http_mirrors_need_the_flag(tmp_path: Path, mirror: Mirror) -> None:
    mirror.publish(STEM)
    with pytest.raises(UsageError, match="plain HTTP") as err:
        release.obtain(V, home=tmp_path, arch="amd64", mirror=mirror.url, progress=False)
    assert err.value.exit_code == ExitCode.BAD_INPUT and "--allow-insecure-mirror" in err.value.render()
    assert mirror.requests == [] and not (tmp_path / "cache").exists()
    assert (
        check_base_url("https://mirror.example/crdb", allow_insecure=False) == "https://mirror.example/crdb"
    )
    assert check_base_url("file:///srv/mirror", allow_insecure=False) == "file:///srv/mirror"
    for bad in ("ftp://mirror.example", "mirror.example", "https://", "http://"):
        with pytest.raises(UsageError):
            check_base_url(bad, allow_insecure=True)


def test_https_never_redirects_down_to_http() -> None:
    request = urllib.request.Request("https://mirror.example/x.tgz")
    msg = http.client.HTTPMessage()
    with pytest.raises(ReleaseError, match="not HTTPS"):
        NoDowngradeRedirects(False).redirect_request(
            request, io.BytesIO(), 302, "Found", msg, "http://evil.example/x.tgz"
        )
    follow = NoDowngradeRedirects(False).redirect_request(
        request, io.BytesIO(), 302, "Found", msg, "https://cdn.example/x"
    )
    assert follow is not None and follow.full_url == "https://cdn.example/x"
    assert NoDowngradeRedirects(True).redirect_request(
        request, io.BytesIO(), 302, "Found", msg, "http://cdn.example/x"
    )


def test_an_oversized_download_is_refused(
    tmp_path: Path, mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = mirror.publish(STEM)
    monkeypatch.setattr(ck, "MAX_TARBALL", len(data) - 1)
    with pytest.raises(ck.TooLarge, match="announces"):
        _get(tmp_path, mirror.url)
    assert mirror.requests == [f"{STEM}.tgz.sha256sum", f"{STEM}.tgz"]
    assert [p.name for p in (tmp_path / "cache" / "releases").iterdir()] == [".lock"]
    with pytest.raises(ck.TooLarge, match="larger than"):  # no (or a lying) Content-Length: counted
        ck.copy_hashing(io.BytesIO(data), io.BytesIO(), limit=len(data) - 1)
    (tmp_path / "dl").mkdir()
    tgz = write_release(tmp_path / "dl", STEM, data)
    with pytest.raises(ck.TooLarge, match="more than a release may have"):
        release.obtain(home=tmp_path / "h2", arch="amd64", tarball=tgz, progress=False)


def test_an_oversized_checksum_file_is_refused(tmp_path: Path) -> None:
    tgz = write_release(tmp_path, STEM)
    digest = sha(tgz.read_bytes())
    (tmp_path / f"{STEM}.tgz.sha256sum").write_text(
        f"{digest}  {STEM}.tgz\n" + " " * (ck.MAX_CHECKSUM_FILE + 1)
    )
    with pytest.raises(ReleaseError, match="larger than a checksum file"):
        release.obtain(home=tmp_path / "home", arch="amd64", tarball=tgz, progress=False)


@pytest.mark.parametrize("cap", ["members", "bytes", "tail"])
def test_extraction_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cap: str) -> None:
    members = release_members(STEM)
    data = build_tgz(members)
    if cap == "members":
        monkeypatch.setattr(extract_mod, "MAX_MEMBERS", len(members) - 1)
        why = "more than 4 members"
    elif cap == "bytes":
        monkeypatch.setattr(extract_mod, "MAX_EXTRACTED", 8)
        why = "past 8 bytes unpacked"
    else:  # a gzip bomb after the tar end: decompressed until the cap, not to the end
        data = gzip.compress(gzip.decompress(data) + b"\0" * (1 << 20))
        monkeypatch.setattr(extract_mod, "MAX_EXTRACTED", 1 << 19)
        why = "data after the archive end"
    (tmp_path / "dl").mkdir()
    tgz = write_release(tmp_path / "dl", STEM, data)
    with pytest.raises(ReleaseError, match=why):
        release.obtain(home=tmp_path / "home", arch="amd64", tarball=tgz, progress=False)
    leftovers = [p for p in (tmp_path / "home" / "cache").rglob("*") if p.is_file() and p.name != ".lock"]
    assert leftovers == []
