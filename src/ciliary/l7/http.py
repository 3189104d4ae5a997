"""HTTP L7 rules (`PortRuleHTTP`) as Cilium's Envoy filter enforces them (semantics §6.2).

Sources (cilium/cilium unless noted):

* pkg/policy/api/http.go — the API (`path`, `method`, `host`, `headers`, `headerMatches`).
* pkg/envoy/server.go / envoypolicy `getHTTPRule` — the translation: `path`, `method` and
  `host` become Envoy `safe_regex` (Google RE2) header matchers on `:path`, `:method` and
  `:authority`; each `headers` entry is split at its first space (`"Name: value"` → exact
  match on `Name`, trailing `:` trimmed; `"Name"` → presence); a `headerMatches` entry with
  an empty `mismatch` becomes a plain exact/presence matcher, the others become
  `cilium.HeaderMatch` actions; a secret that cannot be read and has no `value` fallback
  becomes an inverted exact-"" matcher, i.e. the rule never matches.
* cilium/proxy cilium/network_policy.cc — enforcement: a rule allows a request if all its
  Envoy matchers match (Envoy `HeaderUtility::matchHeaders`: a regex must match the WHOLE
  header value, multiple values are joined with ","); rules are OR-ed; an empty rule list
  allows everything. If any rule has header actions, short-circuiting is off: every rule
  whose matchers match runs its actions in order (later rules see the edited headers) and
  the request is allowed if any of them passed. `HeaderMatch::allowed` gives the actions:
  LOG logs the header as missing; ADD appends the expected value; DELETE removes a header
  whose value is wrong; REPLACE sets the expected value. None of them fails the rule.
* cilium/proxy cilium/l7policy.cc — a denied request gets 403 with body "Access denied\\r\\n".

Open question 5 (path vs query string) — decision: **`:path` includes the query string.**
Envoy's `:path` pseudo-header is the request target as sent (`/public?x=1`); only Envoy's
route-level `PathMatcher` strips query and fragment ("The query and fragment string (if
present) are removed in the URL path portion", envoy api type/matcher/v3/path.proto).
Cilium does not use a PathMatcher: it emits a `HeaderMatcher` named `:path` with a
`safe_regex` (getHTTPRule above), and the Cilium filter matches it against the request
headers unchanged (cilium/proxy cilium/l7policy.cc `decodeHeaders` → `policy->Allowed`).
So `path: /public` does NOT allow `/public?x=1`; write `/public(\\?.*)?` to allow a query.

Deviations (documented, not behavioural for Cilium-generated policies): Envoy sorts the rules
(`SortHTTPNetworkPolicyRules`); ciliary keeps policy order, which only changes which
`rule_index` is reported and the order of header actions from different rules. Secrets are
resolved from the `secrets` mapping and handled as inline values (the agent's non-SDS path);
values that came from a secret are reported as "[redacted]", as Cilium's access log does.

Contracts:
* Compiled objects are shared and read-only: `HTTPRule.from_model` is memoised per (rule
  content, secrets, namespace) (`lru_cache`), `http_policy` per rule list (bounded), and
  an `HTTPPolicy` memoises its verdict per request (bounded). Each key holds everything
  its answer depends on, so forgetting one only costs a recompilation.
* Secret contents come only from the caller's `secrets` mapping.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, NamedTuple, cast

from ciliary.cache import BoundedCache
from ciliary.model.cilium import HeaderMatch, PortRuleHTTP
from ciliary.re2util import ENVOY_RE2_MAX_PROGRAM_SIZE, FullMatchSet, Matcher
from ciliary.re2util import fullmatcher as _fullmatcher
from ciliary.re2util import program_size as _program_size

__all__ = [
    "ENVOY_RE2_MAX_PROGRAM_SIZE",
    "HTTP_DENY_BODY",
    "HTTP_DENY_STATUS",
    "HTTPDecision",
    "HTTPPolicy",
    "HTTPRequest",
    "HTTPRule",
    "HeaderAction",
    "LoggedHeader",
    "Secrets",
    "grpc_request",
    "http_policy",
]

# cilium/proxy cilium/l7policy.cc: 403 with the default body plus CRLF (content-length 15).
HTTP_DENY_STATUS = 403
HTTP_DENY_BODY = "Access denied\r\n"
REDACTED = "[redacted]"  # cilium/proxy network_policy.cc HeaderMatch::logRejected/logMissing

Secrets = Mapping[tuple[str, str], str]
"""Secret contents by (namespace, name); ciliary has no secret store of its own."""

MismatchAction = Literal["FAIL", "LOG", "ADD", "DELETE", "REPLACE"]


class HTTPRequest(NamedTuple):
    """One HTTP request as the proxy sees it.

    `path` is the `:path` pseudo-header (request target, query string included), `host` the
    `:authority` (HTTP/1 `Host`, including a port if the client sent one). Header names are
    case-insensitive; a name given several times is a multi-valued header (Envoy joins the
    values with "," before matching).
    """

    method: str
    path: str
    host: str = ""
    headers: tuple[tuple[str, str], ...] = ()


def grpc_request(
    service: str, method: str, *, host: str = "", headers: Iterable[tuple[str, str]] = ()
) -> HTTPRequest:
    """A gRPC call as HTTP/2 carries it: POST `/package.Service/Method`, content-type grpc."""
    return HTTPRequest(
        "POST",
        f"/{service}/{method}",
        host,
        (("content-type", "application/grpc"), *tuple(headers)),
    )


@dataclass(frozen=True, slots=True)
class HeaderAction:
    """A header edit the proxy makes (ADD/DELETE/REPLACE on mismatch)."""

    rule_index: int
    action: Literal["ADD", "DELETE", "REPLACE"]
    name: str
    value: str  # ADD/REPLACE: the value set; DELETE: the (wrong) value removed


@dataclass(frozen=True, slots=True)
class LoggedHeader:
    """An access-log entry of a header mismatch (Cilium's `missing_headers` /
    `rejected_headers`)."""

    rule_index: int
    kind: Literal["missing", "rejected"]
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class HTTPDecision:
    """The L7 verdict for one request. Denied requests get `HTTP_DENY_STATUS`."""

    allowed: bool
    rule_index: int | None = None  # first rule (policy order) that allowed the request
    header_actions: tuple[HeaderAction, ...] = ()
    logged_mismatches: tuple[LoggedHeader, ...] = ()


# ---------------------------------------------------------------------------------------
# Compiled rules
# ---------------------------------------------------------------------------------------

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _lower(name: str) -> str:
    """Envoy's LowerCaseString: ASCII-only lower-casing."""
    return name.translate(_ASCII_LOWER)


