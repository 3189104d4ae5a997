"""DNS names and FQDN patterns: L7 `dns` rules (DNS proxy) and `toFQDNs` selectors (§6.5, §7).

Sources (cilium/cilium):

* pkg/fqdn/matchpattern/matchpattern.go — `Sanitize`, `ToAnchoredRegexp`,
  `ToUnAnchoredRegexp`, `escapeRegexpCharacters` (newest code): a pattern made only of
  `*` (optionally with one trailing `.`) matches every well-formed name and the root
  `.`; a leading run of two or more `*` followed by `.` matches one or more whole labels;
  any other run of `*` matches zero or more of `[-a-zA-Z0-9_]` (never a dot); `.` is
  literal. Patterns are trimmed and lower-cased, then get a trailing dot (`Sanitize`).
* pkg/fqdn/dns/dns.go `FQDN` (and github.com/cilium/dns `Fqdn`): lower-case, add the
  trailing dot unless the name already ends with an unescaped one.
* pkg/policy/api/fqdn.go `FQDNSelector.ToRegex`: matchName → `ToAnchoredRegexp(FQDN(name))`,
  matchPattern → `ToAnchoredRegexp(Sanitize(pattern))`; `IdentityLabel` → label
  `fqdn:<matchName or matchPattern, as written>` on the identities of selected IPs.
* pkg/fqdn/dnsproxy/proxy.go `GeneratePattern` and `CheckAllowed` — the DNS proxy joins
  the rules' *unanchored* regexes into `^(?:a|b|…)$` and matches it against
  `strings.ToLower(dns.Fqdn(qname))`. A star-only `matchPattern` there yields the
  match-all pattern `(?:)`: **the proxy allows every query name**, even malformed ones
  such as `.io.` that the `toFQDNs` selector regex for `*` rejects. An empty DNS rule list
  allows every name as well.

Open question 11 (`**` not at the start) — decision: newest code. Only a *leading* run of
two or more stars followed by a dot is the multi-label wildcard; a `**` anywhere else
collapses to the single-label `[-a-zA-Z0-9_]*` (`a.**.com` matches `a.x.com` and `a..com`,
not `a.x.y.com`). The historical "`**` anywhere" variant is not implemented.

Matching semantics are RE2's (Go's regexp is RE2); `match_name_regex` and
`match_pattern_regex` return Cilium's exact regex strings. `DNSMatcher` evaluates the
common shapes (literal names, `*.suffix`, `**.suffix`, star-only) with string operations
proven equal to those regexes by the tests, and everything else with one combined RE2.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NewType

from ciliary.l7._re2util import Matcher, fullmatcher
from ciliary.model.cilium import FQDNSelector

__all__ = [
    "MATCH_ALL_ANCHORED",
    "MATCH_ALL_UNANCHORED",
    "DNSMatcher",
    "FQDNSelectorKey",
    "dns_proxy_regex",
    "fqdn",
    "fqdn_identity_label",
    "fqdn_selector_key",
    "is_dns_wildcard",
    "match_name_regex",
    "match_pattern_regex",
    "sanitize_pattern",
    "to_anchored_regexp",
    "to_unanchored_regexp",
]

FQDNSelectorKey = NewType("FQDNSelectorKey", str)
"""The value of an FQDN identity label: a selector's matchName, else its matchPattern."""

# matchpattern.go
ALLOWED_DNS_CHARS = "[-a-zA-Z0-9_]"
_DNS_WILDCARD_GROUP = "(" + ALLOWED_DNS_CHARS + "+([.]" + ALLOWED_DNS_CHARS + "+){0,})[.]"
MATCH_ALL_ANCHORED = "(?:)"
MATCH_ALL_UNANCHORED = ".*"
_STAR_ONLY_ANCHORED = "(^(" + ALLOWED_DNS_CHARS + "+[.])+$)|(^[.]$)"

