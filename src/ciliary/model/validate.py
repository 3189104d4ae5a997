"""Import-time checks beyond the typed model, and their entry point `validate_object` for
every policy kind: here the CRD schema's constraints and Cilium's rule validation
(pkg/policy/api/rule_validation.go and friends) for CNP/CCNP; the API server's metadata,
selector and NetworkPolicy checks are in `ciliary.model.validate_k8s`, the value-level
primitives and tables in `ciliary.model.values`.

Every check returns (path inside the object, message). Paths point at the offending field;
messages use Cilium's (or the API server's) wording where there is one. Unlike Cilium,
which stops at the first error of a rule, every independent problem is reported; checks
that depend on a broken value are skipped so one mistake gives one message.

Contracts:
* `validate_object` only reads the object; problems are returned, not raised.
* `has_l7_rules` is a pure predicate on a typed object (for the engine's L7-proxy gate).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ciliary.model.cilium import (
    CIDRRule,
    CiliumClusterwideNetworkPolicy,
    CiliumNetworkPolicy,
    EgressRule,
    FQDNSelector,
    ICMPRule,
    IngressRule,
    L7Rules,
    PortDenyRule,
    PortProtocol,
    PortRule,
    PortRuleHTTP,
    PortRuleKafka,
    Rule,
    _EgressCommon,
    _IngressCommon,
)
from ciliary.model.errors import Path
from ciliary.model.k8s import NetworkPolicy
from ciliary.model.meta import LabelSelector
from ciliary.model.options import ValidationOptions
from ciliary.model.validate_k8s import BaseValidator, KnpValidator, Problem
from ciliary.model.values import (
    DNS_NAME_CHARS,
    DNS_PATTERN_CHARS,
    ENTITIES,
    EXTENDED_PROTOCOLS,
    ICMP_TYPES,
    KAFKA_API_KEYS,
    KAFKA_ROLES,
    PROTOCOLS,
    dns1123_subdomain_errors,
    dns_structure_msg,
    dns_structure_ok,
    go_parse_uint16,
    is_iana_svc_name,
    max_len_error,
    parse_prefix,
    printable,
    q,
    re2_error,
)

PolicyObject = CiliumNetworkPolicy | CiliumClusterwideNetworkPolicy | NetworkPolicy

# rule_validation.go: maxPorts, maxICMPFields (also maxItems in the CRD).
MAX_PORTS = 40
MAX_ICMP_FIELDS = 40

# The CRD pattern of ICMPField.type, verbatim: YAML folding turned "ExtendedEchoReply"
# into "ExtendedEcho Reply", so the API server rejects that name (use 43 / 161).
_ICMP_TYPE_CRD = re.compile(
    r"^([0-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5]|EchoReply|DestinationUnreachable"
    r"|Redirect|Echo|RouterAdvertisement|RouterSelection|TimeExceeded|ParameterProblem"
    r"|Timestamp|TimestampReply|Photuris|ExtendedEchoRequest|ExtendedEcho Reply|PacketTooBig"
    r"|ParameterProblem|EchoRequest|MulticastListenerQuery|MulticastListenerReport"
    r"|MulticastListenerDone|RouterSolicitation|RouterAdvertisement|NeighborSolicitation"
    r"|NeighborAdvertisement|RedirectMessage|RouterRenumbering|ICMPNodeInformationQuery"
    r"|ICMPNodeInformationResponse|InverseNeighborDiscoverySolicitation"
    r"|InverseNeighborDiscoveryAdvertisement|HomeAgentAddressDiscoveryRequest"
    r"|HomeAgentAddressDiscoveryReply|MobilePrefixSolicitation|MobilePrefixAdvertisement"
    r"|DuplicateAddressRequestCodeSuffix|DuplicateAddressConfirmationCodeSuffix)$"
)

KAFKA_MAX_TOPIC_LEN = 255
# kafka.go TopicValidChar is `^[a-zA-Z0-9\\._\\-]+$` in a Go raw string: '\' is allowed too.
_KAFKA_TOPIC = re.compile(r"[A-Za-z0-9\\._-]+")
_KAFKA_API_VERSION = re.compile(r"[+-]?[0-9]+")  # strconv.ParseInt(s, 10, 16) syntax


def validate_object(obj: PolicyObject, options: ValidationOptions) -> list[Problem]:
    """Every problem of one typed policy object; empty if it would be accepted."""
    if isinstance(obj, NetworkPolicy):
        k = KnpValidator(options)
        k.metadata(obj.metadata, namespaced=True)
        k.knp(obj)
        return k.problems
    c = _CiliumValidator(options, namespaced=isinstance(obj, CiliumNetworkPolicy))
    c.metadata(obj.metadata, namespaced=c.namespaced)
    c.policy(obj)
    return c.problems


# --------------------------------------------------------------------------------------
# CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy
# --------------------------------------------------------------------------------------


def _l7_empty(rules: L7Rules | None) -> bool:
    # l4.go L7Rules.IsEmpty: l7proto alone does not count.
    return rules is None or (
        rules.http is None and rules.kafka is None and rules.dns is None and rules.l7 is None
    )


def has_l7_rules(obj: object) -> bool:
    """Whether a CNP/CCNP carries L7 rules on an allow rule: what Cilium refuses to import
    when the L7 proxy is disabled (rule_validation.go), the whole policy with it."""
    if not isinstance(obj, CiliumNetworkPolicy | CiliumClusterwideNetworkPolicy):
        return False  # a Kubernetes NetworkPolicy has no L7 rules
    for _path, rule in obj.rules():
        ports = [pr for e in rule.ingress or [] for pr in e.to_ports or []]
        ports += [pr for e in rule.egress or [] for pr in e.to_ports or []]
        if any(not _l7_empty(pr.rules) for pr in ports):
            return True
    return False


class _CiliumValidator(BaseValidator):
    def __init__(self, options: ValidationOptions, namespaced: bool) -> None:
        super().__init__(options)
        self.namespaced = namespaced

    def policy(self, obj: CiliumNetworkPolicy | CiliumClusterwideNetworkPolicy) -> None:
        # cnp_types.go: XValidation "spec or specs must be provided" (Go: ErrEmptyCNP).
        if obj.spec is None and obj.specs is None:
            self.add((), "spec or specs must be provided")
        for path, rule in obj.rules():
            self.rule(path, rule)

    def rule(self, p: Path, r: Rule) -> None:
        # rule_validation.go Rule.Validate.
        if not (r.ingress or r.ingress_deny or r.egress or r.egress_deny):
            self.add(p, "rule must have at least one of Ingress, IngressDeny, Egress, EgressDeny")
        es, ns = r.endpoint_selector, r.node_selector
        if es is None and ns is None:
            self.add(p, "rule must have one of EndpointSelector or NodeSelector")
        elif es is not None and ns is not None:
            self.add(
                (*p, "nodeSelector"), "rule cannot have both EndpointSelector and NodeSelector"
            )
        elif ns is not None and self.namespaced:
            # cnp_types.go Validate.
            self.add(
                (*p, "nodeSelector"),
                "rule cannot have NodeSelector: node (host) policies need a CiliumClusterwideNetworkPolicy",
            )
        if es is not None:
            self.selector((*p, "endpointSelector"), es, "cilium")
        if ns is not None:
            self.selector((*p, "nodeSelector"), ns, "cilium")
        host = ns is not None
        for i, ing in enumerate(r.ingress or []):
            self.ingress((*p, "ingress", i), ing, host)
        for i, ingd in enumerate(r.ingress_deny or []):
            self.ingress_common((*p, "ingressDeny", i), ingd, bool(ingd.to_ports))
            self.deny_ports((*p, "ingressDeny", i), ingd.to_ports)
        for i, eg in enumerate(r.egress or []):
            self.egress((*p, "egress", i), eg, host)
        for i, egd in enumerate(r.egress_deny or []):
            self.egress_common((*p, "egressDeny", i), egd, bool(egd.to_ports))
            self.deny_ports((*p, "egressDeny", i), egd.to_ports)
        for i, lbl in enumerate(r.labels or []):
            if not lbl.key:  # pkg/labels Label.UnmarshalJSON
                self.add((*p, "labels", i, "key"), "invalid Label: does not contain label key")
        if r.log is not None and r.log.value is not None:
            # CRD: maxLength 32, pattern ^\PC*$.
            value = r.log.value
            if len(value) > 32:
                self.add((*p, "log", "value"), f"{max_len_error(32)} (got {len(value)})")
            if not printable(value):
                self.add((*p, "log", "value"), "must contain only printable characters")

    # -- L3 -------------------------------------------------------------------------

    def l3_exclusive(
        self, p: Path, members: Sequence[tuple[str, str, Sequence[object] | None]]
    ) -> None:
        # rule_validation.go: more than one L3 member type in one element.
        present = [(go, alias) for go, alias, value in members if value]
        if len(present) > 1:
            first, (second, alias) = present[0][0], present[1]
            self.add((*p, alias), f"Combining {first} and {second} is not supported yet")

    def ingress_common(self, p: Path, e: _IngressCommon, has_ports: bool) -> None:
        self.l3_exclusive(p, [
            ("FromEndpoints", "fromEndpoints", e.from_endpoints),
            ("FromCIDR", "fromCIDR", e.from_cidr),
            ("FromCIDRSet", "fromCIDRSet", e.from_cidr_set),
            ("FromEntities", "fromEntities", e.from_entities),
            ("FromNodes", "fromNodes", e.from_nodes),
            ("FromGroups", "fromGroups", e.from_groups),
        ])  # fmt: skip
        if e.from_nodes and not self.options.enable_node_selector_labels:
            self.add((*p, "fromNodes"), _NODES_FLAG)
        self.peers(p, "from", e.from_endpoints, e.from_requires, e.from_nodes,
                   e.from_cidr, e.from_cidr_set, e.from_entities)  # fmt: skip
        self.icmps(p, e.icmps, has_ports)

    def egress_common(
        self, p: Path, e: _EgressCommon, has_ports: bool, fqdns: Sequence[object] | None = None
    ) -> None:
        self.l3_exclusive(p, [
            ("ToCIDR", "toCIDR", e.to_cidr),
            ("ToCIDRSet", "toCIDRSet", e.to_cidr_set),
            ("ToEndpoints", "toEndpoints", e.to_endpoints),
            ("ToEntities", "toEntities", e.to_entities),
            ("ToServices", "toServices", e.to_services),
            ("ToGroups", "toGroups", e.to_groups),
            ("ToNodes", "toNodes", e.to_nodes),
            ("ToFQDNs", "toFQDNs", fqdns),
        ])  # fmt: skip
        if e.to_nodes and not self.options.enable_node_selector_labels:
            self.add((*p, "toNodes"), _NODES_FLAG)
        self.peers(p, "to", e.to_endpoints, e.to_requires, e.to_nodes,
                   e.to_cidr, e.to_cidr_set, e.to_entities)  # fmt: skip
        for i, svc in enumerate(e.to_services or []):
            sel = svc.k8s_service_selector
            if sel is not None:  # CRD: matchLabels values only
                self.selector(
                    (*p, "toServices", i, "k8sServiceSelector", "selector"), sel.selector, "values"
                )
        self.icmps(p, e.icmps, has_ports)

    def peers(
        self,
        p: Path,
        d: str,
        endpoints: list[LabelSelector] | None,
        requires: list[LabelSelector] | None,
        nodes: list[LabelSelector] | None,
        cidrs: list[str] | None,
        cidr_sets: list[CIDRRule] | None,
        entities: list[str] | None,
    ) -> None:
        for field, sels in (("Endpoints", endpoints), ("Requires", requires), ("Nodes", nodes)):
            for i, sel in enumerate(sels or []):
                self.selector((*p, f"{d}{field}", i), sel, "cilium")
        for i, cidr in enumerate(cidrs or []):
            self.cidr((*p, f"{d}CIDR", i), cidr)
        for i, rule in enumerate(cidr_sets or []):
            self.cidr_rule((*p, f"{d}CIDRSet", i), rule)
        for i, entity in enumerate(entities or []):
            if entity not in ENTITIES:  # entity.go EntitySelectorMapping + CRD enum
                self.add((*p, f"{d}Entities", i),
                         f"unsupported entity: {entity} (must be one of {', '.join(ENTITIES)})")  # fmt: skip

    def cidr(self, p: Path, value: str) -> None:
        # rule_validation.go CIDR.Validate + the CRD's `format: cidr` (net.ParseCIDR), which
        # rejects the bare IPs Go would accept.
        if value == "":
            self.add(p, "IP must be specified")
            return
        parsed = parse_prefix(value)
        if isinstance(parsed, str):
            self.add(p, f"unable to parse CIDR {q(value)}: {parsed}")

    def cidr_rule(self, p: Path, r: CIDRRule) -> None:
        # rule_validation.go CIDRRule.Validate (+ CRD oneOf cidr/cidrGroupRef/cidrGroupSelector).
        given = [x for x in (r.cidr, r.cidr_group_ref, r.cidr_group_selector) if x is not None]
        if not given:
            self.add(p, "one of cidr, cidrGroupRef, or cidrGroupSelector is required")
            return
        if len(given) > 1:
            self.add(p, "more than one of cidr, cidrGroupRef, or cidrGroupSelector may not be set")
            return
        if r.cidr_group_ref is not None:
            for m in dns1123_subdomain_errors(r.cidr_group_ref):
                self.add((*p, "cidrGroupRef"), f"invalid cidrGroupRef {q(r.cidr_group_ref)}: {m}")
            return
        if r.cidr_group_selector is not None:
            self.selector((*p, "cidrGroupSelector"), r.cidr_group_selector, "cidrgroup")
            return
        assert r.cidr is not None
        prefix = parse_prefix(r.cidr)
        if isinstance(prefix, str):
            self.add((*p, "cidr"), f"unable to parse CIDRRule {q(r.cidr)}: {prefix}")
            return
        for i, exc in enumerate(r.except_ or []):
            ex = parse_prefix(exc)
            if isinstance(ex, str):
                self.add((*p, "except", i), f"unable to parse except CIDR {q(exc)}: {ex}")
            elif prefix.bits > ex.bits or ex.addr not in prefix.network:
                self.add(
                    (*p, "except", i),
                    f"allow CIDR prefix {r.cidr} does not contain exclude CIDR prefix {exc}",
                )

    def icmps(self, p: Path, icmps: list[ICMPRule] | None, has_ports: bool) -> None:
        if not icmps:
            return
        if not self.options.enable_icmp_rules:
            self.add(
                (*p, "icmps"),
                'ICMP rules can only be applied when the "enable-icmp-rules" flag is set',
            )
        if has_ports:
            self.add(
                (*p, "icmps"),
                "The ICMPs block may only be present without ToPorts. Define a separate rule to use ToPorts.",
            )
        for i, rule in enumerate(icmps):
            fields = rule.fields or []
            if len(fields) > MAX_ICMP_FIELDS:
                self.add(
                    (*p, "icmps", i, "fields"), f"too many types, the max is {MAX_ICMP_FIELDS}"
                )
            for j, f in enumerate(fields):
                self.icmp_field((*p, "icmps", i, "fields", j), f.family, f.type)

    def icmp_field(self, p: Path, family: str | None, typ: int | str) -> None:
        # icmp.go: family enum, type 0-255 or a CamelCase name of that family.
        if family not in (None, "IPv4", "IPv6"):  # "" passes Go but not the CRD enum
            self.add((*p, "family"), f"wrong family: {family} (must be IPv4 or IPv6)")
            return
        fam = family or "IPv4"
        if isinstance(typ, int):
            if not 0 <= typ <= 255:
                self.add((*p, "type"), f"ICMP type must be between 0 and 255, got {typ}")
            return
        if not _ICMP_TYPE_CRD.fullmatch(typ):
            hint = ""
            if typ == "ExtendedEchoReply":
                hint = f" (the CRD pattern misspells this name; use {ICMP_TYPES[fam][typ]})"
            self.add(
                (*p, "type"),
                f"invalid ICMP type {q(typ)}: must be 0-255 or a CamelCase ICMP type name{hint}",
            )
            return
        if not typ.isdigit() and typ not in ICMP_TYPES[fam]:
            self.add((*p, "type"), f"ICMP type {typ} not found in {fam}")

    # -- allow rules ----------------------------------------------------------------

    def ingress(self, p: Path, e: IngressRule, host: bool) -> None:
        self.ingress_common(p, e, bool(e.to_ports))
        for j, pr in enumerate(e.to_ports or []):
            jp = (*p, "toPorts", j)
            if not _l7_empty(pr.rules):
                if host:
                    self.add((*jp, "rules"), "L7 policy is not supported on host ingress yet")
                elif not self.options.enable_l7_proxy:
                    self.add((*jp, "rules"), _NO_PROXY)
                elif pr.rules is not None and pr.rules.dns:
                    self.add(
                        (*jp, "rules", "dns"), "L7 protocol DNS is not supported on ingress yet"
                    )
            self.port_rule(jp, pr, ingress=True)

    def egress(self, p: Path, e: EgressRule, host: bool) -> None:
        self.egress_common(p, e, bool(e.to_ports), e.to_fqdns)
        for i, sel in enumerate(e.to_fqdns or []):
            self.fqdn((*p, "toFQDNs", i), sel, dns_rule=False)
        for j, pr in enumerate(e.to_ports or []):
            jp = (*p, "toPorts", j)
            rules = pr.rules
            if rules is not None and not _l7_empty(rules):
                if not self.options.enable_l7_proxy:
                    self.add((*jp, "rules"), _NO_PROXY)
                elif host:
                    for name, alias, value in (
                        ("HTTP", "http", rules.http),
                        ("Kafka", "kafka", rules.kafka),
                    ):
                        if value:
                            self.add(
                                (*jp, "rules", alias),
                                f"L7 protocol {name} is not supported on host egress yet",
                            )
            self.port_rule(jp, pr, ingress=False)

    def port_rule(self, p: Path, pr: PortRule, ingress: bool) -> None:
        # rule_validation.go PortRule.Validate.
        rules = pr.rules
        has_l7 = not _l7_empty(rules)
        has_dns = rules is not None and bool(rules.dns)
        if pr.server_names is not None:
            self.server_names((*p, "serverNames"), pr.server_names)
            if pr.server_names and has_l7 and pr.terminating_tls is None:
                self.add(
                    (*p, "serverNames"),
                    "ServerNames are not allowed with L7 rules without TLS termination",
                )
        ports = pr.ports or []
        zero: int | None = None
        if len(ports) > MAX_PORTS:
            self.add((*p, "ports"), f"too many ports, the max is {MAX_PORTS}")
        for k, pp in enumerate(ports):
            is_zero, proto = self.port_protocol((*p, "ports", k), pp, has_dns)
            if is_zero and zero is None:
                zero = k
            # DNS L7 rules can be TCP, UDP or ANY, all others are TCP only.
            if has_l7 and not has_dns and proto is not None and proto != "TCP":
                where = (
                    (*p, "ports", k, "protocol") if pp.protocol is not None else (*p, "ports", k)
                )
                self.add(
                    where, f"L7 rules can only apply to TCP (not {proto}) except for DNS rules"
                )
        if pr.listener is not None:
            self.listener((*p, "listener"), pr, ingress, has_l7)
        if rules is not None and has_l7:
            if zero is not None:
                self.add((*p, "ports", zero, "port"), "L7 rules can not be used when a port is 0")
            self.l7_rules((*p, "rules"), rules, ports)

    def deny_ports(self, p: Path, port_rules: list[PortDenyRule] | None) -> None:
        # rule_validation.go PortDenyRule.Validate.
        for j, pr in enumerate(port_rules or []):
            ports = pr.ports or []
            if len(ports) > MAX_PORTS:
                self.add((*p, "toPorts", j, "ports"), f"too many ports, the max is {MAX_PORTS}")
            for k, pp in enumerate(ports):
                self.port_protocol((*p, "toPorts", j, "ports", k), pp, has_dns=False)

    def port_protocol(self, p: Path, pp: PortProtocol, has_dns: bool) -> tuple[bool, str | None]:
        """PortProtocol.Validate + CRD: returns (port is 0, effective protocol or None if bad)."""
        proto: str | None = pp.protocol or "ANY"
        if pp.protocol is not None:  # the CRD enum rejects "" too
            allowed = PROTOCOLS + (
                EXTENDED_PROTOCOLS if self.options.enable_extended_ip_protocols else ()
            )
            if pp.protocol not in allowed:
                self.add((*p, "protocol"), _invalid_protocol(pp.protocol, allowed))
                proto = None
        if pp.end_port is not None and not 0 <= pp.end_port <= 65535:
            self.add((*p, "endPort"), f"endPort must be between 0 and 65535, got {pp.end_port}")
        port = pp.port
        if port == "":
            if not self.options.enable_extended_ip_protocols:
                self.add((*p, "port"), "port must be specified")
            return False, proto
        if is_iana_svc_name(port):
            return False, proto  # a named port; endPort is ignored for names
        if port != "0" and proto in EXTENDED_PROTOCOLS:
            self.add((*p, "port"), f"port must be empty or 0 for protocol {proto}")
            return False, proto
        value, err = go_parse_uint16(port)
        if err is not None:
            self.add(
                (*p, "port"),
                f"unable to parse port: strconv.ParseUint: parsing {q(port)}: {err} "
                "(a port is a number 0-65535 or a port name of at most 15 letters, digits and '-')",
            )
            return False, proto
        if has_dns and pp.end_port is not None and pp.end_port > value:
            self.add((*p, "endPort"), "DNS rules do not support port ranges")
        return value == 0, proto

    def server_names(self, p: Path, names: list[str]) -> None:
        # CRD: minItems 1, listType set, items maxLength 255 + pattern; Go: no empty names.
        if not names:
            self.add(p, "must have at least 1 item (omit serverNames to allow any)")
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name == "":
                self.add((*p, i), "empty server name is not allowed")
            elif len(name) > 255:
                self.add((*p, i), max_len_error(255))
            elif not dns_structure_ok(name, DNS_PATTERN_CHARS):
                self.add((*p, i), f"invalid server name {q(name)}: " + dns_structure_msg(True))
            elif name in seen:
                self.add((*p, i), f"duplicate server name {q(name)}")
            seen.add(name)

    def listener(self, p: Path, pr: PortRule, ingress: bool, has_l7: bool) -> None:
        lst = pr.listener
        assert lst is not None
        if ingress:
            self.add(p, f"Listener is not allowed on ingress ({lst.name})")
        elif has_l7:
            self.add(p, f"Listener is not allowed with L7 rules ({lst.name})")
        if lst.name == "":  # CRD minLength 1
            self.add((*p, "name"), "must not be empty")
        if lst.envoy_config.name == "":
            self.add((*p, "envoyConfig", "name"), "must not be empty")
        if lst.priority is not None and not 1 <= lst.priority <= 100:  # CRD minimum/maximum
            self.add(
                (*p, "priority"), f"listener priority must be between 1 and 100, got {lst.priority}"
            )

    def l7_rules(self, p: Path, rules: L7Rules, ports: list[PortProtocol]) -> None:
        # rule_validation.go L7Rules.Validate (http, kafka, dns, l7proto/l7).
        kinds = 0
        if rules.http is not None:
            kinds += 1
            for i, h in enumerate(rules.http):
                self.http((*p, "http", i), h)
        if rules.kafka is not None:
            kinds += 1
            for i, k in enumerate(rules.kafka):
                self.kafka((*p, "kafka", i), k)
        if rules.dns is not None:
            kinds += 1
            if not ports:
                self.add((*p, "dns"), "port 53 must be specified for DNS rules")
            for i, d in enumerate(rules.dns):
                self.fqdn((*p, "dns", i), d, dns_rule=True)
        if rules.l7 is not None and not rules.l7proto:
            self.add((*p, "l7"), "'l7' may only be specified when a 'l7proto' is also specified")
        if rules.l7proto:
            kinds += 1
            for i, kv in enumerate(rules.l7 or []):
                if "" in kv:  # l7.go PortRuleL7.Sanitize
                    self.add((*p, "l7", i), "Empty key not allowed")
        if kinds > 1:
            self.add(p, "multiple L7 protocol rule types specified in single rule")

    def http(self, p: Path, h: PortRuleHTTP) -> None:
        # http.go PortRuleHTTP.Sanitize: path and method must compile as Go (RE2) regexps.
        # The host is a regex too (enforced by Envoy's RE2), so it is compiled as well.
        for field, value in (("path", h.path), ("method", h.method), ("host", h.host)):
            if value:
                err = re2_error(value)
                if err is not None:
                    self.add((*p, field), f"invalid regular expression {q(value)}: {err}")
        for i, m in enumerate(h.header_matches or []):
            if m.name == "":
                self.add((*p, "headerMatches", i, "name"), "Header name missing")
            if m.secret is not None and m.secret.name == "":
                self.add((*p, "headerMatches", i, "secret", "name"), "Secret name missing")

    def kafka(self, p: Path, k: PortRuleKafka) -> None:
        # kafka/kafka.go PortRule.Sanitize (+ CRD: role enum, topic maxLength 255).
        if k.api_key and k.role:
            self.add(p, f"cannot set both Role {q(k.role)} and APIKey {q(k.api_key)} together")
        if k.api_key and k.api_key.lower() not in KAFKA_API_KEYS:
            self.add((*p, "apiKey"), f"invalid Kafka APIKey {q(k.api_key)}")
        if k.role is not None and k.role not in KAFKA_ROLES:  # CRD enum, so "" fails too
            hint = (
                " (lower case: the CRD enum is case-sensitive)"
                if k.role.lower() in KAFKA_ROLES
                else ""
            )
            self.add(
                (*p, "role"), f"invalid Kafka Role {q(k.role)}: must be produce or consume{hint}"
            )
        if k.api_version:
            ok = _KAFKA_API_VERSION.fullmatch(k.api_version) and 0 <= int(k.api_version) <= 32767
            if not ok:
                self.add((*p, "apiVersion"), f"invalid Kafka APIVersion {q(k.api_version)}")
        if k.topic:
            if len(k.topic) > KAFKA_MAX_TOPIC_LEN:
                self.add((*p, "topic"), f"kafka topic exceeds maximum len of {KAFKA_MAX_TOPIC_LEN}")
            elif not _KAFKA_TOPIC.fullmatch(k.topic):
                self.add((*p, "topic"), f"invalid Kafka Topic name {q(k.topic)}")

    def fqdn(self, p: Path, s: FQDNSelector, dns_rule: bool) -> None:
        # fqdn.go FQDNSelector/PortRuleDNS + CRD oneOf, maxLength 255 and patterns.
        if s.match_name is not None and s.match_pattern is not None:
            self.add(p, "only one of MatchName or MatchPattern is allowed in an FQDNSelector")
            return
        if s.match_name is None and s.match_pattern is None:
            self.add(p, "one of matchName or matchPattern is required")
            return
        is_pattern = s.match_pattern is not None
        field = "matchPattern" if is_pattern else "matchName"
        value = s.match_pattern if s.match_pattern is not None else s.match_name
        assert value is not None
        chars = DNS_PATTERN_CHARS if is_pattern else DNS_NAME_CHARS
        if len(value) > 255:
            self.add((*p, field), max_len_error(255))
        elif any(c not in chars for c in value):
            allowed = "0-9, a-z, A-Z, _, ., - and *" if is_pattern else "0-9, a-z, A-Z, _, . and -"
            name = "MatchPattern" if is_pattern else "MatchName"
            self.add(
                (*p, field),
                f"Invalid characters in {name}: {q(value)}. Only {allowed} characters are allowed",
            )
        elif not dns_structure_ok(value, chars):
            self.add((*p, field), f"invalid {field} {q(value)}: " + dns_structure_msg(is_pattern))


_NODES_FLAG = (
    'FromNodes/ToNodes rules can only be applied when the "enable-node-selector-labels" flag is set'
)
_NO_PROXY = "L7 policy is not supported since L7 proxy is not enabled"


def _invalid_protocol(value: str, allowed: Sequence[str]) -> str:
    msg = f"invalid protocol {q(value)}, must be one of {', '.join(allowed)}"
    upper = value.upper()
    if upper in allowed:
        msg += f" (upper case: {upper})"
    elif upper in ("ICMP", "ICMPV6"):
        msg += " (use icmps for ICMP)"
    elif upper in EXTENDED_PROTOCOLS:
        msg += " (extended IP protocols need --enable-extended-ip-protocols)"
    return msg
