"""Text -> documents, keeping the line of every node so errors can point at it.

PyYAML's composer gives node positions; we build plain Python values from the nodes
ourselves so that duplicate keys, alias cycles and absurd nesting become located errors
instead of silent overwrites or crashes. JSON is read the same way (it is YAML's flow
subset); the rare JSON that YAML 1.1 rejects falls back to the json module without lines.

Contracts:
* `parse_text` depends only on its arguments; it returns new documents, or raises
  `LoadError` with every syntax problem of the file (never some of the documents).
* A `Document`'s `value` is plain data (dicts, lists and YAML scalars; timestamps stay
  strings) and `lines` maps a path to its 1-based line. Both are shared with everything
  loaded from the document and must not be changed.
* Not thread-safe: one module-level YAML constructor builds the scalars.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from ciliary.model.errors import LoadError, Path, ValidationIssue

MAX_DEPTH = 100

try:  # the C composer is ~10x faster on big snapshots
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader

_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_SCALAR = yaml.constructor.SafeConstructor()


@dataclass
class Document:
    """One YAML/JSON document of one file."""

    file: str
    index: int
    value: Any
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int | None:
        """Line of the node at `path`, or of its nearest existing ancestor."""
        p = tuple(path)
        while True:
            if p in self.lines:
                return self.lines[p]
            if not p:
                return None
            p = p[:-1]

    def sub(self, prefix: Path) -> Document:
        """The document rooted at `prefix` (used for `kind: List` items), same lines."""
        n = len(prefix)
        lines = {k[n:]: v for k, v in self.lines.items() if k[:n] == prefix}
        value: Any = self.value
        for part in prefix:
            value = value[part]
        return SubDocument(self.file, self.index, value, lines, prefix)


@dataclass
class SubDocument(Document):
    prefix: Path = ()


class _Builder:
    def __init__(self, file: str, index: int) -> None:
        self.file = file
        self.index = index
        self.lines: dict[Path, int] = {}
        self.issues: list[ValidationIssue] = []
        self._stack: set[int] = set()

    def issue(self, path: Path, line: int | None, message: str) -> None:
        from ciliary.model.errors import format_path

        self.issues.append(
            ValidationIssue(self.file, line, self.index, None, format_path(path), message)
        )

    def build(self, node: yaml.Node, path: Path, depth: int) -> Any:
        line = node.start_mark.line + 1
        self.lines.setdefault(path, line)
        if depth > MAX_DEPTH:
            self.issue(path, line, f"nesting deeper than {MAX_DEPTH} levels")
            return None
        if id(node) in self._stack:
            self.issue(path, line, "recursive YAML alias")
            return None
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _TIMESTAMP_TAG:
                return node.value
            try:
                return _SCALAR.construct_object(node, deep=True)
            except (yaml.YAMLError, ValueError, OverflowError) as e:
                self.issue(path, line, f"bad scalar {node.value!r}: {e}")
                return None
        self._stack.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode):
                out: dict[Any, Any] = {}
                for knode, vnode in node.value:
                    if knode.tag == "tag:yaml.org,2002:merge":
                        self.issue(path, knode.start_mark.line + 1, "YAML merge keys (<<) are not supported")
                        continue
                    if not isinstance(knode, yaml.ScalarNode):
                        self.issue(path, knode.start_mark.line + 1, "mapping keys must be strings")
                        continue
                    key: Any = knode.value if knode.tag == _TIMESTAMP_TAG else _SCALAR.construct_object(knode)
                    if not isinstance(key, str):
                        # Kubernetes' decoder only accepts string keys; keep the text.
                        key = knode.value
                    kpath = (*path, key)
                    kline = knode.start_mark.line + 1
                    if key in out:
                        first = self.lines.get(kpath)
                        self.issue(kpath, kline, f"duplicate key {key!r} (first defined on line {first})")
                        continue
                    self.lines[kpath] = kline
                    out[key] = self.build(vnode, kpath, depth + 1)
                return out
        finally:
            self._stack.discard(id(node))
        self.issue(path, line, f"unsupported YAML node {node.tag}")
        return None


class _LazyLines(dict[Path, int]):
    """Line numbers of a JSON document, computed (by composing it as YAML) on first use:
    only errors need them, and JSON itself parses ~30x faster than YAML."""

    def __init__(self, text: str, file: str) -> None:
        super().__init__()
        self._text: str | None = text
        self._file = file

    def _fill(self) -> None:
        if self._text is not None:
            text, self._text = self._text, None
            try:
                docs = _parse_yaml(text, self._file)
                if docs:
                    self.update(docs[0].lines)
            except LoadError:
                pass

    def __contains__(self, key: object) -> bool:
        self._fill()
        return super().__contains__(key)

    def __getitem__(self, key: Path) -> int:
        self._fill()
        return super().__getitem__(key)

    def get(self, key: Path, default: Any = None) -> Any:
        self._fill()
        return super().get(key, default)

    def items(self) -> Any:
        self._fill()
        return super().items()

    def __iter__(self) -> Any:
        self._fill()
        return super().__iter__()

    def __len__(self) -> int:
        self._fill()
        return super().__len__()


class _Duplicate(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _Duplicate
    return out


def _depth_ok(value: Any) -> bool:
    stack = [(value, 0)]
    while stack:
        v, d = stack.pop()
        if d > MAX_DEPTH:
            return False
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values() if isinstance(x, (dict, list)))
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v if isinstance(x, (dict, list)))
    return True


def parse_text(text: str, file: str) -> list[Document]:
    """Parse one file's text into documents. Raises LoadError on any syntax problem."""
    if file.endswith(".json"):
        # Fast path; anything unusual (duplicates, syntax errors) takes the YAML path,
        # which reports it with a line.
        try:
            value = json.loads(text, object_pairs_hook=_no_duplicates)
        except (ValueError, _Duplicate, RecursionError):
            pass
        else:
            if value is None:
                return []
            if _depth_ok(value):
                return [Document(file, 0, value, _LazyLines(text, file))]
    return _parse_yaml(text, file)


