"""The Kubernetes API server's share of import-time validation: apimachinery's ObjectMeta
and label-selector checks (the base of every policy walker; selectors in Cilium's or
Kubernetes' key flavour) and the NetworkPolicy walker (pkg/apis/networking/validation/
validation.go, core/validation/ips.go).

Contracts:
* A validator only reads the object; each problem is appended to `problems` as (path inside
  the object, message) in the order found, never raised. Messages use the API server's
  wording (or Cilium's, for Cilium-flavoured selectors).
* `KnpValidator` is driven by `ciliary.model.validate.validate_object`, the one entry point
  for every policy kind; `BaseValidator` is the base of the Cilium walker there too.
"""

from __future__ import annotations

from typing import Literal

from ciliary.model.errors import Path
from ciliary.model.k8s import IPBlock, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort
from ciliary.model.meta import LabelSelector, ObjectMeta
from ciliary.model.options import ValidationOptions
from ciliary.model.values import (
    ParsedPrefix,
    cilium_extended_key,
    dns1123_label_errors,
    dns1123_subdomain_errors,
    is_4in6,
    k8s_port_name_errors,
    label_value_errors,
    parse_prefix,
    q,
    qualified_name_errors,
)

Problem = tuple[Path, str]

# --------------------------------------------------------------------------------------
# Shared: metadata and label selectors
# --------------------------------------------------------------------------------------

SelectorMode = Literal["cilium", "cidrgroup", "values", "k8s"]


