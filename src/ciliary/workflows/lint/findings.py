"""Lint findings and the catalogue of checks that make them.

Contracts:
* A check's ID (`CIL001`...) and name never change meaning; new checks get new IDs.
  `CHECKS` lists every check once, in ID order, with its default severity.
* A `Finding` is frozen and names where it is: the policy, the field path inside the
  policy object, and the file and line of that field. `as_dict` is the `-o json` shape.
* Severities are ordered info < warning < error; `--fail-on` compares against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from enum import IntEnum
from typing import Any

from ciliary.model.policy import PolicyRef


class Severity(IntEnum):
    info = 0
    warning = 1
    error = 2

    def __str__(self) -> str:
        return self.name

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().lower()]
        except KeyError:
            raise ValueError(f"unknown severity {text!r}: use error, warning or info") from None


@dataclass(frozen=True)
class Check:
    id: str
    name: str
    severity: Severity  # the default; a finding may be raised or lowered with cause
    summary: str
    pitfall: int | None = None  # the seed article's pitfall number it catches


CHECKS: tuple[Check, ...] = (
    Check("CIL001", "fqdn-without-dns-rule", Severity.error,
          "toFQDNs whose DNS lookups do not reach the DNS proxy, or whose DNS rule does not allow the names", 1),
    Check("CIL002", "fqdn-rotating-name", Severity.warning,
          "toFQDNs matchName for a name whose answers rotate, without a pattern or with no idle-connection grace period", 2),
    Check("CIL003", "system-namespace-lockdown", Severity.warning,
          "default deny or host policy that reaches kube-system, monitoring or ingress-controller namespaces", 3),
    Check("CIL004", "probes-blocked", Severity.error,
          "kubelet probes (from the host identity) denied because of allow-localhost=policy or a host policy", 4),
    Check("CIL005", "selector-selects-nothing", Severity.warning,
          "endpointSelector, nodeSelector or peer selector that matches no endpoint in the cluster", 6),
    Check("CIL006", "empty-selector-misunderstanding", Severity.warning,
          "`{}` versus `[]`: an empty list, an empty section or an empty selector that does not do what it seems", 6),
    Check("CIL007", "l7-sprayed", Severity.warning,
          "L7 rules on more than --l7-share of a namespace's pods (every request through the proxy)", 7),
    Check("CIL008", "l7-on-non-l7-port", Severity.warning,
          "HTTP or Kafka rules on a port that carries no protocol the proxy can read", 7),
    Check("CIL009", "default-deny-allows-nothing", Severity.warning,
          "a direction turned to default deny for endpoints that nothing then allows anything to"),
    Check("CIL010", "default-deny-cuts-dns", Severity.warning,
          "egress default deny that leaves pods without DNS (UDP/53 to kube-dns)"),
    Check("CIL011", "deny-only-direction", Severity.error,
          "a direction selected only by deny rules: default deny drops everything the deny did not name"),
    Check("CIL012", "l7-rules-ineffective", Severity.warning,
          "L7 rules that have no effect because an L3/L4 allow covers the same peer and port"),
    Check("CIL013", "allow-unreachable", Severity.warning,
          "an allow rule whose traffic deny rules drop entirely"),
    Check("CIL014", "redundant-rule", Severity.info,
          "a rule whose every allow (or deny) other rules already make"),
    Check("CIL015", "empty-effect-rule", Severity.warning,
          "a rule that adds no entry to any policy map"),
    Check("CIL016", "deprecated-field", Severity.warning,
          "fromRequires/toRequires and Kafka rules are deprecated in Cilium"),
    Check("CIL017", "not-evaluated", Severity.warning,
          "fields ciliary parses but cannot evaluate: its verdicts ignore them"),
)
CHECKS_BY_ID: dict[str, Check] = {c.id: c for c in CHECKS}
CHECKS_BY_NAME: dict[str, Check] = {c.name: c for c in CHECKS}


def check_of(text: str) -> Check:
    """A check by ID (case-insensitive) or name."""
    c = CHECKS_BY_ID.get(text.strip().upper()) or CHECKS_BY_NAME.get(text.strip().lower())
    if c is None:
        raise ValueError(f"unknown lint check {text!r}: use an ID from CIL001 to {CHECKS[-1].id} (see `ciliary lint --list`)")
    return c


@dataclass(frozen=True)
class Finding:
    check: Check
    severity: Severity
    message: str
    hint: str
    policy: PolicyRef | None = None
    field: str = ""  # field path inside the policy object, e.g. spec.egress[1].toFQDNs[0]
    file: str = ""
    line: int | None = None
    # Endpoints the finding is about (namespace/pod or node/NAME), a few for the report.
    endpoints: tuple[str, ...] = ()
    endpoint_count: int = 0
    related: tuple[tuple[str, str, int | None], ...] = dc_field(default=(), compare=False)  # (text, file, line)
    path: tuple[str | int, ...] = dc_field(default=(), compare=False)  # `field` as a path

    @property
    def id(self) -> str:
        return self.check.id

    def sort_key(self) -> tuple[Any, ...]:
        return (self.file, self.line or 0, self.id, self.field, self.message)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.check.id,
            "name": self.check.name,
            "severity": str(self.severity),
            "policy": (
                {"kind": self.policy.kind, "namespace": self.policy.namespace, "name": self.policy.name}
                if self.policy else None
            ),
            "field": self.field,
            "file": self.file,
            "line": self.line,
            "message": self.message,
            "hint": self.hint,
            "endpoints": list(self.endpoints),
            "endpoint_count": self.endpoint_count,
            "related": [{"message": t, "file": f, "line": ln} for t, f, ln in self.related],
        }
