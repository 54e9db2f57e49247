"""certs rotate's pure parts: the confirmation per CA phase and the log-rotation-safe refusal count."""

from __future__ import annotations

from roachctl.cluster import certrotate


def test_phases_2_and_3_name_what_clients_lose() -> None:
    assert "nothing changes for clients" in certrotate.confirmation("prod", ca=True, phase=None)
    two = certrotate.confirmation("prod", ca=True, phase=2)
    assert "old ca.crt alone will fail" in two and "combined CA" in two
    three = certrotate.confirmation("prod", ca=True, phase=3)
    assert "signed by the old CA will be refused" in three
    assert certrotate.confirmation("prod", ca=False, phase=None) == "Rotate the node certificates of prod?"


def test_refusals_are_compared_within_one_log_file() -> None:
    assert certrotate.more_refusals(("a.log", 2), ("a.log", 3))
    assert not certrotate.more_refusals(("a.log", 2), ("a.log", 2))
    assert certrotate.more_refusals(("a.log", 5), ("b.log", 1))  # rotated: the new file's count is new
    assert not certrotate.more_refusals(("a.log", 5), ("b.log", 0))
