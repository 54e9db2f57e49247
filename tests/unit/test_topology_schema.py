"""The committed JSON schema matches the models, and describes the file users write."""

from __future__ import annotations

import json
from pathlib import Path

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
