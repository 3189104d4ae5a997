"""HTTP L7 matching (semantics §6.2; Cilium getHTTPRule + cilium/proxy network_policy.cc)."""

from __future__ import annotations

import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from ciliary.l7 import (
    HTTP_DENY_BODY,
    HTTP_DENY_STATUS,
    HeaderAction,
    HTTPPolicy,
    HTTPRequest,
    HTTPRule,
    LoggedHeader,
    grpc_request,
    http_policy,
)
from ciliary.model.cilium import HeaderMatch, PortRuleHTTP, Secret
from ciliary.re2util import ENVOY_RE2_MAX_PROGRAM_SIZE


def rule(**kw: object) -> PortRuleHTTP:
    return PortRuleHTTP.model_validate(kw)


def policy(*rules: PortRuleHTTP, **kw: object) -> HTTPPolicy:
    return HTTPPolicy(rules, **kw)  # type: ignore[arg-type]


def req(method: str = "GET", path: str = "/", host: str = "", **headers: str) -> HTTPRequest:
    return HTTPRequest(
        method, path, host, tuple((k.replace("_", "-"), v) for k, v in headers.items())
    )


def allowed(p: HTTPPolicy, r: HTTPRequest) -> bool:
    return p.check(r).allowed


# --------------------------------------------------------------------------------------
# path / method / host: RE2, whole value, AND within a rule, OR across rules
# --------------------------------------------------------------------------------------


# (rule fields, request, allowed): a policy of that one rule; test_one_rule_policy
FIELD_CASES = [
    # the path regex must match the whole path
    pytest.param({"path": "/public"}, req(path="/public"), True, id="fields-path-exact"),
    pytest.param({"path": "/public"}, req(path="/public/x"), False, id="fields-path-is-no-prefix-match"),
    pytest.param({"path": "/public"}, req(path="/x/public"), False, id="fields-path-is-no-suffix-match"),
    pytest.param({"path": "/public.*"}, req(path="/public/x"), True, id="fields-path-explicit-wildcard"),
    # open question 5: Envoy's :path keeps the query; Cilium matches a HeaderMatcher on
    # :path (not a PathMatcher)
    pytest.param({"path": "/public"}, req(path="/public?x=1"), False, id="fields-path-includes-query-string"),
    pytest.param({"path": r"/public(\?.*)?"}, req(path="/public?x=1"), True, id="fields-path-optional-query-given"),
    pytest.param({"path": r"/public(\?.*)?"}, req(path="/public"), True, id="fields-path-optional-query-absent"),
    # the method regex matches the whole method, case-sensitively
    pytest.param({"method": "GET|HEAD"}, req("GET"), True, id="fields-method-alternation-GET"),
    pytest.param({"method": "GET|HEAD"}, req("HEAD"), True, id="fields-method-alternation-HEAD"),
    pytest.param({"method": "GET|HEAD"}, req("get"), False, id="fields-method-case-sensitive"),
    pytest.param({"method": "GET|HEAD"}, req("GETX"), False, id="fields-method-whole-value"),
    pytest.param({"method": "GE"}, req("GET"), False, id="fields-method-is-no-prefix-match"),
    # the host regex matches the whole authority, port included
    pytest.param({"host": "api\\.example\\.com"}, req(host="api.example.com"), True, id="fields-host-exact"),
    pytest.param({"host": "api\\.example\\.com"}, req(host="api.example.com:8080"), False, id="fields-host-authority-has-the-port"),
    pytest.param({"host": "api\\.example\\.com"}, req(host="xapi.example.com"), False, id="fields-host-whole-value"),
    pytest.param({"host": "api\\.example\\.com(:[0-9]+)?"}, req(host="api.example.com:8080"), True, id="fields-host-optional-port"),
    # anchors inside rules still anchor at their own field
    pytest.param({"method": "^GET$", "path": "^/api/.*$", "host": "^h$"}, req("GET", "/api/v1", "h"), True, id="fields-anchors-per-field"),
    pytest.param({"method": "^GET$", "path": "^/api/.*$", "host": "^h$"}, req("GET", "/x/api/v1", "h"), False, id="fields-anchors-per-field-path-mismatch"),
    # \A and \z are text anchors: such rules are evaluated one by one, same answer
    pytest.param({"method": r"\AGET\z", "path": r"\A/api/.*"}, req("GET", "/api/x"), True, id="fields-text-anchors"),
    pytest.param({"method": r"\AGET\z", "path": r"\A/api/.*"}, req("POST", "/api/x"), False, id="fields-text-anchors-method-mismatch"),
]


