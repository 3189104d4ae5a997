"""DNS names and FQDN patterns (semantics §6.5, §7; Cilium pkg/fqdn/matchpattern,
pkg/fqdn/dnsproxy GeneratePattern/CheckAllowed, pkg/policy/api/fqdn.go)."""

from __future__ import annotations

import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from ciliary.identity.fqdn import FQDNSelectorIndex
from ciliary.l7 import (
    DNSMatcher,
    dns_proxy_regex,
    fqdn,
    fqdn_identity_label,
    fqdn_selector_key,
    match_name_regex,
    match_pattern_regex,
)
from ciliary.l7.dns import (
    MATCH_ALL_ANCHORED,
    is_dns_wildcard,
    sanitize_pattern,
    to_anchored_regexp,
    to_unanchored_regexp,
)
from ciliary.model.cilium import FQDNSelector

C = "[-a-zA-Z0-9_]"


def name(n: str) -> FQDNSelector:
    return FQDNSelector.model_validate({"matchName": n})


def pattern(p: str) -> FQDNSelector:
    return FQDNSelector.model_validate({"matchPattern": p})


def rx_match(regex: str, text: str) -> bool:
    """Go's regexp.MatchString (unanchored search; the regexes carry their anchors)."""
    return re2.search(regex, text) is not None


# --------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("api.stripe.com", "api.stripe.com."),
        ("API.Stripe.COM.", "api.stripe.com."),
        ("", "."),
        (".", "."),
        ("a..", "a.."),
        ("a\\.", "a\\.."),  # escaped final dot: not fully qualified
        ("a\\\\.", "a\\\\."),  # escaped backslash, real dot
        ("İo.com", "io.com."),  # Go's simple case mapping (Python: 'i̇')
        ("\u212aube.io", "kube.io."),  # Kelvin sign lower-cases to k in both
    ],
)
def test_fqdn_normalisation(raw: str, expected: str) -> None:
    assert fqdn(raw) == expected


def test_sanitize_and_wildcard_detection() -> None:
    # matchpattern_test.go TestMatchPatternSanitize
    assert sanitize_pattern("*") == "*"
    assert sanitize_pattern("*.") == "*."
    assert sanitize_pattern("*.com") == "*.com."
    assert sanitize_pattern("*.Cilium.IO") == "*.cilium.io."
    for p in ("*", "**", "***", "*.", "**."):
        assert is_dns_wildcard(p)
    for p in ("", ".", "*.com", "**.x", "*..", "a*"):
        assert not is_dns_wildcard(p)


# --------------------------------------------------------------------------------------
# Regex strings exactly as Cilium generates them
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "anchored", "unanchored"),
    [
        # matchpattern_test.go TestAnchored/UnAnchoredMatchPatternREConversion
        ("cilium.io.", "^cilium[.]io[.]$", "cilium[.]io[.]"),
        ("*.cilium.io.", "^" + C + "*[.]cilium[.]io[.]$", C + "*[.]cilium[.]io[.]"),
        ("*", "(^(" + C + "+[.])+$)|(^[.]$)", ".*"),
        (".", "^[.]$", "[.]"),
        ("**.cilium.io.", "^(" + C + "+([.]" + C + "+){0,})[.]cilium[.]io[.]$", None),
        ("a.**.com.", "^a[.]" + C + "*[.]com[.]$", None),
        ("part*ial.com.", "^part" + C + "*ial[.]com[.]$", None),
    ],
)
def test_regex_strings(source: str, anchored: str, unanchored: str | None) -> None:
    assert to_anchored_regexp(source) == anchored
    if unanchored is not None:
        assert to_unanchored_regexp(source) == unanchored


def test_match_name_and_pattern_regex() -> None:
    assert match_name_regex("API.stripe.com") == "^api[.]stripe[.]com[.]$"
    assert match_name_regex("_srv._tcp.x.") == "^_srv[.]_tcp[.]x[.]$"
    assert match_pattern_regex("*.tosspayments.com") == "^" + C + "*[.]tosspayments[.]com[.]$"
    assert match_pattern_regex("**") == match_pattern_regex("*")
    with pytest.raises(ValueError):
        match_pattern_regex("a+b.com")
    with pytest.raises(ValueError):
        match_name_regex("*.com")


def test_dns_proxy_regex() -> None:
    assert dns_proxy_regex([]) == MATCH_ALL_ANCHORED
    assert dns_proxy_regex([name("a.com"), pattern("*")]) == MATCH_ALL_ANCHORED
    assert dns_proxy_regex([name("A.com"), pattern("*.b.com")]) == (
        "^(?:a[.]com[.]|" + C + "*[.]b[.]com[.])$"
    )


# --------------------------------------------------------------------------------------
# The pattern table (§6.5 and Open question 11). Names in FQDN form.
# selector: toFQDNs (FQDNSelector.ToRegex); proxy: the DNS proxy for an L7 dns rule.
# --------------------------------------------------------------------------------------

