"""Label selectors as `hubble observe --label/--from-label/--to-label/--node-label` match them.

Hubble (pkg/hubble/filters/labels.go) translates the user's selector so that Kubernetes' parser
accepts Cilium label sources: a key's `source:` prefix becomes `source.`, and a key without a
source gets `any.`. The selector is then matched against the flow's labels parsed as a Cilium
`LabelArray`, whose `Has`/`Get` treat the text before the first dot as the source: `any`
matches every source, and two `cidr` labels match by prefix containment
(`cidr:10.0.0.0/8` selects a label `cidr:10.1.2.0/24`). Matching follows the Kubernetes
selector rules (`in`, `notin`, `=`, `==`, `!=`, exists, `!key`, `>`, `<`; requirements ANDed).

Contracts: parsing (`translate_selector`, then `_tokenize`, then `_Parser`) is pure and raises
`LabelSelectorError`; a compiled selector is a pure function of the parsed labels, shareable
between filters. `parse_label` and the CIDR parse are cached (bounded, keyed by text).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

SOURCE_ANY: Final = "any"
SOURCE_UNSPEC: Final = "unspec"
SOURCE_RESERVED: Final = "reserved"
SOURCE_CIDR: Final = "cidr"

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network

# A parsed label: (source, key, value).
ParsedLabel = tuple[str, str, str]


class LabelSelectorError(ValueError):
    pass


def _parse_source(text: str, delim: str) -> tuple[str, str]:
    if not text:
        return "", ""
    if text[0] == "$":
        return SOURCE_RESERVED, text[1:]
    i = text.find(delim)
    if i < 0:
        if delim != "." and text.startswith("reserved."):
            return SOURCE_RESERVED, text[len("reserved.") :]
        return "", text
    return text[:i], text[i + 1 :]


@lru_cache(maxsize=65536)
def parse_label(text: str, delim: str = ":") -> ParsedLabel:
    """Cilium's parseLabel: `source:key=value` (`delim` is `.` for selector keys)."""
    src, rest = _parse_source(text, delim)
    if not src:
        src = SOURCE_UNSPEC
    i = rest.find("=")
    if i < 0:
        return src, rest, ""
    if i == 0 and src == SOURCE_RESERVED:
        return src, rest[1:], ""
    return src, rest[:i], rest[i + 1 :]


@lru_cache(maxsize=16384)
def _cidr(key: str) -> IPNet | None:
    # Cilium writes IPv6 CIDR label keys with '-' for ':'.
    for text in (key, key.replace("-", ":")):
        try:
            return ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue
    return None


def _has_key(label: ParsedLabel, src: str, key: str) -> bool:
    """Cilium Label.HasKey(target): source-loose (`any`) and CIDR-aware."""
    lsrc = label[0]
    if src != SOURCE_ANY and lsrc != src:
        return False
    if src == SOURCE_CIDR and lsrc == SOURCE_CIDR:
        tc = _cidr(key)
        lc = _cidr(label[1])
        if (
            tc is not None
            and lc is not None
            and tc.version == lc.version
            and tc.prefixlen <= lc.prefixlen
            and lc.network_address in tc
        ):
            return True
    return label[1] == key


def _lookup(labels: Sequence[ParsedLabel], src: str, key: str) -> str | None:
    for lbl in labels:
        if _has_key(lbl, src, key):
            return lbl[2]
    return None


# ---- Kubernetes selector syntax --------------------------------------------------------------

_KEY_NAME_RE: Final = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")
_DNS1123_SUBDOMAIN_RE: Final = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z"
)
_VALUE_RE: Final = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?\Z")


def _validate_key(key: str) -> None:
    prefix, sep, name = key.rpartition("/")
    if sep and (not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN_RE.match(prefix)):
        raise LabelSelectorError(f"invalid label key {key!r}: bad prefix")
    if not name or len(name) > 63 or not _KEY_NAME_RE.match(name):
        raise LabelSelectorError(f"invalid label key {key!r}")


def _validate_value(value: str) -> None:
    if len(value) > 63 or not _VALUE_RE.match(value):
        raise LabelSelectorError(f"invalid label value {value!r}")


def translate_selector(selector: str) -> str:
    """Hubble's translateSelector: `k8s:foo in (a)` -> `k8s.foo in (a)`, `foo` -> `any.foo`."""
    out: list[str] = []
    i, n = 0, len(selector)
    while i < n:
        # advance to the next key
        while i < n and (selector[i].isspace() or selector[i] == "!"):
            out.append(selector[i])
            i += 1
        if i >= n:
            break
        # the key
        j = i
        while j < n and not (selector[j].isspace() or selector[j] in "=!,"):
            j += 1
        key = selector[i:j]
        if ":" not in key:
            key = "any:" + key
        out.append(key.replace(":", ".", 1))
        i = j
        # to the next requirement
        nesting = 0
        while i < n:
            ch = selector[i]
            out.append(ch)
            i += 1
            if ch == "(":
                nesting += 1
            elif ch == ")":
                nesting -= 1
            elif ch == "," and nesting == 0:
                break
    return "".join(out)


_TOKEN_RE: Final = re.compile(r"\s*(?:(==|!=|=|!|\(|\)|,|<|>)|([^\s=!(),<>]+))")

LabelsMatcher = Callable[[Sequence[ParsedLabel]], bool]