def test_fields_are_anded_within_a_rule_and_rules_ored() -> None:
    p = policy(rule(method="GET", path="/a"), rule(method="POST", path="/b"))
    assert allowed(p, req("GET", "/a")) and allowed(p, req("POST", "/b"))
    assert not allowed(p, req("GET", "/b"))
    assert not allowed(p, req("POST", "/a"))
    assert p.check(req("POST", "/b")).rule_index == 1


def test_empty_rule_list_and_empty_rule_allow_everything() -> None:
    assert allowed(HTTPPolicy([]), req("DELETE", "/anything"))
    assert HTTPPolicy([]).check(req()).rule_index is None
    p = policy(rule(path="/a"), rule())
    d = p.check(req("PATCH", "/zzz", "h"))
    assert d.allowed and d.rule_index == 1


def test_first_rule_in_policy_order_is_reported() -> None:
    p = policy(rule(path="/x.*"), rule(method="GET"), rule(path="/xy"))
    assert p.check(req("GET", "/xy")).rule_index == 0
    assert p.check(req("GET", "/a")).rule_index == 1
    assert p.check(req("PUT", "/xy")).rule_index == 0


def test_deny_response_constants() -> None:
    assert HTTP_DENY_STATUS == 403
    assert HTTP_DENY_BODY == "Access denied\r\n" and len(HTTP_DENY_BODY) == 15


# --------------------------------------------------------------------------------------
# headers: "Name: value" (split at the first space, trailing ':' trimmed) / "Name"
# --------------------------------------------------------------------------------------


def with_headers(*headers: tuple[str, str]) -> HTTPRequest:
    return HTTPRequest("GET", "/", "", headers)


# (rule fields, request, allowed): a policy of that one rule; test_one_rule_policy
HEADER_CASES = [
    # "Name: value": the value is exact, the name case-insensitive
    pytest.param({"headers": ["X-Key: v1"]}, req(x_key="v1"), True, id="headers-name-value-exact"),
    pytest.param({"headers": ["X-Key: v1"]}, with_headers(("X-KEY", "v1")), True, id="headers-name-value-name-case-insensitive"),
    pytest.param({"headers": ["X-Key: v1"]}, req(x_key="V1"), False, id="headers-name-value-value-case-sensitive"),
    pytest.param({"headers": ["X-Key: v1"]}, req(x_key="v1 "), False, id="headers-name-value-trailing-space"),
    pytest.param({"headers": ["X-Key: v1"]}, req(), False, id="headers-name-value-header-missing"),
    # the value is everything after the first space
    pytest.param({"headers": ["X-Key: a b"]}, req(x_key="a b"), True, id="headers-value-after-first-space"),
    pytest.param({"headers": ["X-Key: a b"]}, req(x_key="a"), False, id="headers-value-after-first-space-partial"),
    # several trailing colons are all trimmed (strings.TrimRight)
    pytest.param({"headers": ["X-Key:: v"]}, req(x_key="v"), True, id="headers-trailing-colons-trimmed"),
    # "Name" alone is presence
    pytest.param({"headers": ["X-Key"]}, req(x_key=""), True, id="headers-name-only-present-empty"),
    pytest.param({"headers": ["X-Key"]}, req(x_key="anything"), True, id="headers-name-only-present"),
    pytest.param({"headers": ["X-Key"]}, req(other="1"), False, id="headers-name-only-absent"),
    # "X-Key:v" has no space: Cilium emits a presence matcher for a header named "x-key:v"
    pytest.param({"headers": ["X-Key:v"]}, req(x_key="v"), False, id="headers-no-space-is-not-name-value"),
    pytest.param({"headers": ["X-Key:v"]}, with_headers(("x-key:v", "")), True, id="headers-no-space-is-a-name-with-a-colon"),
    # "Name: " requires the header present and empty
    pytest.param({"headers": ["X-Key: "]}, req(x_key=""), True, id="headers-empty-value-present-empty"),
    pytest.param({"headers": ["X-Key: "]}, req(x_key="v"), False, id="headers-empty-value-present-not-empty"),
    pytest.param({"headers": ["X-Key: "]}, req(), False, id="headers-empty-value-absent"),
    # a multi-valued header is joined with commas
    pytest.param({"headers": ["X-Key: a,b"]}, with_headers(("x-key", "a"), ("X-Key", "b")), True, id="headers-multi-valued-joined"),
    pytest.param({"headers": ["X-Key: a"]}, with_headers(("x-key", "a"), ("X-Key", "b")), False, id="headers-multi-valued-first-only"),
    pytest.param({"headers": ["X-Key"]}, with_headers(("x-key", "a"), ("X-Key", "b")), True, id="headers-multi-valued-presence"),
]


