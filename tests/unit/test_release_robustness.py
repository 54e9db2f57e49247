"""release: concurrent obtains download once; an interrupt at any point keeps nothing; progress output."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from rich.console import Console

from roachctl import release
from roachctl.release import cache as cache_mod
from roachctl.ui import console as console_mod
from roachctl.ui.env import Environment
from roachctl.ui.progress import PlainProgress, RichProgress, byte_progress
from tests.support.mirror import Mirror
from tests.support.release_fixtures import Releases


def _cached(home: Path) -> list[str]:
    root = home / "cache" / "releases"
    return sorted(p.name for p in root.iterdir() if p.name != ".lock") if root.exists() else []


def test_concurrent_obtains_download_once(
    tmp_path: Path, release_mirror: Mirror, standin_releases: Releases
) -> None:
    v = standin_releases.new
    results: list[release.Release] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(
                release.obtain(
                    v, home=tmp_path, mirror=release_mirror.url, allow_insecure_mirror=True, progress=False
                )
            )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len({r.binary_sha256 for r in results}) == 1 and len(results) == 4
    assert release_mirror.count(f"cockroach-{v}.linux-{standin_releases.arch}.tgz") == 1


def test_interrupt_during_extraction_keeps_nothing(
    tmp_path: Path, release_mirror: Mirror, standin_releases: Releases, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object) -> Path:
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_mod, "extract_release", interrupted)
    with pytest.raises(KeyboardInterrupt):
        release.obtain(
            standin_releases.new,
            home=tmp_path,
            mirror=release_mirror.url,
            allow_insecure_mirror=True,
            progress=False,
        )
    assert _cached(tmp_path) == []


def test_leftovers_of_a_killed_run_are_cleaned(
    tmp_path: Path, release_mirror: Mirror, standin_releases: Releases
) -> None:
    v, arch = standin_releases.new, standin_releases.arch
    root = tmp_path / "cache" / "releases"
    (root / f"cockroach-{v}.linux-{arch}" / "lib").mkdir(parents=True)  # a tree without manifest
    (root / f".tmp-cockroach-{v}.linux-{arch}-abc.tgz").write_bytes(b"partial")
    rel = release.obtain(
        v, home=tmp_path, mirror=release_mirror.url, allow_insecure_mirror=True, progress=False
    )
    assert rel.binary.is_file()
    assert not any(p.name.startswith(".tmp-") for p in root.iterdir())


def test_plain_progress_prints_quarters(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(
        console_mod, "_env", Environment(rich_console=Console(file=out, force_terminal=False, width=100))
    )
    bar = byte_progress("downloading x", 400)
    assert isinstance(bar, PlainProgress)
    with bar:
        for _ in range(8):
            bar.advance(50)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("downloading x (0.0 MiB)")
    assert lines[1:4] == ["downloading x: 25%", "downloading x: 50%", "downloading x: 75%"]
    assert lines[-1].startswith("downloading x: done")


def test_terminal_gets_a_rich_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        console_mod, "_env", Environment(rich_console=Console(file=io.StringIO(), force_terminal=True))
    )
    assert isinstance(byte_progress("x", 10), RichProgress)
    assert not isinstance(byte_progress("x", 10, enabled=False), (RichProgress, PlainProgress))