_LABEL_CHARS = "-abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
_PATTERN_CHARS = frozenset(_LABEL_CHARS + ".*")
# Go's unicode.IsSpace (strings.TrimSpace).
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def _go_lower(s: str) -> str:
    """Go's strings.ToLower: per-rune simple case mapping (Python's str.lower applies the
    full mapping, e.g. 'İ' -> 'i̇', and final-sigma context)."""
    if s.isascii():
        return s.lower()
    out = []
    for c in s:
        low = c.lower()
        out.append(low if len(low) == 1 else ("i" if c == "\u0130" else c))
    return "".join(out)


def _is_fqdn(s: str) -> bool:
    """dns.IsFqdn: ends with a dot that is not escaped by an odd number of backslashes
    (counted in UTF-8 bytes, as Go does)."""
    if not s.endswith("."):
        return False
    body = s[:-1]
    if not body.endswith("\\"):
        return True
    stripped = body.rstrip("\\")
    trailing = len(body) - len(stripped)
    last = len(stripped[-1].encode("utf-8", "surrogatepass")) if stripped else 1
    return (trailing + last) % 2 != 0


def fqdn(name: str) -> str:
    """A query name as Cilium compares it: lower-cased, fully qualified (trailing dot)."""
    if name.isascii():
        low = name.lower()
        if not low.endswith("."):
            return low + "."
        if not low.endswith("\\."):
            return low
    else:
        low = _go_lower(name)
    return low if _is_fqdn(low) else low + "."


def is_dns_wildcard(pattern: str) -> bool:
    """matchpattern.isDNSWildcard: only stars, optionally followed by one dot."""
    if pattern.endswith("."):
        pattern = pattern[:-1]
    return pattern != "" and pattern.strip("*") == ""


def sanitize_pattern(pattern: str) -> str:
    """matchpattern.Sanitize: star-only patterns unchanged, others in FQDN form."""
    return pattern if is_dns_wildcard(pattern) else fqdn(pattern)


def _check_chars(value: str, allowed: frozenset[str], what: str) -> None:
    bad = sorted({c for c in value if c not in allowed})
    if bad:
        raise ValueError(f"invalid characters {''.join(bad)!r} in {what} {value!r}")


def _escape(pattern: str) -> str:
    """matchpattern.escapeRegexpCharacters."""
    out: list[str] = []
    start = 0
    stars = len(pattern) - len(pattern.lstrip("*"))
    if stars >= 2 and stars < len(pattern) and pattern[stars] == ".":
        out.append(_DNS_WILDCARD_GROUP)
        start = stars + 1
    i = start
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == ".":
            out.append("[.]")
        elif c == "*":
            while i + 1 < n and pattern[i + 1] == "*":
                i += 1
            out.append(ALLOWED_DNS_CHARS + "*")
        else:
            out.append(c)
        i += 1
    return "".join(out)


def to_anchored_regexp(pattern: str) -> str:
    """matchpattern.ToAnchoredRegexp (pattern already sanitized)."""
    p = _go_lower(pattern.strip(_GO_SPACE))
    _check_chars(p, _PATTERN_CHARS, "matchPattern")
    if is_dns_wildcard(p):
        return _STAR_ONLY_ANCHORED
    return "^" + _escape(p) + "$"


def to_unanchored_regexp(pattern: str) -> str:
    """matchpattern.ToUnAnchoredRegexp (pattern already sanitized)."""
    p = _go_lower(pattern.strip(_GO_SPACE))
    _check_chars(p, _PATTERN_CHARS, "matchPattern")
    if is_dns_wildcard(p):
        return MATCH_ALL_UNANCHORED
    return _escape(p)


def match_name_regex(name: str) -> str:
    """The anchored RE2 regex Cilium uses for a `matchName` (FQDNSelector.ToRegex)."""
    _check_chars(name, _PATTERN_CHARS - {"*"}, "matchName")
    return to_anchored_regexp(fqdn(name))


