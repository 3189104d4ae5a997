"""What an expectations file holds and what running it gives: cases, outcomes, results.

The outcome of a verdict is one of four words, the same the file's `expect` uses:

* `denied`: dropped at L3/L4 (verdict DROPPED), or the connection was redirected but the
  L7 proxy refused the request (HTTP 403, DNS REFUSED/NXDOMAIN, a Kafka error);
* `audit`: policy would drop it, policy audit mode lets it through (verdict AUDIT);
* `redirected`: allowed and sent to the L7 proxy (verdict REDIRECTED), and the proxy let
  the request through if the case carries one;
* `allowed`: FORWARDED without a proxy.

`expect: allowed` passes for `allowed` and `redirected` (the traffic gets through, through
the proxy or not); every other `expect` passes only for its own outcome. In a truth table
`.` is `allowed`, `X` `denied`, `A` `audit`, `R` `redirected`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ciliary.flows.enums import DROP_REASON_STRINGS
from ciliary.policy.ports import PROTO_ICMP, PROTO_ICMPV6, PROTO_NAMES
from ciliary.verdict.decide import DNSObservation
from ciliary.verdict.types import AUDIT, DROP_REASON_CODES, DROPPED, REDIRECTED, L7Request, Verdict
from ciliary.workflows.trace import render_trace

ALLOWED = "allowed"
DENIED = "denied"
AUDITED = "audit"
PROXIED = "redirected"
EXPECTS = (ALLOWED, DENIED, AUDITED, PROXIED)
# The outcomes each `expect` accepts.
ACCEPTS: dict[str, frozenset[str]] = {
    ALLOWED: frozenset({ALLOWED, PROXIED}),
    DENIED: frozenset({DENIED}),
    AUDITED: frozenset({AUDITED}),
    PROXIED: frozenset({PROXIED}),
}
GRID_SYMBOLS = {".": ALLOWED, "X": DENIED, "A": AUDITED, "R": PROXIED}
# Drop reasons a case may name: Hubble's name, its number, or the datapath's description.
DROP_REASONS: dict[str, str] = {}
for _name, _code in DROP_REASON_CODES.items():
    DROP_REASONS[_name.lower()] = _name
    DROP_REASONS[str(_code)] = _name
    DROP_REASONS[DROP_REASON_STRINGS[_code].lower()] = _name
DNS_RCODES = ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED")


def port_text(proto: int, port: int) -> str:
    """`8443/TCP`, `icmp 8`, `icmp 128/v6`."""
    if proto in (PROTO_ICMP, PROTO_ICMPV6):
        return f"icmp {port}" + ("/v6" if proto == PROTO_ICMPV6 else "")
    return f"{port}/{PROTO_NAMES.get(proto, str(proto))}"


@dataclass(frozen=True)
class Case:
    """One flow and what is expected of it (a case of `cases`, or one truth-table cell)."""

    file: str
    line: int
    name: str
    src: str
    dst: str
    proto: int
    port: int  # destination port, or ICMP type
    expect: str
    request: L7Request | None = None
    request_kind: str | None = None  # http | dns | kafka
    resolve: tuple[tuple[str, tuple[str, ...]], ...] = ()
    reason: str | None = None  # the drop reason's Hubble name (POLICY_DENIED, ...)
    l7_status: str | None = None  # "403", "REFUSED", "29": as the proxy's verdict gives it
    table: str | None = None
    # role (from, to, resolve) -> (line, field path), to locate errors found later
    where: dict[str, tuple[int, str]] = field(default_factory=dict, compare=False)

    @property
    def port_text(self) -> str:
        return port_text(self.proto, self.port)

    @property
    def label(self) -> str:
        return f'case "{self.name}"'


@dataclass(frozen=True)
class ExpectationsFile:
    """A loaded, checked expectations file; paths resolved against its directory."""

    file: str
    cluster: str
    policies: tuple[str, ...] | None  # None: the policies inside the snapshot
    config: str | None
    options: dict[str, Any]  # AgentConfig field -> value (the `options` overrides)
    cases: tuple[Case, ...]


def outcome(v: Verdict) -> str:
    """The outcome word of a verdict (the module docstring defines them)."""
    if v.verdict == DROPPED or (v.l7 is not None and v.l7.verdict == DROPPED):
        return DENIED
    if v.verdict == AUDIT:
        return AUDITED
    if v.verdict == REDIRECTED:
        return PROXIED
    return ALLOWED


def drop_reason(v: Verdict) -> str | None:
    """The drop reason that decided `v`: for AUDIT, the one audit mode waived."""
    if v.drop_reason_desc:
        return v.drop_reason_desc
    if v.verdict == AUDIT:
        return v.deciding.audited_drop_reason
    return None


def l7_status(v: Verdict) -> str | None:
    """The proxy's answer as a case's `l7_status` names it: the HTTP status or Kafka error
    code of a denied request, the DNS rcode of any query; None when no proxy judged one."""
    l7 = v.l7
    if l7 is None:
        return None
    if l7.type == "dns":
        return l7.dns_rcode
    code = l7.http_status if l7.type == "http" else l7.kafka_error_code
    return None if code is None else str(code)


def describe(v: Verdict) -> str:
    """`denied (DROPPED, POLICY_DENIED at INGRESS)`, `redirected (REDIRECTED; http proxy FORWARDED)`."""
    parts = [v.verdict]
    reason = drop_reason(v)
    if reason:
        parts[0] += f", {reason} at {v.traffic_direction}" if v.verdict == DROPPED else f", would be {reason} at {v.traffic_direction}"
    if v.l7 is not None:
        status = l7_status(v)
        extra = f" {status}" if status and status != "NOERROR" and v.l7.verdict == DROPPED else ""
        parts.append(f"{v.l7.type} proxy {v.l7.verdict}{extra}")
    return f"{outcome(v)} ({'; '.join(parts)})"


@dataclass
class CaseResult:
    case: Case
    passed: bool
    got: str | None  # the outcome; None when the case could not be decided (error)
    verdict: Verdict | None = None
    observations: list[DNSObservation] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # what did not match
    error: str | None = None
    time: float = 0.0

    @property
    def message(self) -> str | None:
        if self.error is not None:
            return self.error
        return "; ".join(self.messages) or None

    def as_dict(self) -> dict[str, Any]:
        c, v = self.case, self.verdict
        return {
            "file": c.file,
            "line": c.line,
            "name": c.name,
            "table": c.table,
            "flow": f"{c.src} -> {c.dst} {c.port_text}",
            "expect": c.expect,
            "got": self.got,
            "passed": self.passed,
            "reason": c.reason,
            "got_reason": drop_reason(v) if v else None,
            "l7_status": c.l7_status,
            "got_l7_status": l7_status(v) if v else None,
            "verdict": v.verdict if v else None,
            "traffic_direction": v.traffic_direction if v else None,
            "l7_verdict": v.l7.verdict if v and v.l7 else None,
            "message": self.message,
            "error": self.error,
            # the explanation of a failure, as `ciliary trace` prints it
            "trace": render_trace(v) if v is not None and not self.passed else None,
            "time": round(self.time, 6),
        }


def judge(case: Case, v: Verdict) -> tuple[str, list[str]]:
    """The outcome of `v`, and every way it differs from what `case` expects."""
    got = outcome(v)
    messages = []
    if got not in ACCEPTS[case.expect]:
        messages.append(f"expected {case.expect}, got {describe(v)}")
    if case.reason is not None:
        reason = drop_reason(v)
        if reason != case.reason:
            why = " (the L7 proxy refused the request; that is no drop)" if reason is None and got == DENIED else ""
            messages.append(f"expected drop reason {case.reason}, got {reason or 'none'}{why}")
    if case.l7_status is not None:
        status = l7_status(v)
        if status is None or status.upper() != case.l7_status.upper():
            if v.l7 is None:
                shown = "no L7 verdict (the connection was not redirected to a proxy)" if v.verdict != DROPPED else "no L7 verdict (dropped before any proxy)"
            else:
                shown = f"{v.l7.type} proxy {v.l7.verdict}" + (f" {status}" if status else " (no status: the request went through)")
            messages.append(f"expected L7 status {case.l7_status}, got {shown}")
    return got, messages


@dataclass
class FileResult:
    spec: ExpectationsFile
    results: list[CaseResult]
    time: float = 0.0

    @property
    def failed(self) -> int:
        return sum(not r.passed for r in self.results)

    @property
    def errors(self) -> int:
        return sum(r.error is not None for r in self.results)


@dataclass
class RunResult:
    files: list[FileResult]

    @property
    def results(self) -> list[CaseResult]:
        return [r for f in self.files for r in f.results]

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def failed(self) -> int:
        return sum(not r.passed for r in self.results)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": [f.spec.file for f in self.files],
            "cases": [r.as_dict() for r in self.results],
            "passed": self.passed,
            "failed": self.failed,
        }