STAR_NAMES_OK = [
    ".",
    "io.",
    "cilium.io.",
    "svc.cluster.local.",
    "service.namesace.svc.cluster.local.",
    "_foobar._tcp.cilium.io.",
]
STAR_NAMES_BAD = [".io.", ".cilium.io.", ".svc.cluster.local.", "a..b.", "héllo.", "a b."]

TABLE: list[tuple[str, str, bool]] = [
    *[(p, n, True) for p in ("*", "**", "***", "*.", "**.") for n in STAR_NAMES_OK],
    *[(p, n, False) for p in ("*", "**", "*.") for n in STAR_NAMES_BAD],
    # literal patterns (no star): exact, case-insensitive, trailing dot added
    ("cilium.io", "cilium.io.", True),
    ("cilium.io.", "cilium.io.", True),
    ("cilium.io", "anysub.cilium.io.", False),
    ("Cilium.IO", "cilium.io.", True),
    (".", ".", True),
    (".", ".io.", False),
    ("_foobar._tcp.cilium.io.", "_foobar._tcp.cilium.io.", True),
    ("_foobar._tcp.cilium.io.", "_tcp.cilium.io.", False),
    # a single star run: zero or more [-a-zA-Z0-9_], never a dot
    ("*.cilium.io", "sub.cilium.io.", True),
    ("*.cilium.io", "s-u_b9.cilium.io.", True),
    ("*.cilium.io", "cilium.io.", False),
    ("*.cilium.io", "a.b.cilium.io.", False),
    ("*.cilium.io", ".cilium.io.", True),  # zero characters: Cilium accepts the empty label
    ("*.cilium.io", "sub.cilium.io.evil.", False),
    ("*cilium.io", "cilium.io.", True),
    ("*cilium.io", "foocilium.io.", True),
    ("*cilium.io", "www.cilium.io.", False),
    ("part*ial.com", "partial.com.", True),
    ("part*ial.com", "part-extra-ial.com.", True),
    ("part*ial.com", "part.x.ial.com.", False),
    ("sub*.cilium.io", "sub.cilium.io.", True),
    ("sub*.cilium.io", "subdomain.cilium.io.", True),
    ("sub*.cilium.io", "www.cilium.io.", False),
    ("*.ci*.io", "anysub.cilium.io.", True),
    ("*.ci*.io", "anysub.ci.io.", True),
    ("*.ci*.io", "anysub.ciliumandmore.io.", True),
    ("*.ci*.io", "cilium.io.", False),
    ("*.*.cilium.io", "_foobar._tcp.cilium.io.", True),
    ("*.*.cilium.io", "a.cilium.io.", False),
    ("*.*.svc.cluster.local", "name.ns.svc.cluster.local.", True),
    ("*.*.svc.cluster.local", "svc.cluster.local.", False),
    ("*.Cilium.IO", "sub.cilium.io.", True),
    # a leading run of two or more stars then a dot: one or more whole labels
    ("**.cilium.io", "a.cilium.io.", True),
    ("**.cilium.io", "a.b.cilium.io.", True),
    ("**.cilium.io", "a.b.c.d.cilium.io.", True),
    ("**.cilium.io", "cilium.io.", False),
    ("**.cilium.io", ".cilium.io.", False),
    ("**.cilium.io", "a..cilium.io.", False),
    ("**.cilium.io", "acilium.io.", False),
    ("***.cilium.io", "a.b.cilium.io.", True),
    ("***.cilium.io", "cilium.io.", False),
    ("**.*.cilium.io", "x.y.cilium.io.", True),
    ("**.*.cilium.io", "y.cilium.io.", False),
    # Open question 11: "**" elsewhere is a single-label wildcard (newest code)
    ("a.**.com", "a.x.com.", True),
    ("a.**.com", "a..com.", True),
    ("a.**.com", "a.x.y.com.", False),
    ("**cilium.io", "foocilium.io.", True),
    ("**cilium.io", "foo.cilium.io.", False),
    ("x.**", "x.anything.", True),
    ("x.**", "x.a.b.", False),
]


@pytest.mark.parametrize(("pat", "qname", "expected"), TABLE)
def test_pattern_table_selector(pat: str, qname: str, expected: bool) -> None:
    assert rx_match(match_pattern_regex(pat), qname) == expected
    assert FQDNSelectorIndex([pattern(pat)]).matching(qname) == ([pat] if expected else [])


@pytest.mark.parametrize(("pat", "qname", "expected"), TABLE)
def test_pattern_table_dns_proxy(pat: str, qname: str, expected: bool) -> None:
    proxy_expected = True if is_dns_wildcard(pat) else expected  # star-only: match-all
    assert DNSMatcher([pattern(pat)]).matches(qname) == proxy_expected
    assert rx_match(dns_proxy_regex([pattern(pat)]), fqdn(qname)) == proxy_expected