class BaseValidator:
    """Collects problems; checks shared by every policy kind (ObjectMeta, label selectors)."""

    def __init__(self, options: ValidationOptions) -> None:
        self.options = options
        self.problems: list[Problem] = []

    def add(self, path: Path, message: str) -> None:
        self.problems.append((path, message))

    def metadata(self, meta: ObjectMeta, namespaced: bool) -> None:
        # apimachinery ValidateObjectMeta with NameIsDNSSubdomain (CRs and NetworkPolicy).
        path: Path = ("metadata",)
        if not meta.name:
            self.add((*path, "name"), "required field is missing")
        else:
            for m in dns1123_subdomain_errors(meta.name):
                self.add((*path, "name"), f"invalid name {q(meta.name)}: {m}")
        if namespaced and meta.namespace:
            for m in dns1123_label_errors(meta.namespace):
                self.add((*path, "namespace"), f"invalid namespace {q(meta.namespace)}: {m}")
        for key, value in (meta.labels or {}).items():
            for m in qualified_name_errors(key):
                self.add((*path, "labels", key), f"invalid label key {q(key)}: {m}")
            for m in label_value_errors(value):
                self.add((*path, "labels", key), f"invalid label value {q(value)}: {m}")
        for key in meta.annotations or {}:
            for m in qualified_name_errors(key.lower()):
                self.add((*path, "annotations", key), f"invalid annotation key {q(key)}: {m}")

    def selector(self, path: Path, sel: LabelSelector, mode: SelectorMode) -> None:
        """Label selector validity (apimachinery ValidateLabelSelector).

        cilium: keys validated as Cilium's extended keys (selector.go sanitize/Validate);
        cidrgroup: keys under the `cidrgroup` source (rule_validation.go CIDRRule);
        values: only the CRD's matchLabels value pattern (service selectors);
        k8s: plain Kubernetes keys (NetworkPolicy).
        """
        head = "invalid label selector: " if mode != "k8s" else ""
        for key, value in (sel.match_labels or {}).items():
            kpath = (*path, "matchLabels", key)
            if mode != "values":
                self._selector_key(kpath, key, mode, head)
            for m in label_value_errors(value):
                self.add(kpath, f"{head}invalid value {q(value)}: {m}")
        if mode == "values":
            return
        for i, req in enumerate(sel.match_expressions or []):
            rpath = (*path, "matchExpressions", i)
            self._selector_key((*rpath, "key"), req.key, mode, head)
            if req.operator in ("In", "NotIn"):
                if not req.values:
                    where = (*rpath, "values") if req.values is not None else rpath
                    self.add(
                        where, f"{head}values must be specified when `operator` is 'In' or 'NotIn'"
                    )
            elif req.values:
                self.add(
                    (*rpath, "values"),
                    f"{head}values may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )
            for j, value in enumerate(req.values or []):
                for m in label_value_errors(value):
                    self.add((*rpath, "values", j), f"{head}invalid value {q(value)}: {m}")

    def _selector_key(self, path: Path, key: str, mode: SelectorMode, head: str) -> None:
        if mode == "k8s":
            checked = key
        else:
            checked = cilium_extended_key(key, "cidrgroup" if mode == "cidrgroup" else None)
        for m in qualified_name_errors(checked):
            note = f" (Cilium validates it as {q(checked)})" if checked != key else ""
            self.add(path, f"{head}invalid key {q(key)}: {m}{note}")


# --------------------------------------------------------------------------------------
# networking.k8s.io/v1 NetworkPolicy
# --------------------------------------------------------------------------------------


class KnpValidator(BaseValidator):
    """networking.k8s.io/v1 NetworkPolicy, as the API server validates it."""

    def knp(self, obj: NetworkPolicy) -> None:
        # networking/validation/validation.go ValidateNetworkPolicySpec.
        spec = obj.spec
        self.selector(("spec", "podSelector"), spec.pod_selector, "k8s")
        for i, ing in enumerate(spec.ingress or []):
            for j, port in enumerate(ing.ports or []):
                self.port(("spec", "ingress", i, "ports", j), port)
            for j, peer in enumerate(ing.from_ or []):
                self.peer(("spec", "ingress", i, "from", j), peer)
        for i, eg in enumerate(spec.egress or []):
            for j, port in enumerate(eg.ports or []):
                self.port(("spec", "egress", i, "ports", j), port)
            for j, peer in enumerate(eg.to or []):
                self.peer(("spec", "egress", i, "to", j), peer)
        if spec.policy_types is not None and len(spec.policy_types) > 2:
            self.add(("spec", "policyTypes"), "may not specify more than two policyTypes")

    def port(self, p: Path, port: NetworkPolicyPort) -> None:
        if port.protocol is not None and port.protocol not in ("TCP", "UDP", "SCTP"):
            self.add(
                (*p, "protocol"),
                f'unsupported value {q(port.protocol)}: must be one of "TCP", "UDP", "SCTP"',
            )
        end = port.end_port
        if isinstance(port.port, int):
            if not 1 <= port.port <= 65535:
                self.add(
                    (*p, "port"),
                    f"invalid value {port.port}: must be between 1 and 65535, inclusive",
                )
            if end is not None:
                if end < port.port:
                    self.add(
                        (*p, "endPort"),
                        f"invalid value {end}: must be greater than or equal to `port`",
                    )
                if not 1 <= end <= 65535:
                    self.add(
                        (*p, "endPort"),
                        f"invalid value {end}: must be between 1 and 65535, inclusive",
                    )
        elif isinstance(port.port, str):
            if end is not None:
                self.add(
                    (*p, "endPort"),
                    f"invalid value {end}: may not be specified when `port` is non-numeric",
                )
            for m in k8s_port_name_errors(port.port):
                self.add((*p, "port"), f"invalid value {q(port.port)}: {m}")
        elif end is not None:
            self.add(
                (*p, "endPort"),
                f"invalid value {end}: may not be specified when `port` is not specified",
            )

    def peer(self, p: Path, peer: NetworkPolicyPeer) -> None:
        count = 0
        if peer.pod_selector is not None:
            count += 1
            self.selector((*p, "podSelector"), peer.pod_selector, "k8s")
        if peer.namespace_selector is not None:
            count += 1
            self.selector((*p, "namespaceSelector"), peer.namespace_selector, "k8s")
        if peer.ip_block is not None:
            count += 1
            self.ip_block((*p, "ipBlock"), peer.ip_block)
        if count == 0:
            self.add(p, "must specify a peer (podSelector, namespaceSelector or ipBlock)")
        elif count > 1 and peer.ip_block is not None:
            self.add((*p, "ipBlock"), "may not specify both ipBlock and another peer")

    def ip_block(self, p: Path, ipb: IPBlock) -> None:
        # ValidateIPBlock + core/validation/ips.go parseCIDR (strict: newest API servers).
        if ipb.cidr == "":
            self.add((*p, "cidr"), "required field is missing")
            return
        cidr = self.k8s_cidr((*p, "cidr"), ipb.cidr)
        for i, exc in enumerate(ipb.except_ or []):
            ex = self.k8s_cidr((*p, "except", i), exc)
            if cidr is None or ex is None:
                continue
            if ex.network.network_address not in cidr.network or cidr.bits >= ex.bits:
                self.add(
                    (*p, "except", i), f"invalid value {q(exc)}: must be a strict subset of `cidr`"
                )

    def k8s_cidr(self, p: Path, value: str) -> ParsedPrefix | None:
        parsed = parse_prefix(value, sloppy=True)
        if isinstance(parsed, str):
            self.add(
                p,
                f"invalid value {q(value)}: must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            )
            return None
        bad = None
        if parsed.leading_zeros:
            bad = "must not have leading 0s in IP or prefix length"
        elif is_4in6(parsed.addr):
            bad = "must not have an IPv4-mapped IPv6 address"
        elif parsed.addr != parsed.network.network_address:
            bad = (
                f"must not have bits set beyond the prefix length (did you mean {parsed.network}?)"
            )
        if bad:
            self.add(p, f"invalid value {q(value)}: {bad}")
        return parsed
