"""Cilium agent options that change policy decisions, under their Cilium names.

A config file is either a flat mapping (`enable-policy: always`) or the `cilium-config`
ConfigMap itself (`kubectl -n kube-system get cm cilium-config -o yaml`), whose values are
strings. Unknown keys of a flat mapping are errors; a ConfigMap may hold many other keys.

Contracts: an `AgentConfig` is frozen and shared by the engine and everything deciding on
it; `with_overrides` returns a copy. `extra` keeps a ConfigMap's other keys and takes no
part in equality. `config_from_document` is all-or-nothing: every bad value is reported in
one `LoadError`.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ciliary.model.errors import LoadError, ValidationIssue
from ciliary.model.source import Document

ENABLE_POLICY = ("default", "always", "never")
ALLOW_LOCALHOST = ("auto", "always", "policy")


@dataclass(frozen=True)
class AgentConfig:
    enable_policy: str = "default"
    allow_localhost: str = "auto"  # Kubernetes mode resolves auto to always
    policy_audit_mode: bool = False
    # Per-endpoint audit mode (`cilium endpoint config ID PolicyAuditMode=Enabled`): ns/pod globs.
    audit_mode_endpoints: tuple[str, ...] = ()
    policy_cidr_match_mode: str = ""  # "" or "nodes"
    enable_non_default_deny_policies: bool = True
    policy_default_local_cluster: bool = True
    enable_host_firewall: bool = False
    enable_l7_proxy: bool = True
    enable_icmp_rules: bool = True
    enable_node_selector_labels: bool = False
    cluster_name: str = "default"
    tofqdns_dns_reject_response_code: str = "refused"  # or nameError
    tofqdns_min_ttl: int = 0
    tofqdns_endpoint_max_ip_per_hostname: int = 1000
    tofqdns_idle_connection_grace_period: float = 0.0  # seconds
    # ciliary's own: whether mutual authentication (SPIFFE) has completed for auth-required
    # paths; Cilium drops with AUTH_REQUIRED until it has.
    mutual_auth_established: bool = True
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def localhost_always(self) -> bool:
        return self.allow_localhost in ("auto", "always")

    def audit_for(self, endpoint_key: str) -> bool:
        if self.policy_audit_mode:
            return True
        if not self.audit_mode_endpoints:
            return False
        return any(fnmatch.fnmatchcase(endpoint_key, g) for g in self.audit_mode_endpoints)

    def with_overrides(self, **kw: Any) -> AgentConfig:
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


_KEYS: dict[str, str] = {
    "enable-policy": "enable_policy",
    "allow-localhost": "allow_localhost",
    "policy-audit-mode": "policy_audit_mode",
    "audit-mode-endpoints": "audit_mode_endpoints",
    "policy-cidr-match-mode": "policy_cidr_match_mode",
    "enable-non-default-deny-policies": "enable_non_default_deny_policies",
    "enable-host-firewall": "enable_host_firewall",
    "policy-default-local-cluster": "policy_default_local_cluster",
    "enable-l7-proxy": "enable_l7_proxy",
    "enable-icmp-rules": "enable_icmp_rules",
    "enable-node-selector-labels": "enable_node_selector_labels",
    "cluster-name": "cluster_name",
    "mutual-auth-established": "mutual_auth_established",
    "tofqdns-dns-reject-response-code": "tofqdns_dns_reject_response_code",
    "tofqdns-min-ttl": "tofqdns_min_ttl",
    "tofqdns-endpoint-max-ip-per-hostname": "tofqdns_endpoint_max_ip_per_hostname",
    "tofqdns-idle-connection-grace-period": "tofqdns_idle_connection_grace_period",
}
_INTS = {"tofqdns_min_ttl", "tofqdns_endpoint_max_ip_per_hostname"}


def option_attribute(name: str) -> str:
    """The `AgentConfig` field of a Cilium agent option name (`allow-localhost` ->
    `allow_localhost`); KeyError for an option ciliary does not know."""
    return _KEYS[name]


def parse_duration(value: Any) -> float | None:
    """Go durations as Cilium takes them: `0s`, `30s`, `5m`, `1h`, or a number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        import re

        m = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?", value)
        if value and m and any(m.groups()):
            h, mi, sec, ms = (float(g) if g else 0.0 for g in m.groups())
            return h * 3600 + mi * 60 + sec + ms / 1000
        if value.isdigit():
            return float(value)
    return None
