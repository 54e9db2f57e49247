"""prune's pure decisions (cluster/prune.py): what may go, what must stay."""

from __future__ import annotations

from roachctl.cluster.prune import prunable, versions_to_keep

ROOT = "/opt"


def _listing(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def test_only_unused_root_owned_release_dirs_under_the_root_go() -> None:
    listing = _listing(
        "dir=/opt/cockroach-v25.2.0.linux-amd64 owner=0",
        "dir=/opt/cockroach-v25.3.0.linux-amd64 owner=0",
        "dir=/opt/cockroach-v25.4.0.linux-amd64 owner=0",  # our links point here
        "dir=/opt/cockroach-v24.3.0.linux-amd64 owner=1002",  # not root's: never touched
        "dir=/opt/cockroach-vfoo.linux-amd64 owner=0",  # not a release name
        "keep=/opt/cockroach-v25.4.0.linux-amd64",
    )
    remove, kept = prunable(listing, ROOT, {"v25.2.0"})
    assert remove == ["/opt/cockroach-v25.3.0.linux-amd64"]
    assert "/opt/cockroach-v25.2.0.linux-amd64" in kept  # rollback/topology version
    assert "/opt/cockroach-v24.3.0.linux-amd64" in kept and "/opt/cockroach-vfoo.linux-amd64" in kept


def test_relative_link_targets_and_other_clusters_markers_are_kept() -> None:
    listing = _listing(
        "dir=/opt/cockroach-v25.1.0.linux-amd64 owner=0",
        "dir=/opt/cockroach-v25.3.0.linux-arm64 owner=0",
        "keep=cockroach-v25.1.0.linux-amd64",  # a relative link target
        "keep=/opt/cockroach-v25.3.0.linux-arm64/",  # another cluster's install= line
    )
    assert prunable(listing, ROOT, set())[0] == []


def test_rollback_keeps_the_previous_release_until_finalized() -> None:
    assert versions_to_keep("v25.2.0", ("v25.2.0", "v25.4.0"), "25.2") == {"v25.2.0"}
    assert versions_to_keep("v25.4.0", ("v25.2.0", "v25.4.0"), "25.2") == {"v25.4.0", "v25.2.0"}
    assert versions_to_keep("v25.4.0", ("v25.2.0", "v25.4.0"), "25.4") == {"v25.4.0"}  # finalized
    assert versions_to_keep("v25.4.1", ("v25.4.0", "v25.4.1"), "25.4") == {"v25.4.1", "v25.4.0"}  # patch
    assert versions_to_keep("v25.4.0", ("", ""), "25.4") == {"v25.4.0"}