@dataclass(frozen=True, slots=True)
class LabelRequirement:
    key: str  # source.key form, as the k8s selector holds it
    op: str  # in notin exists !exists gt lt
    values: frozenset[str]

    def compile(self) -> LabelsMatcher:
        src, key, _ = parse_label(self.key, ".")
        if src == SOURCE_UNSPEC:
            src = SOURCE_ANY
        op, values = self.op, self.values
        if op == "exists":
            return lambda labels: _lookup(labels, src, key) is not None
        if op == "!exists":
            return lambda labels: _lookup(labels, src, key) is None
        if op == "in":

            def in_(labels: Sequence[ParsedLabel]) -> bool:
                v = _lookup(labels, src, key)
                return v is not None and v in values

            return in_
        if op == "notin":

            def notin(labels: Sequence[ParsedLabel]) -> bool:
                v = _lookup(labels, src, key)
                return v is None or v not in values

            return notin
        bound = int(next(iter(values)))
        greater = op == "gt"

        def cmp(labels: Sequence[ParsedLabel]) -> bool:
            v = _lookup(labels, src, key)
            if v is None:
                return False
            try:
                n = int(v)
            except ValueError:
                return False
            return n > bound if greater else n < bound

        return cmp


_Token = tuple[str, str]  # (kind, text): kind "op" or "id"


def _tokenize(text: str, selector: str) -> list[_Token]:
    """The tokens of a translated selector (`selector` is the user's text, for errors)."""
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN_RE.match(text, pos)
        if m is None or m.end() == pos:
            raise LabelSelectorError(f"unable to parse selector {selector!r}")
        tokens.append(("op", m[1]) if m[1] else ("id", m[2]))
        pos = m.end()
    return tokens


class _Parser:
    """Kubernetes' selector grammar over tokens: requirements separated by `,`."""

    __slots__ = ("i", "selector", "tokens")

    def __init__(self, tokens: list[_Token], selector: str) -> None:
        self.tokens = tokens
        self.selector = selector
        self.i = 0

    def error(self, what: str) -> LabelSelectorError:
        return LabelSelectorError(f"unable to parse selector {self.selector!r}: {what}")

    def done(self) -> bool:
        return self.i >= len(self.tokens)

    def take(self, token: _Token) -> bool:
        """Consume `token` if it is next."""
        if self.i < len(self.tokens) and self.tokens[self.i] == token:
            self.i += 1
            return True
        return False

    def take_id(self) -> str | None:
        """Consume the next token if it is an identifier."""
        if self.i < len(self.tokens) and self.tokens[self.i][0] == "id":
            self.i += 1
            return self.tokens[self.i - 1][1]
        return None

    def expect_id(self, what: str) -> str:
        value = self.take_id()
        if value is None:
            raise self.error(f"expected {what}")
        return value

    def requirements(self) -> list[LabelRequirement]:
        reqs: list[LabelRequirement] = []
        while not self.done():
            reqs.append(self.requirement())
            if not self.done():
                if not self.take(("op", ",")):
                    raise self.error("expected ','")
                if self.done():
                    raise self.error("trailing ','")
        return reqs

    def requirement(self) -> LabelRequirement:
        negate = self.take(("op", "!"))
        key = self.expect_id("a key")
        _validate_key(key)
        if negate:
            return LabelRequirement(key, "!exists", frozenset())
        if self.done() or self.tokens[self.i] == ("op", ","):
            return LabelRequirement(key, "exists", frozenset())
        kind, tok = self.tokens[self.i]
        self.i += 1
        if kind == "op" and tok in ("=", "==", "!="):
            value = self.take_id() or ""
            _validate_value(value)
            return LabelRequirement(key, "notin" if tok == "!=" else "in", frozenset([value]))
        if kind == "op" and tok in ("<", ">"):
            value = self.expect_id("a number")
            try:
                int(value)
            except ValueError:
                raise self.error(f"{value!r} is not an integer") from None
            return LabelRequirement(key, "gt" if tok == ">" else "lt", frozenset([value]))
        if kind == "id" and tok in ("in", "notin"):
            return LabelRequirement(key, tok, frozenset(self.value_set()))
        raise self.error(f"unexpected {tok!r}")

    def value_set(self) -> list[str]:
        """`(v1, v2, ...)` after `in`/`notin`; a missing value is the empty string."""
        if not self.take(("op", "(")):
            raise self.error("expected '('")
        values: list[str] = []
        while True:
            values.append(self.take_id() or "")
            if self.take(("op", ",")):
                continue
            if self.take(("op", ")")):
                break
            raise self.error("expected ')'")
        if values == [""]:
            raise LabelSelectorError(
                f"invalid selector {self.selector!r}: for 'in', 'notin' operators, "
                "values set can't be empty"
            )
        for v in values:
            _validate_value(v)
        return values


def parse_selector(selector: str) -> list[LabelRequirement]:
    """Parse a hubble label selector into Kubernetes requirements (ANDed)."""
    return _Parser(_tokenize(translate_selector(selector), selector), selector).requirements()


def compile_selector(selector: str) -> LabelsMatcher:
    """A predicate over parsed labels; the empty selector matches everything."""
    matchers = [r.compile() for r in parse_selector(selector)]
    if not matchers:
        return lambda labels: True
    if len(matchers) == 1:
        return matchers[0]
    return lambda labels: all(m(labels) for m in matchers)


def parse_labels(texts: object) -> list[ParsedLabel]:
    """A flow's `labels` list parsed as Cilium labels (non-strings ignored)."""
    if not isinstance(texts, list):
        return []
    return [parse_label(t) for t in texts if isinstance(t, str)]