@dataclass(frozen=True, slots=True)
class _EnvoyMatcher:
    """An Envoy route HeaderMatcher as Cilium emits it."""

    name: str  # lower-case
    kind: Literal["regex", "exact", "present", "never"]
    value: str = ""
    regex: Matcher | None = None


@dataclass(frozen=True, slots=True)
class _CiliumHeaderMatch:
    """A `cilium.HeaderMatch` evaluated by the Cilium filter (mismatch actions)."""

    name: str  # lower-case
    value: str
    present_only: bool  # no value and no secret: presence match
    action: MismatchAction
    secret: bool  # the value came from a secret (redacted in reports)


_HeaderMatchKey = tuple[str, str, str, str, str, bool]  # name, value, mismatch, ns, secret, has
_RuleKey = tuple[str, str, str, tuple[str, ...], tuple[_HeaderMatchKey, ...]]


def _header_match_key(m: HeaderMatch) -> _HeaderMatchKey:
    s = m.secret
    return (
        m.name,
        m.value or "",
        m.mismatch or "",
        (s.namespace or "") if s else "",
        s.name if s else "",
        s is not None,
    )


def _rule_key(rule: PortRuleHTTP) -> _RuleKey:
    return (
        rule.path or "",
        rule.method or "",
        rule.host or "",
        tuple(rule.headers or ()),
        tuple(_header_match_key(m) for m in rule.header_matches or ()),
    )


# `re2` syntax that changes meaning once a regex is embedded in a larger one: \A and \z
# (text anchors), \Q (quoting runs to the end of the pattern) and flag groups that clear
# a flag (could turn multi-line off). Such rules are evaluated one by one instead.
_NOT_EMBEDDABLE = re.compile(r"\\[AzQ]|\(\?[a-zA-Z]*-")


