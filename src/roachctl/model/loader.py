"""Read a topology file: YAML 1.2 with positions, then every problem at once as file:line:col.

ruamel.yaml's round-trip loader keeps the line and column of every key and value; pydantic's
error `loc` tuples (and validate.py's `Issue.loc`) are mapped back to them. Nothing here touches
a host: an invalid file stops roachctl before any connection (interface.md).
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scanner import RoundTripScanner, ScannerError

from roachctl.errors import Problem, TopologyError, UsageError
from roachctl.model.topology import Topology
from roachctl.model.validate import Issue, Loc, Parts, check_parts, check_topology

Pos = tuple[int, int]  # 0-based line, column as ruamel reports them

#: A topology of the maximum 128 nodes with every key set is ~40 KiB; 1 MiB bounds memory and
#: parse time for anything handed to `check`/`deploy` (e.g. /dev/zero or a huge file).
MAX_FILE_BYTES = 1024 * 1024
#: The schema nests 4 levels deep; anything far deeper is not a topology, and deep nesting makes
#: ruamel's scanner slow (minutes at 5000 levels) and its composer recurse past Python's limit.
MAX_DEPTH = 32
#: Longer digit strings are not a port or a count; Python refuses int() beyond 4300 digits.
MAX_DIGITS = 100
_NUMBER_RE = re.compile(r"[-+]?(?=[0-9_.eE]*[0-9])[0-9_.eE]+")  # with at least one digit


class _LimitError(ScannerError):
    """A file outside the loader's limits, at its position, with a hint."""

    def __init__(self, problem: str, hint: str, mark: Any) -> None:
        super().__init__(None, None, problem, mark)
        self.hint = hint


class _GuardedScanner(RoundTripScanner):
    """ruamel's round-trip scanner that refuses aliases, deep nesting and huge numbers.

    Why at the scanner: an alias expands while composing (billion laughs: a few lines become
    gigabytes; a recursive alias silently becomes null), so it must be stopped before that, and
    the scanner is where each token has its position.
    """

    def fetch_alias(self) -> None:
        raise _LimitError(
            "YAML aliases (*name) are not supported",
            "write the value out in full; an alias can expand a small file into a huge document",
            self.reader.get_mark(),
        )

    def fetch_flow_collection_start(self, TokenClass: Any, to_push: str) -> None:
        super().fetch_flow_collection_start(TokenClass, to_push)
        self._check_depth()

    def add_indent(self, column: int) -> bool:
        added = bool(super().add_indent(column))
        self._check_depth()
        return added

    def fetch_plain(self) -> None:
        super().fetch_plain()
        token = self.tokens[-1]
        value = getattr(token, "value", "")
        if isinstance(value, str) and len(value) > MAX_DIGITS and _NUMBER_RE.fullmatch(value):
            raise _LimitError(
                f"a number with {len(value)} characters is too long",
                "no setting takes a number this long; write the intended value",
                token.start_mark,
            )

    def _check_depth(self) -> None:
        if self.flow_level + len(self.indents) > MAX_DEPTH:
            raise _LimitError(
                f"the document nests deeper than {MAX_DEPTH} levels",
                "a topology nests only a few levels deep; check the brackets and indentation",
                self.reader.get_mark(),
            )


class Positions:
    """Where each key and value of a loaded document sits in the file."""

    def __init__(self) -> None:
        self.keys: dict[Loc, Pos] = {}
        self.values: dict[Loc, Pos] = {}

    def find(self, loc: Loc, *, key: bool = False) -> Pos:
        """Position of `loc` (its key if `key`), else of the nearest enclosing value, else 0:0."""
        if key and loc in self.keys:
            return self.keys[loc]
        for end in range(len(loc), 0, -1):
            if loc[:end] in self.values:
                return self.values[loc[:end]]
        return (0, 0)


def _plain(node: Any, loc: Loc, pos: Positions) -> Any:
    """Convert ruamel's round-trip objects to plain Python while recording positions."""
    if isinstance(node, CommentedMap):
        out: dict[Any, Any] = {}
        here = (node.lc.line, node.lc.col)
        for key, value in node.items():
            child = (*loc, key)
            pos.keys[child] = _lc(node.lc.key, key, here)  # merged (<<) keys have no position
            pos.values[child] = _lc(node.lc.value, key, here)
            out[key if not isinstance(key, str) else str(key)] = _plain(value, child, pos)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for i, value in enumerate(node):
            pos.values[(*loc, i)] = node.lc.item(i)
            items.append(_plain(value, (*loc, i), pos))
        return items
    if isinstance(node, bool) or node is None:
        return node
    for kind in (str, int, float):
        if isinstance(node, kind):
            return kind(node)
    return node


def _lc(lookup: Any, key: Any, default: Pos) -> Pos:
    try:
        line, col = lookup(key)
    except (KeyError, TypeError):
        return default
    return int(line), int(col)


