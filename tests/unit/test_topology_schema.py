"""The committed JSON schema matches the models, and describes the file users write."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from roachctl.model import versions
from roachctl.model.schema import render_schema, topology_json_schema

SCHEMA = Path(__file__).resolve().parents[2] / "schema" / "topology.schema.json"


def test_committed_schema_is_up_to_date() -> None:
    assert SCHEMA.read_text() == render_schema(), (
        "schema/topology.schema.json is stale: run "
        "`.venv/bin/python -m roachctl.model.schema > schema/topology.schema.json`"
    )


def test_schema_forbids_unknown_keys_and_requires_the_essentials() -> None:
    schema = topology_json_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"name", "version", "nodes"}
    node = schema["$defs"]["NodeSpec"]
    assert node["additionalProperties"] is False and node["required"] == ["host"]
    assert json.loads(render_schema()) == schema


def test_schema_carries_patterns_for_editors() -> None:
    props = topology_json_schema()["properties"]
    assert props["name"]["pattern"] == "^[a-z0-9][a-z0-9-]{0,39}$"
    assert props["version"]["pattern"].startswith("^v")


@pytest.mark.parametrize(
    "version",
    ["v1.0.0", "v2.1.3", "v19.2.0", "v22.2.19", "v23.1.0", "v23.1.99", "v23.2.0", "v23.2.0-alpha.1",
     "v23.10.0", "v24.1.0", "v25.4.0", "v29.9.9", "v30.1.0", "v99.1.0", "v100.1.0", "v123.0.0-rc.1"],
)  # fmt: skip
def test_schema_version_pattern_agrees_with_the_floor(version: str) -> None:
    """Editors flag exactly the versions the loader refuses as too old (docs/cockroach-contract.md §5)."""
    pattern = topology_json_schema()["properties"]["version"]["pattern"]
    assert (re.fullmatch(pattern, version) is None) == versions.below_floor(version), version