class HTTPRule:
    """One compiled `PortRuleHTTP`.

    `matches(req)` says whether this rule alone allows `req` (header actions do not fail a
    rule, so they are ignored here; use `HTTPPolicy.check` for the full verdict).
    """

    __slots__ = (
        "_embeddable",
        "_header_matchers",
        "_pseudo",
        "cilium_header_matches",
        "envoy_matchers",
        "host",
        "method",
        "oversized_regexes",
        "path",
    )

    def __init__(
        self,
        path: str = "",
        method: str = "",
        host: str = "",
        envoy_matchers: tuple[_EnvoyMatcher, ...] = (),
        cilium_header_matches: tuple[_CiliumHeaderMatch, ...] = (),
    ) -> None:
        self.path = path
        self.method = method
        self.host = host
        pseudo = tuple(
            _EnvoyMatcher(name, "regex", rx, _fullmatcher(rx))
            for name, rx in ((":path", path), (":method", method), (":authority", host))
            if rx
        )
        self.envoy_matchers: tuple[_EnvoyMatcher, ...] = pseudo + envoy_matchers
        # For requests whose headers are not edited: the pseudo-header regexes read the
        # request fields directly (HTTPRequest index 0 method, 1 path, 2 host).
        self._pseudo: tuple[tuple[int, Matcher], ...] = tuple(
            (field, _fullmatcher(rx)) for field, rx in ((1, path), (0, method), (2, host)) if rx
        )
        self._header_matchers = envoy_matchers
        self.cilium_header_matches = cilium_header_matches
        self.oversized_regexes = tuple(
            rx
            for rx in (path, method, host)
            if rx and _program_size(rx) > ENVOY_RE2_MAX_PROGRAM_SIZE
        )
        # path/method/host can go into the policy's combined RE2 set (header conditions
        # and actions are then evaluated in Python for the rules the set reports).
        self._embeddable = not any(_NOT_EMBEDDABLE.search(rx) for rx in (path, method, host))

    @classmethod
    def from_model(
        cls, rule: PortRuleHTTP, *, secrets: Secrets | None = None, namespace: str = ""
    ) -> HTTPRule:
        """Compile an API rule (cached). `namespace` is the policy's namespace, used for
        secrets that do not name one."""
        return _compile_rule(_rule_key(rule), _secrets_key(secrets), namespace)

    @property
    def has_header_actions(self) -> bool:
        """True if the rule carries `cilium.HeaderMatch` entries (disables short-circuit)."""
        return bool(self.cilium_header_matches)

    def envoy_allows(self, headers: _Headers) -> bool:
        """All Envoy header matchers match (`HttpNetworkPolicyRule::allowed`)."""
        for m in self.envoy_matchers:
            value = headers.get(m.name)
            if m.kind == "regex":
                assert m.regex is not None
                if value is None or not m.regex(value):
                    return False
            elif m.kind == "exact":
                if value != m.value:
                    return False
            elif m.kind == "present":
                if value is None:
                    return False
            else:  # never: inverted exact "" for an unreadable secret
                return False
        return True

    def headers_allow(self, headers: _Headers) -> bool:
        """The non-pseudo Envoy matchers (`headers`, FAIL `headerMatches`) match."""
        for m in self._header_matchers:
            value = headers.get(m.name)
            if m.kind == "exact":
                if value != m.value:
                    return False
            elif m.kind == "present":
                if value is None:
                    return False
            else:  # never
                return False
        return True

    def request_allows(self, req: HTTPRequest, headers: _HeaderCache) -> bool:
        """`envoy_allows` for an unedited request (pseudo-headers read from its fields)."""
        for field, rx in self._pseudo:
            if not rx(req[field]):  # type: ignore[arg-type]  # fields 0-2 are str
                return False
        return not self._header_matchers or self.headers_allow(headers.get(req))

    def matches(self, req: HTTPRequest) -> bool:
        """This rule alone allows `req`."""
        h = _Headers(req)
        return self.envoy_allows(h) and _run_header_matches(self, -1, h, [], [])

    def __repr__(self) -> str:
        return (
            f"HTTPRule(path={self.path!r}, method={self.method!r}, host={self.host!r}, "
            f"matchers={len(self.envoy_matchers)}, header_matches={len(self.cilium_header_matches)})"
        )