def test_headers_and_path_combine() -> None:
    p = policy(rule(path="/a", headers=["X-Key: v"]), rule(path="/b"))
    assert allowed(p, req(path="/a", x_key="v"))
    assert not allowed(p, req(path="/a"))
    assert allowed(p, req(path="/b"))
    assert p.check(req(path="/b", x_key="v")).rule_index == 1


# --------------------------------------------------------------------------------------
# headerMatches and mismatch actions
# --------------------------------------------------------------------------------------


def hm(
    name: str, value: str | None = None, mismatch: str | None = None, **kw: object
) -> HeaderMatch:
    data: dict[str, object] = {"name": name, **kw}
    if value is not None:
        data["value"] = value
    if mismatch is not None:
        data["mismatch"] = mismatch
    return HeaderMatch.model_validate(data)


def test_header_match_without_mismatch_fails_the_rule() -> None:
    p = policy(rule(path="/a", headerMatches=[hm("X-Tok", "abc")]))
    assert allowed(p, req(path="/a", x_tok="abc"))
    assert not allowed(p, req(path="/a", x_tok="abd"))
    assert not allowed(p, req(path="/a"))
    d = p.check(req(path="/a", x_tok="abc"))
    assert d.header_actions == () and d.logged_mismatches == ()


def test_header_match_without_value_is_presence() -> None:
    p = policy(rule(headerMatches=[hm("X-Tok")]))
    assert allowed(p, req(x_tok=""))
    assert not allowed(p, req())


def test_mismatch_log_keeps_the_rule_matching_and_logs() -> None:
    p = policy(rule(path="/a", headerMatches=[hm("X-Tok", "abc", "LOG")]))
    d = p.check(req(path="/a", x_tok="zzz"))
    assert d.allowed and d.rule_index == 0
    assert d.header_actions == ()
    assert d.logged_mismatches == (LoggedHeader(0, "missing", "x-tok", "abc"),)
    ok = p.check(req(path="/a", x_tok="abc"))
    assert ok.allowed and ok.logged_mismatches == ()
    assert not allowed(p, req(path="/b", x_tok="zzz"))  # the other fields still apply


def test_mismatch_add_appends_the_value() -> None:
    p = policy(rule(headerMatches=[hm("X-Tok", "abc", "ADD")]))
    d = p.check(req(x_tok="zzz"))
    assert d.allowed
    assert d.header_actions == (HeaderAction(0, "ADD", "x-tok", "abc"),)
    assert d.logged_mismatches == (LoggedHeader(0, "missing", "x-tok", "abc"),)
    assert p.check(req()).header_actions == (HeaderAction(0, "ADD", "x-tok", "abc"),)


