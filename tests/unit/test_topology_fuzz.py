"""The loader never crashes: any input is a Topology or a TopologyError with positions."""

from __future__ import annotations

import io
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from roachctl.errors import TopologyError
from roachctl.model.loader import load_text

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False),
    st.text(max_size=20), st.sampled_from(["v25.4.0", "/opt/x", "10.0.0.1", "0.0.0.0/0", ".25", "25%"]),
)  # fmt: skip
KEYS = st.sampled_from(
    ["name", "version", "secure", "ssh", "paths", "service", "firewall", "defaults", "nodes", "join",
     "host", "advertise", "locality", "sql_port", "http_port", "cache", "stores", "user", "port", "bogus"]
)  # fmt: skip
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)


def _check(text: str) -> None:
    try:
        load_text(text, "f.yaml")
    except TopologyError as exc:
        assert exc.problems
        assert all(p.file == "f.yaml" and p.line >= 1 and p.column >= 1 and p.message for p in exc.problems)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text(text: str) -> None:
    _check(text)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(KEYS, VALUES, max_size=8))
def test_arbitrary_structures(data: dict[str, Any]) -> None:
    base: dict[str, Any] = {"name": "prod", "version": "v25.4.0", "nodes": [{"host": "a"}]}
    base.update(data)
    buffer = io.StringIO()
    YAML(typ="rt").dump(base, buffer)
    _check(buffer.getvalue())