def _secrets_key(secrets: Secrets | None) -> tuple[tuple[tuple[str, str], str], ...]:
    return tuple(sorted(secrets.items())) if secrets else ()


@lru_cache(maxsize=4096)
def _compile_rule(
    key: _RuleKey, secrets: tuple[tuple[tuple[str, str], str], ...], namespace: str
) -> HTTPRule:
    path, method, host, headers, header_matches = key
    store = dict(secrets)
    envoy: list[_EnvoyMatcher] = []
    for hdr in headers:
        # getHTTPRule: strings.SplitN(hdr, " ", 2); "Name: value" -> exact, "Name" -> presence.
        parts = hdr.split(" ", 1)
        if len(parts) == 2:
            name = _lower(parts[0].rstrip(":"))
            envoy.append(_EnvoyMatcher(name, "exact" if name else "never", parts[1]))
        else:
            name = _lower(parts[0])
            envoy.append(_EnvoyMatcher(name, "present" if name else "never"))
    cilium: list[_CiliumHeaderMatch] = []
    for name, inline, mismatch, sec_ns, sec_name, has_secret in header_matches:
        lname = _lower(name)
        action = cast(MismatchAction, mismatch or "FAIL")
        value, from_secret, found = inline, False, True
        if has_secret:
            # getSecretString: a readable secret wins; else fall back to the inline value.
            content = store.get((sec_ns or namespace, sec_name))
            if content:
                value, from_secret = content, True
            elif content == "" and not inline:
                # The secret exists but is empty: handed to the proxy as an SDS secret,
                # which compares the header with the empty content.
                cilium.append(_CiliumHeaderMatch(lname, "", False, action, True))
                continue
            elif not inline:
                found = False
        if not found:
            envoy.append(_EnvoyMatcher(lname, "never"))
        elif action == "FAIL":
            envoy.append(
                _EnvoyMatcher(lname, "exact", value) if value else _EnvoyMatcher(lname, "present")
            )
        else:
            cilium.append(_CiliumHeaderMatch(lname, value, not value, action, from_secret))
    return HTTPRule(path, method, host, tuple(envoy), tuple(cilium))


# ---------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------


_PSEUDO = frozenset((":method", ":path", ":authority"))  # given by the request fields


class _HeaderCache:
    """Builds the header map of a request once, on first use."""

    __slots__ = ("headers",)

    def __init__(self) -> None:
        self.headers: _Headers | None = None

    def get(self, req: HTTPRequest) -> _Headers:
        if self.headers is None:
            self.headers = _Headers(req)
        return self.headers


class _Headers:
    """An Envoy request header map: ordered (name, value) entries, names lower-case."""

    __slots__ = ("entries",)

    def __init__(self, req: HTTPRequest) -> None:
        self.entries: list[list[str]] = [
            [":method", req.method],
            [":path", req.path],
            [":authority", req.host],
        ]
        self.entries.extend(
            [name, v] for name, v in ((_lower(n), v) for n, v in req.headers) if name not in _PSEUDO
        )

    def get(self, name: str) -> str | None:
        """`HeaderUtility::getAllOfHeaderAsString`: values joined with ","; None if absent."""
        values = [v for n, v in self.entries if n == name]
        if not values:
            return None
        return values[0] if len(values) == 1 else ",".join(values)

    def add(self, name: str, value: str) -> None:
        self.entries.append([name, value])

    def remove(self, name: str) -> None:
        self.entries = [e for e in self.entries if e[0] != name]

    def set(self, name: str, value: str) -> None:
        """`setCopy`: the first entry takes the value, the others are removed."""
        for i, e in enumerate(self.entries):
            if e[0] == name:
                e[1] = value
                self.entries = self.entries[: i + 1] + [
                    x for x in self.entries[i + 1 :] if x[0] != name
                ]
                return
        self.entries.append([name, value])