def read_yaml(text: str, source: str) -> tuple[Any, Positions]:
    """Parse YAML 1.2 text into plain data and positions; syntax errors become a TopologyError."""
    yaml = YAML(typ="rt")
    yaml.Scanner = _GuardedScanner
    try:
        doc = yaml.load(text)
    except _LimitError as exc:
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        raise TopologyError([Problem(source, line, col, str(exc.problem), exc.hint)]) from exc
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        what = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise TopologyError(
            [Problem(source, line, col, f"YAML syntax error: {what}", _yaml_hint(what))]
        ) from exc
    except YAMLError as exc:
        raise TopologyError(
            [Problem(source, 1, 1, f"YAML error: {exc}", "check the file is valid YAML")]
        ) from exc
    except (RecursionError, ValueError, OverflowError) as exc:  # the guards above should prevent these
        raise TopologyError(
            [Problem(source, 1, 1, f"the file cannot be read as a topology: {exc}", "check the file")]
        ) from exc
    pos = Positions()
    return _plain(doc, (), pos), pos


def _yaml_hint(what: str) -> str:
    if "duplicate key" in what:
        return "each key may appear once per mapping; remove or merge the duplicate"
    if "\t" in what or r"\t" in what or "tab" in what.lower():
        return "indent with spaces, not tabs"
    return "check indentation and quoting near this position (values with ': ' or '#' need quotes)"


def load_topology(path: str | Path) -> Topology:
    """Read, parse and validate a topology file.

    Raises:
        UsageError: the file cannot be read.
        TopologyError: the file is invalid; carries every problem with its file:line:col.
    """
    return load_text(read_topology_file(path).decode("utf-8"), str(path))


def read_topology_file(path: str | Path) -> bytes:
    """The bytes of a topology file: a regular file of at most MAX_FILE_BYTES, valid UTF-8.

    Opened non-blocking and checked with fstat before reading, so a FIFO, a device such as
    /dev/zero or a huge file fails at once instead of blocking or filling memory.

    Raises:
        UsageError: the file cannot be read or is not a topology-sized UTF-8 text file.
    """
    source = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise UsageError(
            f"topology file {source} not found", hint="pass the path of your topology YAML file", where=source
        ) from exc
    except PermissionError as exc:
        raise UsageError(f"cannot read {source}: permission denied", hint="check the file's mode") from exc
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror}", hint="check the path") from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise UsageError(f"{source} is a directory", hint="pass the topology YAML file itself")
        raise UsageError(
            f"{source} is not a regular file",
            hint="pass the topology YAML file itself (not a device or pipe)",
        )
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise UsageError(f"cannot read {source}: {exc.strerror}", hint="check the path") from exc
    if len(data) > MAX_FILE_BYTES:
        raise UsageError(
            f"{source} is larger than {MAX_FILE_BYTES // 1024} KiB",
            hint="a topology file is a few KiB; pass the right file",
        )
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{source} is not UTF-8 text", hint="save the topology file as UTF-8") from exc
    return data


def load_text(text: str, source: str = "<topology>") -> Topology:
    """Parse and validate topology YAML held in memory (`source` names it in errors)."""
    data, pos = read_yaml(text, source)
    return parse_data(data, source, pos)


def parse_data(data: Any, source: str = "<topology>", pos: Positions | None = None) -> Topology:
    """Validate already-parsed topology data; every problem at once, or a Topology."""
    pos = pos or Positions()
    if data is None:
        raise TopologyError(
            [Problem(source, 1, 1, "the topology file is empty", "start with name:, version: and nodes:")]
        )
    if not isinstance(data, dict):
        raise TopologyError(
            [
                Problem(
                    source,
                    1,
                    1,
                    "the topology must be a mapping of keys",
                    "start with name:, version: and nodes:",
                )
            ]
        )
    problems: list[Problem] = []
    try:
        topology: Topology | None = Topology.model_validate(data)
    except ValidationError as exc:
        topology = None
        errors = exc.errors(include_url=False)
        problems += [_problem(source, pos, err) for err in errors if not _shadowed(err, errors)]
    issues = check_topology(topology) if topology is not None else check_parts(Parts.salvage(data))
    problems += [_issue_problem(source, pos, issue) for issue in issues]
    if problems:
        unique = dict.fromkeys(problems)
        raise TopologyError(sorted(unique, key=lambda p: (p.line, p.column)))
    assert topology is not None
    return topology


def _shadowed(err: Any, errors: list[Any]) -> bool:
    """A "too short" list error caused only by its own invalid items adds nothing: drop it."""
    loc = tuple(err["loc"])
    return err["type"] == "too_short" and any(
        len(other["loc"]) > len(loc) and tuple(other["loc"][: len(loc)]) == loc for other in errors
    )