def match_pattern_regex(pattern: str) -> str:
    """The anchored RE2 regex Cilium uses for a `matchPattern` (FQDNSelector.ToRegex)."""
    return to_anchored_regexp(sanitize_pattern(pattern))


def fqdn_selector_key(selector: FQDNSelector) -> FQDNSelectorKey:
    """The selector's identity-label value: matchName if set, else matchPattern, as written
    (pkg/policy/api/fqdn.go FQDNSelector.IdentityLabel)."""
    return FQDNSelectorKey(selector.match_name or selector.match_pattern or "")


def fqdn_identity_label(selector: FQDNSelector) -> str:
    """The label (`fqdn:<key>`) Cilium puts on identities of IPs this selector selects."""
    return "fqdn:" + fqdn_selector_key(selector)


def dns_proxy_regex(rules: Iterable[FQDNSelector]) -> str:
    """dnsproxy.GeneratePattern: the one regex the DNS proxy matches query names against."""
    parts: list[str] = []
    rules = list(rules)
    if not rules:
        return MATCH_ALL_ANCHORED
    for r in rules:
        if r.match_name:
            _check_chars(r.match_name, _PATTERN_CHARS - {"*"}, "matchName")
            parts.append(to_unanchored_regexp(fqdn(r.match_name)))
        if r.match_pattern:
            rx = to_unanchored_regexp(sanitize_pattern(r.match_pattern))
            if rx == MATCH_ALL_UNANCHORED:
                return MATCH_ALL_ANCHORED
            parts.append(rx)
    return "^(?:" + "|".join(parts) + ")$"


# ---------------------------------------------------------------------------------------
# Fast evaluation
# ---------------------------------------------------------------------------------------


def _labels(s: str) -> bool:
    """`s` matches [-a-zA-Z0-9_]+([.][-a-zA-Z0-9_]+)* (one or more dot-separated labels)."""
    return all(lbl and not lbl.strip(_LABEL_CHARS) for lbl in s.split("."))


def _star_only_selector(name: str) -> bool:
    """The anchored star-only regex: `(^([-a-zA-Z0-9_]+[.])+$)|(^[.]$)`."""
    return name == "." or (name.endswith(".") and _labels(name[:-1]))


def _tail_guard(rx: Matcher, tail: str) -> Matcher:
    """`rx`, skipped for names that do not end with the pattern's literal tail."""

    def guarded(name: str) -> bool:
        return name.endswith(tail) and rx(name)

    return guarded


class _Shape:
    """A sanitized, lower-cased pattern classified for string-level matching.

    kind: "literal" (no star), "star" (a star run then a star-free suffix, e.g. `*.x.`,
    `*x.`), "multi" (`**.` then a star-free suffix), "all" (star-only), "regex" (other).
    """

    __slots__ = ("kind", "suffix", "tail", "text")

    def __init__(self, sanitized: str) -> None:
        p = _go_lower(sanitized.strip(_GO_SPACE))
        _check_chars(p, _PATTERN_CHARS, "matchPattern")
        self.text = p
        self.suffix = ""
        self.tail = p[p.rfind("*") + 1 :]  # literal text after the last star
        if is_dns_wildcard(p):
            self.kind = "all"
        elif "*" not in p:
            self.kind = "literal"
        else:
            rest = p.lstrip("*")
            stars = len(p) - len(rest)
            if "*" in rest or stars == 0:
                self.kind = "regex"
            elif stars >= 2 and rest.startswith("."):
                self.kind, self.suffix = "multi", rest  # suffix starts with "."
            else:
                self.kind, self.suffix = "star", rest