def _run_header_matches(
    rule: HTTPRule,
    index: int,
    headers: _Headers,
    actions: list[HeaderAction],
    logged: list[LoggedHeader],
) -> bool:
    """`HttpNetworkPolicyRule::HeaderMatches`: run every action, False if any failed."""
    accepted = True
    for hm in rule.cilium_header_matches:
        shown = REDACTED if hm.secret else hm.value
        current = headers.get(hm.name)
        if hm.present_only:
            matched = current is not None
        else:
            matched = current is not None and current == hm.value
        if matched:
            continue  # CONTINUE_ON_MATCH (Cilium never sets another match action)
        if hm.action == "FAIL":
            logged.append(LoggedHeader(index, "missing", hm.name, shown))
            accepted = False
        elif hm.action == "LOG":
            logged.append(LoggedHeader(index, "missing", hm.name, shown))
        elif hm.action == "ADD":
            headers.add(hm.name, hm.value)
            actions.append(HeaderAction(index, "ADD", hm.name, shown))
            logged.append(LoggedHeader(index, "missing", hm.name, shown))
        elif hm.action == "DELETE":
            if hm.present_only or current is None:
                continue  # presence match failed or nothing to remove
            headers.remove(hm.name)
            actions.append(HeaderAction(index, "DELETE", hm.name, current))
            logged.append(LoggedHeader(index, "rejected", hm.name, current))
        else:  # REPLACE
            if current is not None:
                logged.append(LoggedHeader(index, "rejected", hm.name, current))
            headers.set(hm.name, hm.value)
            actions.append(HeaderAction(index, "REPLACE", hm.name, shown))
            logged.append(LoggedHeader(index, "missing", hm.name, shown))
    return accepted


def _field_pattern(rx: str) -> str:
    return f"(?:{rx})" if rx else "[^\n]*"


_DENY = HTTPDecision(False)
_ALLOW_ALL = HTTPDecision(True)


class HTTPPolicy:
    """The HTTP rules of one port and peer selector: `check(req)` gives the verdict.

    Compiled once: the path/method/host regexes of all rules are combined into one RE2
    set over `METHOD\\nPATH\\nAUTHORITY` (multi-line mode, so `^`/`$` in a rule still
    anchor at its own field; Envoy rejects header values containing a newline, and such
    requests fall back to rule-by-rule matching). A check is one RE2 call, then Python
    checks the header conditions of the rules the set reports, and runs header actions
    when a rule has some. Rules using `\\A`, `\\z`, `\\Q` or a flag-clearing group are
    matched one by one. Recent verdicts are memoised (bounded).
    """

    __slots__ = (
        "_allow",
        "_others",
        "_pseudo_stable",
        "_set",
        "_set_index",
        "_short_circuit",
        "check",
        "rules",
    )

    def __init__(
        self,
        rules: Iterable[PortRuleHTTP | HTTPRule],
        *,
        secrets: Secrets | None = None,
        namespace: str = "",
        memo_size: int = 8192,
    ) -> None:
        self.rules: tuple[HTTPRule, ...] = tuple(
            r
            if isinstance(r, HTTPRule)
            else HTTPRule.from_model(r, secrets=secrets, namespace=namespace)
            for r in rules
        )
        self._short_circuit = not any(r.has_header_actions for r in self.rules)
        embedded = [i for i, r in enumerate(self.rules) if r._embeddable]
        self._set_index: tuple[int, ...] = tuple(embedded)
        self._set: FullMatchSet | None = None
        if embedded:
            self._set = FullMatchSet(
                [
                    "(?m)"
                    + _field_pattern(self.rules[i].method)
                    + "\n"
                    + _field_pattern(self.rules[i].path)
                    + "\n"
                    + _field_pattern(self.rules[i].host)
                    for i in embedded
                ]
            )
        self._others: tuple[int, ...] = tuple(
            i for i, r in enumerate(self.rules) if not r._embeddable
        )
        # Header actions never edit :method/:path/:authority, so their matches can be
        # computed once per request even when header actions run.
        self._pseudo_stable = not any(
            m.name in _PSEUDO for r in self.rules for m in r.cilium_header_matches
        )
        self._allow = tuple(HTTPDecision(True, i) for i in range(len(self.rules)))
        decide: Callable[[HTTPRequest], HTTPDecision] = self._decide
        raw = self._set.raw_match if self._set is not None else None
        simple = not any(self.rules[i]._header_matchers for i in self._set_index)
        if raw is not None and self._short_circuit and not self._others and simple:
            decide = _one_call_decider(raw, tuple(self._allow[i] for i in self._set_index), self._decide)
        # The verdict for a request (memoised: a function of the request alone, bounded).
        self.check: Callable[[HTTPRequest], HTTPDecision] = lru_cache(maxsize=memo_size)(decide)

    def __len__(self) -> int:
        return len(self.rules)

    def _decide(self, req: HTTPRequest) -> HTTPDecision:
        if not self.rules:
            return _ALLOW_ALL  # an empty rule list allows everything
        if not self._short_circuit:
            return self._decide_with_actions(req)
        first: int | None = None
        cache = _HeaderCache()
        if self._set is not None:
            joined = f"{req.method}\n{req.path}\n{req.host}"
            if joined.count("\n") == 2:
                for k in self._set.match_bytes(joined.encode("utf-8", "surrogatepass")):
                    i = self._set_index[k]
                    rule = self.rules[i]
                    if not rule._header_matchers or rule.headers_allow(cache.get(req)):
                        first = i
                        break
            else:  # a newline inside a field (Envoy would reject it): rule by rule
                h = _Headers(req)
                for i in self._set_index:
                    if self.rules[i].envoy_allows(h):
                        first = i
                        break
        if self._others:
            for i in self._others:
                if first is not None and i > first:
                    break
                if self.rules[i].request_allows(req, cache):
                    first = i
                    break
        return _DENY if first is None else self._allow[first]

    def _pseudo_matches(self, req: HTTPRequest) -> frozenset[int] | None:
        """Indices of the rules whose path/method/host match `req` (None: unknown)."""
        if self._set is None:
            matched: set[int] = set()
        else:
            joined = f"{req.method}\n{req.path}\n{req.host}"
            if joined.count("\n") != 2:
                return None
            found = self._set.match_bytes(joined.encode("utf-8", "surrogatepass"))
            matched = {self._set_index[k] for k in found}
        for i in self._others:
            rule = self.rules[i]
            if all(rx(req[f]) for f, rx in rule._pseudo):  # type: ignore[arg-type]
                matched.add(i)
        return frozenset(matched)

    def _decide_with_actions(self, req: HTTPRequest) -> HTTPDecision:
        """No short-circuit (PortNetworkPolicyRule::allowed): every rule whose matchers
        match runs its header actions, in order, on the (edited) headers."""
        h = _Headers(req)
        actions: list[HeaderAction] = []
        logged: list[LoggedHeader] = []
        first: int | None = None
        pseudo = self._pseudo_matches(req) if self._pseudo_stable else None
        for i, rule in enumerate(self.rules):
            if pseudo is not None:
                ok = i in pseudo and rule.headers_allow(h)
            else:  # a field holds a newline, or an action edits a pseudo-header
                ok = rule.envoy_allows(h)
            passed = ok and _run_header_matches(rule, i, h, actions, logged)
            if passed and first is None:
                first = i
        return HTTPDecision(first is not None, first, tuple(actions), tuple(logged))