_BOOLS = {
    "policy_audit_mode", "enable_non_default_deny_policies", "policy_default_local_cluster", "enable_host_firewall",
    "enable_l7_proxy", "enable_icmp_rules", "enable_node_selector_labels", "mutual_auth_established",
}


def parse_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


# A coercer turns a raw option value into the AgentConfig field's value: (value, None), or
# (None, message) when the value is bad; the caller adds the file, line and key.
_Coerced = tuple[Any, str | None]


def _to_bool(v: Any) -> _Coerced:
    b = parse_bool(v)
    return (None, f"must be true or false, got {v!r}") if b is None else (b, None)


def _one_of(allowed: tuple[str, ...]) -> Callable[[Any], _Coerced]:
    def coerce(v: Any) -> _Coerced:
        if v not in allowed:
            return None, f"must be one of {', '.join(allowed)}, got {v!r}"
        return v, None

    return coerce


def _to_cidr_match_mode(v: Any) -> _Coerced:
    if v not in ("", "nodes", None):
        return None, f'must be "" or "nodes", got {v!r}'
    return v or "", None


def _to_endpoint_globs(v: Any) -> _Coerced:
    items = v.split() if isinstance(v, str) else v  # a ConfigMap value is one string
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        return None, "must be a list of namespace/pod names (globs allowed)"
    return tuple(items), None


def _to_count(v: Any) -> _Coerced:
    n = int(v) if isinstance(v, str) and v.isdigit() else v
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        return None, f"must be a non-negative integer, got {v!r}"
    return n, None


def _to_duration(v: Any) -> _Coerced:
    d = parse_duration(v)
    return (None, f"must be a duration like 0s, 30s or 5m, got {v!r}") if d is None else (d, None)


def _to_reject_code(v: Any) -> _Coerced:
    if v not in ("refused", "nameError"):
        return None, f"must be refused or nameError, got {v!r}"
    return v, None


def _to_cluster_name(v: Any) -> _Coerced:
    if not isinstance(v, str) or not v:
        return None, "must be a non-empty string"
    return v, None


# Every attribute of `_KEYS` has exactly one coercer.
_COERCE: dict[str, Callable[[Any], _Coerced]] = {
    **dict.fromkeys(_BOOLS, _to_bool),
    **dict.fromkeys(_INTS, _to_count),
    "enable_policy": _one_of(ENABLE_POLICY),
    "allow_localhost": _one_of(ALLOW_LOCALHOST),
    "policy_cidr_match_mode": _to_cidr_match_mode,
    "audit_mode_endpoints": _to_endpoint_globs,
    "tofqdns_idle_connection_grace_period": _to_duration,
    "tofqdns_dns_reject_response_code": _to_reject_code,
    "cluster_name": _to_cluster_name,
}
if set(_COERCE) != set(_KEYS.values()):  # pragma: no cover - guards drift
    raise ImportError("ciliary.policy.config: an agent option has no coercer")


def config_from_document(doc: Document) -> AgentConfig:
    value = doc.value
    issues: list[ValidationIssue] = []
    prefix: tuple[str, ...] = ()
    strict = True
    if isinstance(value, dict) and value.get("kind") == "ConfigMap":
        value = value.get("data") or {}
        prefix = ("data",)
        strict = False

    def issue(key: str, msg: str) -> None:
        path = (*prefix, key)
        field_path = ".".join(path)
        issues.append(ValidationIssue(doc.file, doc.line_of(path), doc.index, None, field_path, msg))

    if not isinstance(value, dict):
        raise LoadError([ValidationIssue(doc.file, doc.line_of(()), doc.index, None, "", "agent config must be a mapping of Cilium option names")])
    kw: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, v in value.items():
        attr = _KEYS.get(key)
        if attr is None:
            if strict:
                close = difflib.get_close_matches(str(key), list(_KEYS), n=1, cutoff=0.7)
                hint = f' (did you mean "{close[0]}"?)' if close else ""
                issue(str(key), f'unknown agent option "{key}"{hint}')
            else:
                extra[key] = v
            continue
        coerced, msg = _COERCE[attr](v)
        if msg is not None:
            issue(key, msg)
        else:
            kw[attr] = coerced
    if issues:
        raise LoadError(issues)
    return AgentConfig(**kw, extra=extra)
