"""The CPU architectures roachctl deploys: the one list, and the uname → release-arch mapping.

CockroachDB publishes Linux releases for amd64 and arm64 only (docs/cockroach-contract.md §1); every
layer that names an architecture (facts, plan, release, engine, cluster) takes it from here.
"""

from __future__ import annotations

ARCHES = ("amd64", "arm64")
"""Release architectures, in the order roachctl tries them when it must cover any host."""

MACHINE_TO_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
"""`uname -m` (or Python's platform.machine()) → release architecture."""