def _one_call_decider(
    match: Callable[[bytes], list[int]],
    allow: tuple[HTTPDecision, ...],
    slow: Callable[[HTTPRequest], HTTPDecision],
) -> Callable[[HTTPRequest], HTTPDecision]:
    """The common case (every rule is path/method/host only): one RE2::Set call."""
    sentinel = len(allow)
    deny = _DENY

    def decide(req: HTTPRequest) -> HTTPDecision:
        joined = f"{req.method}\n{req.path}\n{req.host}"
        if joined.count("\n") != 2:
            return slow(req)
        try:
            found = match(joined.encode())
        except UnicodeEncodeError:  # lone surrogates: not a real HTTP request anyway
            return slow(req)
        if not found:
            return slow(req)  # RE2 gave up (DFA out of memory): rule by rule
        i = min(found)
        return deny if i == sentinel else allow[i]

    return decide


_POLICY_CACHE: BoundedCache[tuple[object, ...], HTTPPolicy] = BoundedCache(1024)


def http_policy(
    rules: Sequence[PortRuleHTTP], *, secrets: Secrets | None = None, namespace: str = ""
) -> HTTPPolicy:
    """`HTTPPolicy(rules)`, compiled once per distinct rule list (bounded cache)."""
    key = (tuple(_rule_key(r) for r in rules), _secrets_key(secrets), namespace)
    policy = _POLICY_CACHE.get(key)
    if policy is None:
        policy = _POLICY_CACHE.put(key, HTTPPolicy(rules, secrets=secrets, namespace=namespace))
    return policy
