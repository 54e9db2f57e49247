"""JSON Schema of the topology file, generated from the models (for editor completion).

The committed copy lives at `schema/topology.schema.json`; a unit test fails when it is stale.
Regenerate with: `python -m roachctl.model.schema > schema/topology.schema.json`.
"""

from __future__ import annotations

import json
from typing import Any

from roachctl.model.topology import Topology

SCHEMA_ID = "https://roachctl.dev/schema/topology.schema.json"


def topology_json_schema() -> dict[str, Any]:
    """The schema as a dict (draft 2020-12, pydantic's validation mode)."""
    schema = Topology.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "roachctl topology",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def render_schema() -> str:
    """The schema as the exact text committed to the repository (stable key order)."""
    return json.dumps(topology_json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # pragma: no cover - developer tool
    print(render_schema(), end="")
