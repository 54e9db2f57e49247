"""Foreign objects on a host (docs/findings.md S-M5): what deploy refuses to take over, from real facts."""

from __future__ import annotations

import pytest

from roachctl.engine.adopt import foreign_objects, render, watched
from roachctl.model.facts import Account, HostFacts, PathFact, UnitFact
from roachctl.model.loader import load_text

TOPOLOGY = load_text(
    "name: prod\nversion: v25.4.0\nnodes:\n  - host: store-1\n    stores: [/var/lib/cockroach/s1, /mnt/s2]\n"
)
UNIT = "/etc/systemd/system/cockroach.service"
FW_UNIT = "/etc/systemd/system/roachctl-firewall-prod.service"
OURS = "# Managed by roachctl (cluster prod); `roachctl deploy` overwrites local changes."


def facts(
    *,
    paths: tuple[PathFact, ...] | list[PathFact] = (),
    account: Account | None = None,
    unit: UnitFact | None = None,
) -> HostFacts:
    f = HostFacts(host="store-1")
    f.paths.update({p.path: p for p in paths})
    f.users["cockroach"] = account is not None
    if account is not None:
        f.accounts["cockroach"] = account
    if unit is not None:
        f.units[unit.name] = unit
    return f


def details(f: HostFacts, *, adopt: bool = False) -> list[str]:
    return [x.detail for x in foreign_objects(TOPOLOGY, "store-1", f, adopt=adopt)]


def test_a_fresh_host_and_a_host_roachctl_deployed_are_fine() -> None:
    assert details(facts()) == []
    deployed = facts(
        account=Account("cockroach", 998, "/usr/sbin/nologin"),
        paths=[
            PathFact("/var/lib/cockroach", "dir", 0o700, "cockroach", "cockroach", nonempty=True),
            PathFact("/mnt/s2", "dir", 0o700, "cockroach", "cockroach", nonempty=True),
            PathFact(UNIT, "file", 0o644, "root", "root", sha256="x", first_line=OURS),
            PathFact(FW_UNIT, "file", 0o644, "root", "root", first_line=OURS[:36]),
        ],
        unit=UnitFact("cockroach.service", load_state="loaded"),
    )  # fmt: skip
    assert details(deployed) == []


@pytest.mark.parametrize(
    ("uid", "shell", "refused"),
    [(998, "/usr/sbin/nologin", False), (998, "/bin/false", False), (999, "/sbin/nologin", False),
     (1000, "/usr/sbin/nologin", True), (998, "/bin/bash", True), (998, "", True), (0, "/bin/sh", True)],
)  # fmt: skip
def test_an_existing_login_account_is_not_adopted(uid: int, shell: str, refused: bool) -> None:
    found = details(facts(account=Account("cockroach", uid, shell)))
    assert bool(found) == refused, found
    if refused:
        assert f"uid {uid}, shell {shell or '/bin/sh'}" in found[0]


@pytest.mark.parametrize("first_line", ["[Unit]", "", "# Managed by somebody else", " # Managed by roachctl"])
def test_a_unit_file_without_the_header_is_foreign(first_line: str) -> None:
    found = details(facts(paths=[PathFact(UNIT, "file", 0o644, "root", "root", first_line=first_line)]))
    assert found == [f"{UNIT} exists and was not written by roachctl"]


def test_a_masked_unit_or_a_firewall_unit_of_someone_else_is_foreign() -> None:
    masked = PathFact(UNIT, "link", 0o777, "root", "root", target="/dev/null")
    fw = PathFact(FW_UNIT, "file", 0o644, "root", "root", first_line="[Unit]")
    assert len(details(facts(paths=[masked, fw]))) == 2


def test_a_packaged_unit_of_the_same_name_is_foreign() -> None:
    found = details(facts(unit=UnitFact("cockroach.service", load_state="loaded")))
    assert found == ["a unit cockroach.service is already installed outside /etc/systemd/system"]
    assert details(facts(unit=UnitFact("cockroach.service", load_state="not-found"))) == []


def test_non_empty_data_of_another_owner_needs_adopt() -> None:
    f = facts(
        paths=[
            PathFact("/var/lib/cockroach", "dir", 0o755, "root", "root", nonempty=True),
            PathFact("/var/lib/cockroach/s1", "dir", 0o755, "root", "root", nonempty=False),
            PathFact("/mnt/s2", "dir", 0o700, "postgres", "postgres", nonempty=True),
        ]
    )
    found = details(f)
    assert found == [
        "/var/lib/cockroach already holds files and belongs to root, not cockroach",
        "/mnt/s2 already holds files and belongs to postgres, not cockroach",
    ]
    assert details(f, adopt=True) == []
    message, hint = render(foreign_objects(TOPOLOGY, "store-1", f, adopt=False))
    assert message.count("  store-1: ") == 2 and "--adopt" in hint


def test_watched_facts_cover_what_is_read() -> None:
    w = watched(TOPOLOGY, "store-1")
    assert set(w["paths"]) == {"/var/lib/cockroach", "/var/lib/cockroach/s1", "/mnt/s2"}
    assert set(w["hash_paths"]) == {UNIT, FW_UNIT}
    assert w["users"] == ("cockroach",) and w["units"] == ("cockroach.service",)