def _dotted(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _at(source: str, pos: Positions, loc: Loc, *, key: bool) -> tuple[str, int, int]:
    line, col = pos.find(loc, key=key)
    return source, line + 1, col + 1


def _issue_problem(source: str, pos: Positions, issue: Issue) -> Problem:
    file, line, col = _at(source, pos, issue.loc, key=issue.at == "key")
    return Problem(file, line, col, f"{_dotted(issue.loc)}: {issue.message}", issue.hint)


def _problem(source: str, pos: Positions, err: Any) -> Problem:
    loc: Loc = tuple(err["loc"])
    kind: str = err["type"]
    if kind == "extra_forbidden":
        file, line, col = _at(source, pos, loc, key=True)
        return Problem(file, line, col, f"unknown key {_dotted(loc)!s}", _unknown_key_hint(loc))
    if kind == "missing":
        file, line, col = _at(source, pos, loc[:-1], key=False)
        where = _dotted(loc[:-1]) or "the top level"
        return Problem(file, line, col, f"missing required key {loc[-1]!r} in {where}", _missing_hint(loc))
    file, line, col = _at(source, pos, loc, key=False)
    ctx = err.get("ctx") or {}
    hint = str(ctx.get("hint", "")) if kind == "roachctl" else _TYPE_HINTS.get(kind, "")
    message = err["msg"]
    prefix = _dotted(loc)
    return Problem(file, line, col, f"{prefix}: {message}" if prefix else message, hint)


_TYPE_HINTS = {
    "bool_type": "write true or false (in YAML 1.2, yes/no/on/off are strings)",
    "bool_parsing": "write true or false",
    "int_type": "write a whole number without quotes, e.g. 26257",
    "int_parsing": "write a whole number without quotes, e.g. 26257",
    "string_type": "write a string",
    "tuple_type": "write a YAML list (lines starting with '- ')",
    "list_type": "write a YAML list (lines starting with '- ')",
    "model_type": "write a mapping (indented key: value lines)",
    "dict_type": "write a mapping (indented key: value lines)",
    "model_attributes_type": "write a mapping (indented key: value lines)",
    "too_short": "list at least one entry, or remove the key to use the default",
    "string_too_short": "write a non-empty value",
    "string_pattern_mismatch": "remove newlines and NUL characters",
}


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model class that validates the mapping at `loc` (to list its valid keys)."""
    model: type[BaseModel] | None = Topology
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        model = _find_model(info.annotation) if info is not None else None
    return model


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            found = _find_model(arg)
            if found is not None:
                return found
    return None


def _key_homes() -> dict[str, list[str]]:
    """Every valid key name -> the sections where it is valid (for "belongs under ..." hints)."""
    homes: dict[str, list[str]] = {}

    def walk(model: type[BaseModel], where: str) -> None:
        for name, info in model.model_fields.items():
            homes.setdefault(name, []).append(where or "the top level")
            sub = _find_model(info.annotation)
            if sub is not None:
                walk(sub, f"{where}.{name}" if where else name)

    walk(Topology, "")
    return homes


def _unknown_key_hint(loc: Loc) -> str:
    key = str(loc[-1])
    model = _model_at(loc[:-1])
    valid = sorted(model.model_fields) if model is not None else []
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    listing = f"valid keys here: {', '.join(valid)}"
    if close:
        return f"did you mean {close[0]!r}? {listing}"
    homes = [h.replace(".nodes", ".nodes[]") for h in _key_homes().get(key, [])]
    if homes:
        return f"{key!r} belongs under {' or '.join(homes)}; {listing}"
    return listing


_MISSING_EXAMPLES = {
    "name": "name: prod",
    "version": "version: v25.4.0",
    "nodes": "nodes: followed by '- host: store-1' lines",
    "host": "host: store-1 (an ssh target)",
}


def _missing_hint(loc: Loc) -> str:
    name = str(loc[-1])
    example = _MISSING_EXAMPLES.get(name)
    return f"add {example}" if example else f"add {name}:"


def with_version(text: bytes, version: str, source: str = "<topology>") -> bytes:
    """The topology text with its top-level `version:` value replaced; every other byte kept.

    The home's copy of the topology must name the release the cluster runs once an upgrade
    or rollback has moved it: `destroy`, `prune` and a later `deploy` read that copy.

    Raises:
        TopologyError: `text` is not a valid topology, or not with that version.
    """
    decoded = text.decode("utf-8")
    load_text(decoded, source)
    doc = YAML(typ="rt").load(decoded)
    line, col = doc.lc.value("version")
    lines = decoded.splitlines(keepends=True)
    head, tail = lines[line][:col], lines[line][col:]
    lines[line] = head + _SCALAR.sub(version, tail, count=1)
    out = "".join(lines)
    if load_text(out, source).version != version:
        raise TopologyError([Problem(source, line + 1, col + 1, "could not set the version", "edit it")])
    return out.encode("utf-8")


_SCALAR = re.compile(r"""\A("[^"\n]*"|'[^'\n]*'|[^\s#]+)""")