def test_mismatch_delete_removes_a_wrong_header_only() -> None:
    p = policy(rule(headerMatches=[hm("X-Tok", "abc", "DELETE")]))
    d = p.check(req(x_tok="zzz"))
    assert d.allowed
    assert d.header_actions == (HeaderAction(0, "DELETE", "x-tok", "zzz"),)
    assert d.logged_mismatches == (LoggedHeader(0, "rejected", "x-tok", "zzz"),)
    absent = p.check(req())
    assert absent.allowed and absent.header_actions == () and absent.logged_mismatches == ()
    # Presence match failed: nothing to delete.
    pres = policy(rule(headerMatches=[hm("X-Tok", None, "DELETE")])).check(req())
    assert pres.allowed and pres.header_actions == ()


def test_mismatch_replace_sets_the_expected_value() -> None:
    p = policy(rule(headerMatches=[hm("X-Tok", "abc", "REPLACE")]))
    d = p.check(req(x_tok="zzz"))
    assert d.allowed
    assert d.header_actions == (HeaderAction(0, "REPLACE", "x-tok", "abc"),)
    assert d.logged_mismatches == (
        LoggedHeader(0, "rejected", "x-tok", "zzz"),
        LoggedHeader(0, "missing", "x-tok", "abc"),
    )
    missing = p.check(req())
    assert missing.logged_mismatches == (LoggedHeader(0, "missing", "x-tok", "abc"),)


def test_header_actions_run_for_every_matching_rule_on_edited_headers() -> None:
    # No short-circuit once a rule has header actions: rule 1 sees rule 0's REPLACE.
    p = policy(
        rule(headerMatches=[hm("X", "1", "REPLACE")]),
        rule(headers=["X: 1"], headerMatches=[hm("Y", "2", "LOG")]),
        rule(path="/never", headerMatches=[hm("Z", "3", "ADD")]),
    )
    d = p.check(req(x="0"))
    assert d.allowed and d.rule_index == 0
    assert d.header_actions == (HeaderAction(0, "REPLACE", "x", "1"),)
    assert LoggedHeader(1, "missing", "y", "2") in d.logged_mismatches
    assert all(e.rule_index != 2 for e in d.logged_mismatches)


def test_header_match_with_action_only_rule_matches_everything() -> None:
    # A rule whose only condition is a LOG header match allows every request.
    p = policy(rule(path="/a"), rule(headerMatches=[hm("X", "1", "LOG")]))
    assert allowed(p, req(path="/zzz"))


# secrets ------------------------------------------------------------------------------


def secret_match(
    mismatch: str | None = None, value: str | None = None, ns: str | None = None
) -> HeaderMatch:
    sec: dict[str, object] = {"name": "tok"}
    if ns is not None:
        sec["namespace"] = ns
    return hm("Authorization", value, mismatch, secret=Secret.model_validate(sec))


@pytest.mark.parametrize("mismatch", [None, "LOG", "ADD", "DELETE", "REPLACE"])
def test_unreadable_secret_without_value_never_matches(mismatch: str | None) -> None:
    p = policy(rule(path="/a", headerMatches=[secret_match(mismatch)]))
    assert not allowed(p, req(path="/a", authorization="Bearer x"))
    assert not allowed(p, req(path="/a"))


def test_unreadable_secret_falls_back_to_value() -> None:
    p = policy(rule(headerMatches=[secret_match(None, "Bearer fallback")]))
    assert allowed(p, req(authorization="Bearer fallback"))
    assert not allowed(p, req(authorization="Bearer x"))


def test_secret_from_mapping_uses_policy_namespace_by_default() -> None:
    secrets = {("shop", "tok"): "Bearer s3cret"}
    p = policy(
        rule(headerMatches=[secret_match(None, "Bearer fallback")]),
        secrets=secrets,
        namespace="shop",
    )
    assert allowed(p, req(authorization="Bearer s3cret"))
    assert not allowed(p, req(authorization="Bearer fallback"))  # the secret wins
    other_ns = policy(rule(headerMatches=[secret_match()]), secrets=secrets, namespace="other")
    assert not allowed(other_ns, req(authorization="Bearer s3cret"))
    explicit = policy(rule(headerMatches=[secret_match(ns="shop")]), secrets=secrets, namespace="x")
    assert allowed(explicit, req(authorization="Bearer s3cret"))