class _SelectorIndex:
    """The selectors' `toFQDNs` regexes, indexed by shape: `select(name)` returns the keys
    of every selector matching `name`, in selector order, without duplicates."""

    __slots__ = (
        "keys",
        "literal",
        "multi",
        "multi_tails",
        "regex",
        "star_dot",
        "star_only",
        "star_other",
        "star_other_tails",
    )

    def __init__(self, selectors: Iterable[FQDNSelector]) -> None:
        keys: list[FQDNSelectorKey] = []
        self.literal: dict[str, list[int]] = {}
        self.star_dot: dict[str, list[int]] = {}
        self.multi: dict[str, list[int]] = {}
        self.star_other: dict[str, list[int]] = {}
        self.star_only: list[int] = []
        self.regex: list[tuple[int, Matcher]] = []
        for sel in selectors:
            if sel.match_name:
                _check_chars(sel.match_name, _PATTERN_CHARS - {"*"}, "matchName")
                text = fqdn(sel.match_name)
            elif sel.match_pattern:
                text = sanitize_pattern(sel.match_pattern)
            else:
                continue
            pos = len(keys)
            keys.append(fqdn_selector_key(sel))
            shape = _Shape(text)
            if shape.kind == "literal":
                self.literal.setdefault(shape.text, []).append(pos)
            elif shape.kind == "star":
                table = self.star_dot if shape.suffix.startswith(".") else self.star_other
                table.setdefault(shape.suffix, []).append(pos)
            elif shape.kind == "multi":
                self.multi.setdefault(shape.suffix, []).append(pos)
            elif shape.kind == "all":
                self.star_only.append(pos)
            else:
                rx = fullmatcher(to_unanchored_regexp(text))
                self.regex.append((pos, _tail_guard(rx, shape.tail)))
        self.keys = tuple(keys)
        self.multi_tails = tuple(self.multi)
        self.star_other_tails = tuple(self.star_other)

    def select(self, name: str) -> list[FQDNSelectorKey]:
        found: list[int] = []
        lit = self.literal.get(name)
        if lit:
            found.extend(lit)
        if self.star_dot:
            i = name.find(".")
            got = self.star_dot.get(name[i:])
            if got and not name[:i].strip(_LABEL_CHARS):
                found.extend(got)
        if self.multi and name.endswith(self.multi_tails):
            for suffix in self.multi_tails:
                if name.endswith(suffix):
                    prefix = name[: len(name) - len(suffix)]
                    if prefix and _labels(prefix):
                        found.extend(self.multi[suffix])
        if self.star_other and name.endswith(self.star_other_tails):
            for suffix in self.star_other_tails:
                if name.endswith(suffix) and not name[: len(name) - len(suffix)].strip(
                    _LABEL_CHARS
                ):
                    found.extend(self.star_other[suffix])
        if self.star_only and _star_only_selector(name):
            found.extend(self.star_only)
        for pos, rx in self.regex:
            if rx(name):
                found.append(pos)
        if not found:
            return []
        found.sort()
        out: list[FQDNSelectorKey] = []
        for pos in found:
            key = self.keys[pos]
            if key not in out:
                out.append(key)
        return out


