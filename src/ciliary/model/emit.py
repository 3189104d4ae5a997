"""Policy objects as YAML text, with comments: what `ciliary generate` writes.

Rules: the emitter takes plain data (dicts with string keys, lists, strings, ints, bools,
None) and writes block-style YAML in the order given, so the same data always gives the
same bytes. A string is written plain only when YAML reads it back as that same string;
otherwise it is double-quoted with JSON escapes (a JSON string is a YAML double-quoted
scalar). `Commented(value, comment)` puts `# comment` on the line before the value's item
in a list, or before its key in a mapping. `yaml.safe_load` of the output gives the data
back (the tests check this on random data).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Plain scalars that read back as strings: no leading indicator, no ": " or " #", and not
# a word YAML 1.1 (PyYAML) resolves to another type.
_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./:-]*(?:[ ][A-Za-z0-9_./:-]+)*(?<!:)\Z")
_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")
_NOT_STRINGS = re.compile(
    r"(?i:y|yes|n|no|true|false|on|off|null|~)\Z|[-+]?[0-9]|[-+]?\.(?:inf|nan)\Z|\.[0-9]"
)


@dataclass(frozen=True)
class Commented:
    """A value with a comment line written before it."""

    value: Any
    comment: str


def _scalar(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if not isinstance(v, str):
        raise TypeError(f"cannot write {type(v).__name__} as YAML")
    if _PLAIN.match(v) and ": " not in v and not _NOT_STRINGS.match(v):
        return v
    # JSON escapes are YAML's, but YAML reads NEL and the line/paragraph separators as
    # line breaks and refuses other non-printables: those are escaped too.
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", json.dumps(v, ensure_ascii=False))


_NOT_IN_COMMENTS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")


def _comment(text: str, indent: str) -> list[str]:
    # Comments carry names from the input: what YAML cannot hold in one becomes "?".
    lines = _NOT_IN_COMMENTS.sub("?", text).split("\n")
    return [f"{indent}# {line}".rstrip() for line in lines]


def _unwrap(v: Any) -> tuple[Any, str | None]:
    if isinstance(v, Commented):
        return v.value, v.comment
    return v, None


def _is_block(v: Any) -> bool:
    return isinstance(v, Mapping | list | tuple) and len(v) > 0


def _lines(v: Any, indent: int) -> list[str]:
    """`v` (a non-empty mapping or list) as block lines at `indent` spaces."""
    pad = " " * indent
    out: list[str] = []
    if isinstance(v, Mapping):
        for key, raw in v.items():
            value, comment = _unwrap(raw)
            if comment is not None:
                out += _comment(comment, pad)
            k = _scalar(key)
            if _is_block(value):
                # A list inside a mapping is not indented further (kubectl's style).
                out.append(f"{pad}{k}:")
                out += _lines(value, indent + 2 if isinstance(value, Mapping) else indent)
            else:
                out.append(f"{pad}{k}: {_inline(value)}")
        return out
    for raw in v:
        item, comment = _unwrap(raw)
        if comment is not None:
            out += _comment(comment, pad)
        if _is_block(item):
            inner = _lines(item, indent + 2)
            out.append(f"{pad}- {inner[0].lstrip()}" if not inner[0].lstrip().startswith("#") else f"{pad}-")
            out += inner[1:] if not inner[0].lstrip().startswith("#") else inner
        else:
            out.append(f"{pad}- {_inline(item)}")
    return out


def _inline(v: Any) -> str:
    if isinstance(v, Mapping):
        return "{}"  # only empty mappings are written inline
    if isinstance(v, list | tuple):
        return "[]"
    return _scalar(v)


def to_yaml(doc: Mapping[str, Any], header: str | None = None) -> str:
    """One YAML document (no `---`), `header` as comment lines first."""
    out = _comment(header, "") if header else []
    out += _lines(doc, 0)
    return "\n".join(out) + "\n"


def to_yaml_stream(docs: Sequence[tuple[Mapping[str, Any], str | None]]) -> str:
    """Several documents, each with its header comment, separated by `---`."""
    return "---\n".join(to_yaml(d, h) for d, h in docs)