def test_secret_values_are_redacted_in_reports() -> None:
    secrets = {("shop", "tok"): "Bearer s3cret"}
    p = policy(rule(headerMatches=[secret_match("REPLACE")]), secrets=secrets, namespace="shop")
    d = p.check(req(authorization="wrong"))
    assert d.allowed
    assert d.header_actions == (HeaderAction(0, "REPLACE", "authorization", "[redacted]"),)
    assert LoggedHeader(0, "missing", "authorization", "[redacted]") in d.logged_mismatches


def test_http_rule_from_model_is_cached() -> None:
    r = rule(path="/a", method="GET")
    assert HTTPRule.from_model(r) is HTTPRule.from_model(rule(path="/a", method="GET"))
    assert HTTPRule.from_model(r).matches(req("GET", "/a"))
    assert not HTTPRule.from_model(r).matches(req("GET", "/b"))


def test_http_policy_cache_and_memo_bound() -> None:
    rules = [rule(path=f"/p{i}") for i in range(3)]
    assert http_policy(rules) is http_policy([rule(path=f"/p{i}") for i in range(3)])
    p = HTTPPolicy(rules, memo_size=8)
    for i in range(50):
        p.check(req(path=f"/p{i % 5}/{i}"))
    assert p.check.cache_info().currsize <= 8  # type: ignore[attr-defined]
    assert p.check(req(path="/p1")).allowed


def test_invalid_regex_is_rejected() -> None:
    with pytest.raises(ValueError):
        HTTPRule.from_model(rule(path="(unclosed"))


def test_oversized_regex_is_flagged() -> None:
    small = HTTPRule.from_model(rule(path="/api/v1/orders.*"))
    assert small.oversized_regexes == ()
    uuid = "/api/v1/orders/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    assert HTTPRule.from_model(rule(path=uuid)).oversized_regexes == ()  # size 87
    big = "/x{101}"  # size 106: Envoy would reject it at load time
    assert HTTPRule.from_model(rule(path=big)).oversized_regexes == (big,)
    assert ENVOY_RE2_MAX_PROGRAM_SIZE == 100


# --------------------------------------------------------------------------------------
# RE2 (Envoy, Go) syntax and semantics, where they differ from Python's re
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", [r"/a\Z", "/a*+", "/(?=x)x", r"/(a)\1", "/(?<=a)b", "/(?!x).*"])
def test_re2_rejects_what_python_accepts(pattern: str) -> None:
    with pytest.raises(ValueError):
        HTTPRule.from_model(rule(path=pattern))


@pytest.mark.parametrize("pattern", [r"/\C", r"/\pN+", r"/a\z", r"/\x{41}", "GE(?i)t"])
def test_re2_accepts_what_python_rejects(pattern: str) -> None:
    HTTPRule.from_model(rule(path=pattern))


