"""bench/deploy_bench.py `scenarios`: every benchmark's ending when a scenario fails, the bed is missing or
Ctrl-C cuts the run short (exit 1 with partial results, or 2), and its work directory cleaned up."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import deploy_bench

from tests.support.bed import BedUnavailable


@pytest.mark.parametrize(
    ("exc", "failed", "unavailable", "said"),
    [
        (None, False, False, ""),
        (deploy_bench.ScenarioFailed("deploy: exit 1"), True, False, "SCENARIO FAILED: deploy: exit 1"),
        (KeyboardInterrupt(), True, False, "interrupted; partial results follow"),
        (BedUnavailable("no nspawn"), False, True, "test bed unavailable: no nspawn"),
    ],
)
def test_outcome_and_cleanup(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    exc: BaseException | None,
    failed: bool,
    unavailable: bool,
    said: str,
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    with deploy_bench.scenarios(work) as outcome:
        if exc is not None:
            raise exc
    assert (outcome.failed, outcome.bed_unavailable) == (failed, unavailable)
    assert not work.exists()
    assert capsys.readouterr().err.strip() == said


def test_keep_and_attempt_and_other_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    ran: list[str] = []

    def fail() -> None:
        raise deploy_bench.ScenarioFailed("seed: exit 2")

    with deploy_bench.scenarios(work, keep=True) as outcome:
        outcome.attempt(fail)  # logged and counted, the next scenario still runs
        outcome.attempt(lambda: ran.append("next"))
    assert outcome.failed and ran == ["next"] and work.is_dir()
    err = capsys.readouterr().err
    assert "SCENARIO FAILED: seed: exit 2" in err and f"work directory kept: {work}" in err
    with pytest.raises(RuntimeError), deploy_bench.scenarios(work):  # a bench bug is not a result
        raise RuntimeError("bug")
    assert not work.exists()
