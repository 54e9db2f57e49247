"""Edit a topology file's text in place (ruamel round trip): comments, order and quoting are kept.

Used when the cluster's shape changes (scale-in): the saved topology is written back without the
removed nodes, so the next `deploy` of it does not bring them back.
"""

from __future__ import annotations

import io
from collections.abc import Collection

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.util import load_yaml_guess_indent


def _yaml(text: str) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long line
    _, sequence, offset = load_yaml_guess_indent(text)  # keep the file's own `- ` indentation
    yaml.indent(mapping=2, sequence=sequence or 2, offset=offset or 0)
    return yaml


def remove_nodes(text: str, hosts: Collection[str], join_targets: Collection[str]) -> str:
    """`text` without the `nodes:` entries whose `host` is in `hosts`, and without the `join:`
    entries in `join_targets` (the removed nodes' `advertise:port`). A `join:` list left empty is
    removed, so the default (the first nodes) applies.

    Raises:
        ValueError: the text is not a topology mapping with a `nodes` list, or removing would
            leave no node.
    """
    yaml = _yaml(text)
    doc = yaml.load(text)
    if not isinstance(doc, CommentedMap) or not isinstance(doc.get("nodes"), CommentedSeq):
        raise ValueError("not a topology (a mapping with a `nodes:` list)")
    nodes: CommentedSeq = doc["nodes"]
    keep = [i for i, n in enumerate(nodes) if not (isinstance(n, CommentedMap) and n.get("host") in hosts)]
    if not keep:
        raise ValueError("removing these nodes would leave the topology without nodes")
    for i in reversed(range(len(nodes))):
        if i not in keep:
            del nodes[i]
    join = doc.get("join")
    if isinstance(join, CommentedSeq):
        for i in reversed(range(len(join))):
            if str(join[i]) in join_targets:
                del join[i]
        if not join:
            del doc["join"]
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()
