"""The proxy's verdict on one request (semantics §6.3): the request is checked against the
L7 rules of every rule that allows the peer on the port; one allow without L7 rules lets
every request through.

Contracts:
* `L7Matchers` holds the compiled matchers (Envoy's HTTP filter, Cilium's Kafka and DNS
  proxies, from `ciliary.l7`) of the policy maps' L7 contributions, keyed by (contribution,
  request kind) and compiled only when a request reaches one. A bounded memo: forgetting
  one only compiles it again. It belongs to whoever decides (a `Decider`, or one plain
  `decide` call).
* Nothing here writes to policies, policy maps or the engine.
* `ciliary.l7` is imported on first use: a run without L7 requests never loads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from ciliary.cache import BoundedCache
from ciliary.model.cilium import L7Rules
from ciliary.model.policy import PolicyRef
from ciliary.policy.config import AgentConfig
from ciliary.policy.engine import DirectionPolicy
from ciliary.policy.mapstate import L7Contribution
from ciliary.verdict.types import DROPPED, FORWARDED, DNSQuery, L7Request, L7Verdict

_KINDS: dict[type, str] = {}  # request type -> "http" | "kafka" | "dns"


def l7_kind(req: L7Request) -> str:
    """`http`, `kafka` or `dns`: which rules of an L7 rule set judge the request."""
    kind = _KINDS.get(type(req))
    if kind is None:
        from ciliary.l7.http import HTTPRequest
        from ciliary.l7.kafka import KafkaRequest

        kind = "http" if isinstance(req, HTTPRequest) else "kafka" if isinstance(req, KafkaRequest) else "dns"
        _KINDS[type(req)] = kind
    return kind


class L7Matchers:
    """Compiled L7 matchers, one per (policy-map L7 contribution, request kind)."""

    __slots__ = ("_compiled",)

    def __init__(self, maxsize: int = 8192) -> None:
        # Keyed by the contribution object itself (identity): it is kept alive by the key.
        self._compiled: BoundedCache[tuple[L7Contribution, str], Any] = BoundedCache(maxsize)

    def matcher(self, c: L7Contribution, rules: L7Rules, kind: str) -> Any:
        hit = self._compiled.get((c, kind))
        if hit is None:
            from ciliary.l7.dns import DNSMatcher
            from ciliary.l7.http import http_policy
            from ciliary.l7.kafka import KafkaPolicy

            if kind == "http":
                hit = http_policy(rules.http or [])
            elif kind == "kafka":
                hit = KafkaPolicy(rules.kafka or [])
            else:
                hit = DNSMatcher(rules.dns or [])
            self._compiled.put((c, kind), hit)
        return hit


def _rules_of(c: L7Contribution, kind: str) -> Sequence[object] | None:
    rules = c.rules
    if rules is None:
        return None
    return rules.http if kind == "http" else rules.kafka if kind == "kafka" else rules.dns


def check_l7(
    config: AgentConfig, matchers: L7Matchers, pol: DirectionPolicy, direction: str, peer: int,
    proto: int, port: int, req: L7Request,
) -> L7Verdict:
    """The proxy of `direction` judging `req` from (or to) identity `peer` on (proto, port)."""
    kind = l7_kind(req)
    contributions = pol.policy_map.l7_contributions(peer, proto, port)
    allowed_by: list[PolicyRef] = []
    rules: list[str] = []
    reason = ""
    ok = False
    for c in contributions:
        idx: int | None = None
        if c.rules is None:
            hit = True
        else:
            if _rules_of(c, kind) is None:
                continue
            matcher = matchers.matcher(c, c.rules, kind)
            if kind == "dns":
                hit = matcher.matches(cast(DNSQuery, req).qname)
            else:  # HTTP and Kafka decisions both carry the matching rule's index
                d = matcher.check(req)
                hit, idx = d.allowed, d.rule_index
        if hit:
            if not ok or c.rules is None:
                where = str(c.origin) if c.origin else "allow-all"
                if c.rules is None:
                    reason = f"{where} allows this peer and port without L7 rules: every request passes"
                else:
                    reason = f"matched {where}" + (f" rules.{kind}[{idx}]" if idx is not None else "")
            ok = True
            if c.origin is not None:
                allowed_by.append(c.origin.ref)
                rules.append(str(c.origin) + (f" rules.{kind}[{idx}]" if idx is not None else ""))
    if not ok:
        reason = f"no {kind} rule of the {len(contributions)} rule(s) allowing this peer and port matches"
    if len(allowed_by) > 1:
        allowed_by = sorted(set(allowed_by))
    v = L7Verdict(kind, FORWARDED if ok else DROPPED, direction, reason, allowed_by=allowed_by, rules=rules)
    if kind == "http" and not ok:
        from ciliary.l7.http import HTTP_DENY_STATUS

        v.http_status = HTTP_DENY_STATUS
    elif kind == "kafka" and not ok:
        from ciliary.l7.kafka import KAFKA_DENY_ERROR_CODE

        v.kafka_error_code = KAFKA_DENY_ERROR_CODE
    elif kind == "dns":
        reject = "NXDOMAIN" if config.tofqdns_dns_reject_response_code == "nameError" else "REFUSED"
        v.dns_rcode = "NOERROR" if ok else reject
    return v


def http_rules_read_headers(pol: DirectionPolicy, peer: int, proto: int, port: int) -> bool:
    """Whether an HTTP rule the proxy checks requests from `peer` on (proto, port) against
    looks at headers: then two requests with the same method, path and host may differ."""
    for c in pol.policy_map.l7_contributions(peer, proto, port):
        http = c.rules.http if c.rules is not None else None
        if http and any(r.headers or r.header_matches for r in http):
            return True
    return False
