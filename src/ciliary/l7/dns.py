"""The DNS proxy's check of a query name: L7 `dns` rules (semantics §6.5, §7).

Sources (cilium/cilium): pkg/fqdn/dnsproxy/proxy.go `GeneratePattern` and `CheckAllowed`.
The DNS proxy joins the rules' *unanchored* regexes into `^(?:a|b|...)$` and matches it
against `strings.ToLower(dns.Fqdn(qname))`. A star-only `matchPattern` there yields the
match-all pattern `(?:)`: **the proxy allows every query name**, even malformed ones such
as `.io.` that the `toFQDNs` selector regex for `*` rejects. An empty DNS rule list allows
every name as well.

Name normalisation, Cilium's pattern regexes and the `toFQDNs` side (which selectors match
a name, the `fqdn:` identity labels) live below the policy layer in `ciliary.identity.fqdn`
and are re-exported here. `DNSMatcher` evaluates the common shapes with string operations
proven equal to the regex by the tests, and everything else with one combined RE2; its memo
per query name is bounded and never changes an answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache

from ciliary.identity.fqdn import (
    LABEL_CHARS,
    MATCH_ALL_ANCHORED,
    MATCH_ALL_UNANCHORED,
    PATTERN_CHARS,
    FQDNSelectorIndex,
    FQDNSelectorKey,
    PatternShape,
    check_chars,
    dns_labels,
    fqdn,
    fqdn_identity_label,
    fqdn_selector_key,
    is_dns_wildcard,
    match_name_regex,
    match_pattern_regex,
    sanitize_pattern,
    to_anchored_regexp,
    to_unanchored_regexp,
)
from ciliary.model.cilium import FQDNSelector
from ciliary.re2util import Matcher, fullmatcher

__all__ = [
    "MATCH_ALL_ANCHORED",
    "MATCH_ALL_UNANCHORED",
    "DNSMatcher",
    "FQDNSelectorIndex",
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


def dns_proxy_regex(rules: Iterable[FQDNSelector]) -> str:
    """dnsproxy.GeneratePattern: the one regex the DNS proxy matches query names against."""
    parts: list[str] = []
    rules = list(rules)
    if not rules:
        return MATCH_ALL_ANCHORED
    for r in rules:
        if r.match_name:
            check_chars(r.match_name, PATTERN_CHARS - {"*"}, "matchName")
            parts.append(to_unanchored_regexp(fqdn(r.match_name)))
        if r.match_pattern:
            rx = to_unanchored_regexp(sanitize_pattern(r.match_pattern))
            if rx == MATCH_ALL_UNANCHORED:
                return MATCH_ALL_ANCHORED
            parts.append(rx)
    return "^(?:" + "|".join(parts) + ")$"


class DNSMatcher:
    """One DNS rule set (`rules.dns`: `matchName`/`matchPattern` selectors) as the DNS proxy
    applies it: `matches(qname)` is its verdict for a query (`GeneratePattern` +
    `CheckAllowed`); an empty list or a star-only pattern allows every name. Answers are
    memoised per query name. (Which `toFQDNs` selectors match a name is
    `FQDNSelectorIndex`'s question.)"""

    __slots__ = (
        "_allow_all",
        "_exact",
        "_multi",
        "_multi_tails",
        "_regex",
        "_regex_tails",
        "_star_dot",
        "_star_other",
        "_star_other_tails",
        "matches",
        "selectors",
    )

    def __init__(self, selectors: Iterable[FQDNSelector], *, memo_size: int = 16384) -> None:
        self.selectors: tuple[FQDNSelector, ...] = tuple(selectors)
        # The verdict is a function of the name alone: memoised by lru_cache (C; bounded).
        self.matches: Callable[[str], bool] = lru_cache(maxsize=memo_size)(self._decide)
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
                check_chars(sel.match_name, PATTERN_CHARS - {"*"}, "matchName")
                texts.append(fqdn(sel.match_name))
            if sel.match_pattern:
                texts.append(sanitize_pattern(sel.match_pattern))
            for t in texts:
                shape = PatternShape(t)
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

    def __len__(self) -> int:
        return len(self.selectors)

    def _decide(self, qname: str) -> bool:
        """Would the DNS proxy allow a query for `qname`? (`matches` is this, memoised.)"""
        return self._allow_all or self._match(fqdn(qname))

    def _match(self, name: str) -> bool:
        if name in self._exact:
            return True
        if self._star_dot:
            # "*.x.": the star part has no dot, so the suffix starts at the first dot.
            i = name.find(".")
            if name[i:] in self._star_dot and not name[:i].strip(LABEL_CHARS):
                return True
        if self._multi and name.endswith(self._multi_tails):
            # "**.x.": one or more whole labels before the suffix.
            for suffix in self._multi_tails:
                if name.endswith(suffix):
                    prefix = name[: len(name) - len(suffix)]
                    if prefix and dns_labels(prefix):
                        return True
        if self._star_other and name.endswith(self._star_other_tails):
            for suffix in self._star_other_tails:
                if name.endswith(suffix) and not name[: len(name) - len(suffix)].strip(
                    LABEL_CHARS
                ):
                    return True
        return self._regex is not None and name.endswith(self._regex_tails) and self._regex(name)
