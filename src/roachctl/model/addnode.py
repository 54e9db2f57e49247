"""Adding a node to a topology file's text, comments and layout kept (`replace` writes it back).

The new node copies the entry of the node it replaces (locality, stores, ports, memory), so the
cluster keeps its shape; only `host` changes, and `advertise` is the one given (an advertised
address belongs to a machine: the old one's is never copied). The result is loaded again, so a
text that would not validate is never returned.
"""

from __future__ import annotations

import io
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from roachctl.errors import UsageError
from roachctl.model.loader import load_text


def with_node_like(text: str, *, like: str, host: str, advertise: str | None, source: str) -> str:
    """`text` with a node `host` appended, a copy of node `like`'s entry.

    Raises:
        UsageError: `like` is not a node of the file, or `host` already is.
        TopologyError: the result does not validate (e.g. two nodes on one address).
    """
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)  # the README's `  - host:` style
    data: Any = yaml.load(text)
    nodes = data.get("nodes") if isinstance(data, CommentedMap) else None
    if not isinstance(nodes, list):
        raise UsageError("the topology has no node list", where=source)
    hosts = [n.get("host") for n in nodes if isinstance(n, dict)]
    if host in hosts:
        raise UsageError(f"{host} is already a node of this topology", where=source)
    old: Any = next((n for n in nodes if isinstance(n, dict) and n.get("host") == like), None)
    if old is None:
        raise UsageError(f"{like} is not a node of this topology", where=source, hint=f"nodes: {hosts}")
    entry = CommentedMap((k, v) for k, v in old.items() if k not in ("host", "advertise"))
    entry.insert(0, "host", host)
    if advertise:
        entry.insert(1, "advertise", advertise)
    if getattr(old, "fa", None) is not None and old.fa.flow_style():
        entry.fa.set_flow_style()
    nodes.append(entry)
    out = io.StringIO()
    yaml.dump(data, out)
    result = out.getvalue()
    load_text(result, source)  # validate: never hand back a topology that would not load
    return result