class DNSMatcher:
    """A list of `matchName`/`matchPattern` selectors (one DNS rule set or the `toFQDNs` of
    a rule).

    * `matches(qname)`: the DNS proxy's verdict for a query (`GeneratePattern` +
      `CheckAllowed`); an empty list or a star-only pattern allows every name.
    * `matching(qname)`: the selectors whose `toFQDNs` regex (`FQDNSelector.ToRegex`)
      matches the name, as identity-label keys in selector order (deduplicated); this is
      what gives an IP its `fqdn:` labels. Star-only patterns reject malformed names here.

    Both answers are memoised per query name (bounded).
    """

    __slots__ = (
        "_allow_all",
        "_exact",
        "_memo",
        "_memo_size",
        "_multi",
        "_multi_tails",
        "_regex",
        "_regex_tails",
        "_select_memo",
        "_selectors",
        "_star_dot",
        "_star_other",
        "_star_other_tails",
        "selectors",
    )

    def __init__(self, selectors: Iterable[FQDNSelector], *, memo_size: int = 16384) -> None:
        self.selectors: tuple[FQDNSelector, ...] = tuple(selectors)
        self._memo: dict[str, bool] = {}
        self._select_memo: dict[str, list[FQDNSelectorKey]] = {}
        self._memo_size = memo_size
        # The DNS proxy's view (unanchored parts under one anchor == each part anchored).
        self._allow_all = dns_proxy_regex(self.selectors) == MATCH_ALL_ANCHORED
        self._exact: set[str] = set()
        self._star_dot: dict[str, None] = {}  # "*.x." -> ".x."
        self._multi: dict[str, None] = {}  # "**.x." -> ".x."
        self._star_other: list[str] = []  # "*x." -> "x."
        regex_parts: list[str] = []
        regex_tails: list[str] = []
        for sel in self.selectors:
            texts = []
            if sel.match_name:
                _check_chars(sel.match_name, _PATTERN_CHARS - {"*"}, "matchName")
                texts.append(fqdn(sel.match_name))
            if sel.match_pattern:
                texts.append(sanitize_pattern(sel.match_pattern))
            for t in texts:
                shape = _Shape(t)
                if shape.kind == "literal":
                    self._exact.add(shape.text)
                elif shape.kind == "star":
                    if shape.suffix.startswith("."):
                        self._star_dot[shape.suffix] = None
                    else:
                        self._star_other.append(shape.suffix)
                elif shape.kind == "multi":
                    self._multi[shape.suffix] = None
                elif shape.kind == "regex":
                    regex_parts.append(to_unanchored_regexp(t))
                    regex_tails.append(shape.tail)
        self._regex: Matcher | None = (
            fullmatcher("(?:" + "|".join(regex_parts) + ")") if regex_parts else None
        )
        # Every match of a pattern ends with its literal text after the last star: names
        # ending with none of them skip RE2.
        self._regex_tails = tuple(regex_tails)
        self._star_other_tails = tuple(self._star_other)
        self._multi_tails = tuple(self._multi)
        # Per selector, for `matching` (anchored FQDNSelector.ToRegex semantics).
        self._selectors = _SelectorIndex(self.selectors)

    def __len__(self) -> int:
        return len(self.selectors)

    def matches(self, qname: str) -> bool:
        """Would the DNS proxy allow a query for `qname`?"""
        memo = self._memo
        hit = memo.get(qname)
        if hit is None:
            hit = self._allow_all or self._match(fqdn(qname))
            if len(memo) >= self._memo_size:
                memo.clear()
            memo[qname] = hit
        return hit

    def _match(self, name: str) -> bool:
        if name in self._exact:
            return True
        if self._star_dot:
            # "*.x.": the star part has no dot, so the suffix starts at the first dot.
            i = name.find(".")
            if name[i:] in self._star_dot and not name[:i].strip(_LABEL_CHARS):
                return True
        if self._multi and name.endswith(self._multi_tails):
            # "**.x.": one or more whole labels before the suffix.
            for suffix in self._multi_tails:
                if name.endswith(suffix):
                    prefix = name[: len(name) - len(suffix)]
                    if prefix and _labels(prefix):
                        return True
        if self._star_other and name.endswith(self._star_other_tails):
            for suffix in self._star_other_tails:
                if name.endswith(suffix) and not name[: len(name) - len(suffix)].strip(
                    _LABEL_CHARS
                ):
                    return True
        return self._regex is not None and name.endswith(self._regex_tails) and self._regex(name)

    def matching(self, qname: str) -> list[FQDNSelectorKey]:
        """Identity-label keys of the selectors whose `toFQDNs` regex matches `qname`."""
        memo = self._select_memo
        hit = memo.get(qname)
        if hit is None:
            hit = self._selectors.select(fqdn(qname))
            if len(memo) >= self._memo_size:
                memo.clear()
            memo[qname] = hit
        return list(hit)