# (rule fields, request, allowed): a policy of that one rule; test_one_rule_policy
RE2_CASES = [
    # an inline flag in the middle applies to the rest of the regex
    pytest.param({"method": "GE(?i)t"}, req("GET"), True, id="re2-inline-flag-mid-GET"),
    pytest.param({"method": "GE(?i)t"}, req("GEt"), True, id="re2-inline-flag-mid-GEt"),
    pytest.param({"method": "GE(?i)t"}, req("gET"), False, id="re2-inline-flag-mid-not-before"),
    pytest.param({"method": "(?i)get"}, req("GET"), True, id="re2-inline-flag-leading"),
    # \d and \w are ASCII only; \pN is Unicode "number" (matches the Arabic-Indic digit)
    pytest.param({"path": r"/v1/\d+"}, req(path="/v1/42"), True, id="re2-digit-ascii"),
    pytest.param({"path": r"/v1/\d+"}, req(path="/v1/٣"), False, id="re2-digit-not-unicode"),
    pytest.param({"path": r"/\w+"}, req(path="/é"), False, id="re2-word-not-unicode"),
    pytest.param({"path": r"/\pN+"}, req(path="/٣12"), True, id="re2-unicode-number-class"),
    # $ does not match before a trailing newline
    pytest.param({"path": "/a$"}, req(path="/a\n"), False, id="re2-dollar-not-before-trailing-newline"),
    pytest.param({"path": "/a"}, req(path="/a\n"), False, id="re2-no-anchor-trailing-newline"),
    # POSIX classes inside brackets
    pytest.param({"path": "/[[:alpha:]]+"}, req(path="/abc"), True, id="re2-posix-alpha"),
    pytest.param({"path": "/[[:alpha:]]+"}, req(path="/a]"), False, id="re2-posix-alpha-is-one-class"),
    pytest.param({"path": "/[[:alpha:]]+"}, req(path="/:"), False, id="re2-posix-alpha-no-colon"),
    # \C matches one byte: é is two UTF-8 bytes
    pytest.param({"path": r"/a\C"}, req(path="/aé"), False, id="re2-backslash-C-one-byte"),
    pytest.param({"path": r"/a\C\C"}, req(path="/aé"), True, id="re2-backslash-C-two-bytes"),
    # . does not match a newline unless the s flag is set
    pytest.param({"path": "/a.*"}, req(path="/a\nb"), False, id="re2-dot-not-newline"),
    pytest.param({"path": "(?s)/a.*"}, req(path="/a\nb"), True, id="re2-dot-newline-with-s-flag"),
]


@pytest.mark.parametrize(("rule_kw", "request_", "expected"), [*FIELD_CASES, *HEADER_CASES, *RE2_CASES])
def test_one_rule_policy(rule_kw: dict[str, object], request_: HTTPRequest, expected: bool) -> None:
    # a policy of one rule (FIELD_CASES, HEADER_CASES, RE2_CASES) allows the request or not
    assert allowed(policy(rule(**rule_kw)), request_) is expected


# --------------------------------------------------------------------------------------
# Combined evaluation == rule-by-rule evaluation
# --------------------------------------------------------------------------------------

_REGEXES = [
    "",
    "GET",
    "GET|POST",
    "(?i)get",
    "^GET$",
    "/a.*",
    "/a",
    "^/a",
    "/a$",
    "/[a-z]+",
    "(?s).*",
    "[^x]*",
    ".*b",
    r"\A/a.*",
    r"/a\z",
    r"\Q/a\E.*",
    r"(?m)^/a$",
    r"(?-m)/a$",
    r"\b/a\b",
    "h(:[0-9]+)?",
    "",
]
_VALUES = ["GET", "POST", "get", "/a", "/ab", "/b", "", "h", "h:80", "/a\n", "x", "/a b", "é"]


def _reference(rules: list[PortRuleHTTP], r: HTTPRequest) -> int | None:
    for i, ru in enumerate(rules):
        ok = True
        for rx, value in ((ru.method, r.method), (ru.path, r.path), (ru.host, r.host)):
            if rx and re2.fullmatch(rx, value) is None:
                ok = False
        if ok:
            return i
    return None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(_REGEXES), st.sampled_from(_REGEXES), st.sampled_from(_REGEXES)),
        min_size=1,
        max_size=6,
    ),
    st.lists(
        st.tuples(st.sampled_from(_VALUES), st.sampled_from(_VALUES), st.sampled_from(_VALUES)),
        max_size=8,
    ),
)
def test_combined_set_agrees_with_rule_by_rule(
    spec: list[tuple[str, str, str]], requests: list[tuple[str, str, str]]
) -> None:
    rules = [rule(method=m or None, path=p or None, host=h or None) for m, p, h in spec]
    pol = HTTPPolicy(rules)
    for m, p, h in requests:
        r = HTTPRequest(m, p, h)
        expected = _reference(rules, r)
        got = pol.check(r)
        assert got.rule_index == expected, (spec, r)
        assert got.allowed == (expected is not None)