def test_star_only_dns_rule_allows_malformed_names_but_selector_does_not() -> None:
    m, to_fqdns = DNSMatcher([pattern("*")]), FQDNSelectorIndex([pattern("*")])
    for q in (".io.", "a..b", "héllo", "", "a b"):
        assert m.matches(q)
        assert to_fqdns.matching(q) == [] or q == ""  # "" normalises to "." (the root)


def test_empty_dns_rule_list_allows_everything() -> None:
    m = DNSMatcher([])
    assert m.matches("anything.example.") and m.matches(".io.")
    assert FQDNSelectorIndex([]).matching("anything.example.") == []


def test_names_are_normalised_before_matching() -> None:
    m = DNSMatcher([name("api.stripe.com"), pattern("*.Internal.Example.com")])
    assert m.matches("API.STRIPE.COM")
    assert m.matches("api.stripe.com.")
    assert m.matches("db.internal.example.com")
    assert not m.matches("api.stripe.com.evil")


def test_matching_reports_identity_keys_in_selector_order_without_duplicates() -> None:
    sels = [
        pattern("*.example.com"),
        name("www.example.com"),
        pattern("**.example.com"),
        name("www.example.com"),
    ]
    m = FQDNSelectorIndex(sels)
    assert m.matching("WWW.example.com") == ["*.example.com", "www.example.com", "**.example.com"]
    assert m.matching("a.b.example.com") == ["**.example.com"]
    assert m.matching("example.com") == []


def test_identity_label() -> None:
    assert fqdn_selector_key(name("api.stripe.com")) == "api.stripe.com"
    assert fqdn_identity_label(name("api.stripe.com")) == "fqdn:api.stripe.com"
    assert fqdn_identity_label(pattern("*.tosspayments.com")) == "fqdn:*.tosspayments.com"
    assert fqdn_identity_label(name("API.Stripe.com")) == "fqdn:API.Stripe.com"  # as written


def test_memo_is_bounded() -> None:
    m = DNSMatcher([pattern("*.a.com")], memo_size=4)
    to_fqdns = FQDNSelectorIndex([pattern("*.a.com")], memo_size=4)
    for i in range(20):
        assert m.matches(f"x{i}.a.com") and to_fqdns.matching(f"x{i}.a.com") == ["*.a.com"]
    assert m.matches.cache_info().currsize <= 4 and len(to_fqdns._memo) <= 4  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------
# The string-level fast paths give exactly the RE2 answers
# --------------------------------------------------------------------------------------

_PATTERN = st.text(alphabet="ab-_.*A", min_size=1, max_size=8)
_NAME = st.text(alphabet="ab-_.A*é", max_size=10)


@settings(max_examples=600, deadline=None)
@given(
    st.lists(_PATTERN, min_size=1, max_size=4),
    st.lists(st.text(alphabet="ab.", min_size=1, max_size=6), max_size=2),
    st.lists(_NAME, max_size=6),
)
def test_fast_paths_agree_with_re2(
    patterns: list[str], names: list[str], qnames: list[str]
) -> None:
    sels = [pattern(p) for p in patterns] + [name(n) for n in names]
    m, to_fqdns = DNSMatcher(sels), FQDNSelectorIndex(sels)
    proxy_rx = dns_proxy_regex(sels)
    for q in qnames:
        n = fqdn(q)
        assert m.matches(q) == rx_match(proxy_rx, n), (patterns, names, q)
        expected = []
        for s in sels:
            key = fqdn_selector_key(s)
            rx = match_name_regex(s.match_name) if s.match_name else match_pattern_regex(key)
            if rx_match(rx, n) and key not in expected:
                expected.append(key)
        assert to_fqdns.matching(q) == expected, (patterns, names, q)


# --------------------------------------------------------------------------------------
# Seed article
# --------------------------------------------------------------------------------------


def test_seed_allow_external_apis() -> None:
    sels = [name("api.stripe.com"), pattern("*.tosspayments.com")]
    to_fqdns, proxy = FQDNSelectorIndex(sels), DNSMatcher(sels)
    assert to_fqdns.matching("api.stripe.com") == ["api.stripe.com"]
    assert to_fqdns.matching("x.tosspayments.com") == ["*.tosspayments.com"]
    assert to_fqdns.matching("tosspayments.com") == []
    assert to_fqdns.matching("evil.com") == []
    assert proxy.matches("api.stripe.com") and proxy.matches("x.tosspayments.com")
    assert not proxy.matches("tosspayments.com") and not proxy.matches("evil.com")
    dns_rule = DNSMatcher([pattern("*")])  # the DNS proxy rule: every lookup is allowed
    assert dns_rule.matches("evil.com")


def test_seed_cde_lockdown_dns_rules() -> None:
    dns_rule = DNSMatcher([pattern("*.internal.example.com"), name("api.pgprovider.com")])
    assert dns_rule.matches("ledger.internal.example.com")
    assert dns_rule.matches("api.pgprovider.com")
    assert not dns_rule.matches("internal.example.com")
    assert not dns_rule.matches("a.b.internal.example.com")
    assert not dns_rule.matches("api.stripe.com")