def _parse_yaml(text: str, file: str) -> list[Document]:
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as e:
        if file.endswith(".json"):
            return _parse_json_fallback(text, file, e)
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        msg = " ".join(str(x) for x in (e.context, e.problem) if x)
        raise LoadError([ValidationIssue(file, line, None, None, "", f"malformed YAML: {msg}")]) from None
    except (yaml.YAMLError, RecursionError) as e:
        raise LoadError([ValidationIssue(file, None, None, None, "", f"malformed YAML: {e}")]) from None
    docs: list[Document] = []
    issues: list[ValidationIssue] = []
    for i, node in enumerate(nodes):
        if node is None:
            continue
        b = _Builder(file, i)
        try:
            value = b.build(node, (), 0)
        except RecursionError:
            b.issue((), node.start_mark.line + 1, "nesting too deep")
            value = None
        finally:
            # SafeConstructor remembers every node it built; forget them (memory, GC time).
            _SCALAR.constructed_objects.clear()
            _SCALAR.recursive_objects.clear()
        issues.extend(b.issues)
        if value is not None:
            docs.append(Document(file, i, value, b.lines))
    if issues:
        raise LoadError(issues)
    return docs


def _parse_json_fallback(text: str, file: str, yaml_error: yaml.MarkedYAMLError) -> list[Document]:
    dups: list[str] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                dups.append(k)
            out[k] = v
        return out

    try:
        value = json.loads(text, object_pairs_hook=hook)
    except (json.JSONDecodeError, RecursionError) as e:
        line = getattr(e, "lineno", None)
        raise LoadError([ValidationIssue(file, line, None, None, "", f"malformed JSON: {e}")]) from None
    if dups:
        raise LoadError(
            [ValidationIssue(file, None, 0, None, "", f"duplicate key {k!r}") for k in dups]
        )
    return [Document(file, 0, value, {})]