_HEADER_SPECS = [(), ("X: a",), ("X",), ("Y: b",), ("X: a,b",), ("X: a", "Y")]
_HEADER_VALUES = [
    (),
    (("x", "a"),),
    (("X", "a"), ("x", "b")),
    (("y", "b"),),
    (("X", "b"), ("Y", "")),
]


def _headers_ok(spec: tuple[str, ...], headers: tuple[tuple[str, str], ...]) -> bool:
    for entry in spec:
        name, _, value = entry.partition(": ")
        values = [v for n, v in headers if n.lower() == name.lower()]
        if not values or (": " in entry and ",".join(values) != value):
            return False
    return True


def _requests_with_headers(
    max_size: int,
) -> st.SearchStrategy[list[tuple[str, str, tuple[tuple[str, str], ...]]]]:
    """(method, path, headers) of up to `max_size` requests."""
    return st.lists(
        st.tuples(
            st.sampled_from(_VALUES[:6]),
            st.sampled_from(_VALUES[3:9]),
            st.sampled_from(_HEADER_VALUES),
        ),
        max_size=max_size,
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(_REGEXES[:8]),
            st.sampled_from(_REGEXES[5:12]),
            st.sampled_from(_HEADER_SPECS),
        ),
        min_size=1,
        max_size=6,
    ),
    _requests_with_headers(max_size=8),
)
def test_rules_with_headers_agree_with_rule_by_rule(
    spec: list[tuple[str, str, tuple[str, ...]]],
    requests: list[tuple[str, str, tuple[tuple[str, str], ...]]],
) -> None:
    rules = [rule(method=m or None, path=p or None, headers=list(h) or None) for m, p, h in spec]
    pol = HTTPPolicy(rules)
    for m, p, h in requests:
        r = HTTPRequest(m, p, "", h)
        expected = next(
            (
                i
                for i, (rm, rp, rh) in enumerate(spec)
                if (not rm or re2.fullmatch(rm, m))
                and (not rp or re2.fullmatch(rp, p))
                and _headers_ok(rh, h)
            ),
            None,
        )
        assert pol.check(r).rule_index == expected, (spec, r)


_ACTION_SPECS = [
    None,
    ("X", "a", "LOG"),
    ("X", "a", "ADD"),
    ("Y", "b", "REPLACE"),
    ("X", None, "DELETE"),
    ("X", "a", None),
]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(_REGEXES[:8]),
            st.sampled_from(_REGEXES[5:16]),
            st.sampled_from(_HEADER_SPECS),
            st.sampled_from(_ACTION_SPECS),
        ),
        min_size=1,
        max_size=5,
    ),
    _requests_with_headers(max_size=6),
)
def test_header_action_policies_fast_path_agrees_with_plain_evaluation(
    spec: list[tuple[str, str, tuple[str, ...], tuple[str, str | None, str | None] | None]],
    requests: list[tuple[str, str, tuple[tuple[str, str], ...]]],
) -> None:
    rules = [
        rule(
            method=m or None,
            path=p or None,
            headers=list(h) or None,
            headerMatches=[hm(*a)] if a else None,
        )
        for m, p, h, a in spec
    ]
    fast = HTTPPolicy(rules)
    plain = HTTPPolicy(rules)
    plain._pseudo_stable = False  # evaluate :method/:path on the header map, rule by rule
    for m, p, h in requests:
        r = HTTPRequest(m, p, "", h)
        assert fast.check(r) == plain.check(r), (spec, r)


def test_header_action_on_a_pseudo_header_is_seen_by_later_rules() -> None:
    p = policy(
        rule(headerMatches=[hm(":path", "/b", "REPLACE")]),
        rule(path="/b", headerMatches=[hm("Y", "1", "LOG")]),
    )
    d = p.check(req(path="/a"))
    assert d.allowed and d.rule_index == 0
    assert LoggedHeader(1, "missing", "y", "1") in d.logged_mismatches


def test_pseudo_headers_come_from_the_request_fields() -> None:
    r = HTTPRequest("GET", "/a", "h", ((":path", "/b"), (":method", "POST")))
    assert allowed(policy(rule(path="/a", method="GET")), r)
    assert allowed(policy(rule(path="/a", headers=["X"]), rule(path="/a")), r)


# --------------------------------------------------------------------------------------
# gRPC and the seed article's examples
# --------------------------------------------------------------------------------------


def test_grpc_request_shape() -> None:
    r = grpc_request("inventory.InventoryService", "CheckStock", host="inv:50051")
    assert r.method == "POST" and r.path == "/inventory.InventoryService/CheckStock"
    assert ("content-type", "application/grpc") in r.headers and r.host == "inv:50051"


SEED_GRPC = [  # examples/seed/policies 07
    {"method": "POST", "path": "/inventory.InventoryService/CheckStock"},
    {"method": "POST", "path": "/inventory.InventoryService/ReserveStock"},
]
SEED_API = [  # 05
    {"method": "GET", "path": "/api/v1/orders.*"},
    {"method": "POST", "path": "/api/v1/orders"},
    {"method": "GET", "path": "/healthz"},
]
SEED_CDE = [  # 12
    {"method": "POST", "path": "/v1/payments"},
    {"method": "GET", "path": "/v1/payments/[0-9a-f-]+"},
]


@pytest.mark.parametrize(
    ("rules", "request_", "expected"),
    [
        pytest.param(SEED_GRPC, grpc_request("inventory.InventoryService", "CheckStock"), True, id="grpc-CheckStock"),
        pytest.param(SEED_GRPC, grpc_request("inventory.InventoryService", "ReserveStock"), True, id="grpc-ReserveStock"),
        pytest.param(SEED_GRPC, grpc_request("inventory.InventoryService", "DeleteStock"), False, id="grpc-DeleteStock"),
        pytest.param(SEED_GRPC, grpc_request("inventory.Other", "CheckStock"), False, id="grpc-other-service"),
        pytest.param(SEED_API, req("GET", "/api/v1/orders/123"), True, id="api-GET-order"),
        pytest.param(SEED_API, req("GET", "/api/v1/orders"), True, id="api-GET-orders"),
        pytest.param(SEED_API, req("POST", "/api/v1/orders"), True, id="api-POST-orders"),
        pytest.param(SEED_API, req("POST", "/api/v1/orders/123"), False, id="api-POST-order"),
        pytest.param(SEED_API, req("DELETE", "/api/v1/orders"), False, id="api-DELETE-orders"),
        pytest.param(SEED_API, req("GET", "/admin"), False, id="api-GET-admin"),
        pytest.param(SEED_API, req("GET", "/healthz"), True, id="api-GET-healthz"),
        pytest.param(SEED_API, req("GET", "/healthz/x"), False, id="api-GET-healthz-subpath"),
        pytest.param(SEED_CDE, req("GET", "/v1/payments/ab12-cd"), True, id="cde-GET-payment"),
        pytest.param(SEED_CDE, req("GET", "/v1/payments/XYZ"), False, id="cde-GET-not-hex"),
        # the hex class is lower-case only
        pytest.param(SEED_CDE, req("GET", "/v1/payments/AB12"), False, id="cde-GET-upper-case-hex"),
        pytest.param(SEED_CDE, req("POST", "/v1/payments"), True, id="cde-POST-payments"),
        pytest.param(SEED_CDE, req("DELETE", "/v1/payments/ab12"), False, id="cde-DELETE-payment"),
    ],
)
def test_seed_examples(rules: list[dict[str, str]], request_: HTTPRequest, expected: bool) -> None:
    assert allowed(policy(*(rule(**r) for r in rules)), request_) is expected
