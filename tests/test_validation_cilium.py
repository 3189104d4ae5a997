"""CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy: every CRD constraint and every
import-time check of Cilium's rule validation, one bad policy each.

Each case is the `spec` of a policy (or a whole document). The line carrying `#!` is where
the single expected issue must be reported; without a marker it is the `spec:` line.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import pytest

from ciliary.model.errors import LoadError
from ciliary.model.loader import load_policies
from ciliary.model.options import ValidationOptions
from ciliary.model.source import parse_text

DEFAULTS = ValidationOptions()
NO_PROXY = ValidationOptions(enable_l7_proxy=False)
NO_ICMP = ValidationOptions(enable_icmp_rules=False)
NODES = ValidationOptions(enable_node_selector_labels=True)
EXTENDED = ValidationOptions(enable_extended_ip_protocols=True)


@dataclass
class Case:
    id: str
    body: str
    field: str
    fragment: str
    options: ValidationOptions = DEFAULTS  # frozen, safe to share
    kind: str = "CiliumNetworkPolicy"


def document(body: str, kind: str = "CiliumNetworkPolicy") -> str:
    body = textwrap.dedent(body).strip("\n")
    if body.startswith("apiVersion:"):
        return body + "\n"
    spec_mark = "" if "#!" in body else "  #!"
    namespace = "  namespace: ns\n" if kind == "CiliumNetworkPolicy" else ""
    return (
        f"apiVersion: cilium.io/v2\nkind: {kind}\nmetadata:\n  name: p\n{namespace}"
        f"spec:{spec_mark}\n" + textwrap.indent(body, "  ") + "\n"
    )


def expect_one_issue(text: str, field: str, fragment: str, options: ValidationOptions) -> None:
    marked = [i for i, line in enumerate(text.splitlines(), 1) if "#!" in line]
    assert len(marked) == 1, "a case marks exactly one line"
    with pytest.raises(LoadError) as err:
        load_policies(parse_text(text, "bad.yaml"), options)
    got = [(i.field, i.line, i.message) for i in err.value.issues]
    assert [(f, ln) for f, ln, _ in got] == [(field, marked[0])], got
    assert fragment in got[0][2], got


F41 = "[" + ", ".join(["{type: 8}"] * 41) + "]"
P41 = "[" + ", ".join(f'{{port: "{1000 + i}"}}' for i in range(41)) + "]"
LONG_KEY = "a" * 61  # 61 characters, but Cilium checks "any." + key: 65 > 63

CASES = [
    # -- the rule -------------------------------------------------------------------
    Case("no-subject-selector", "ingress: [{}]", "spec",
         "rule must have one of EndpointSelector or NodeSelector"),
    Case("no-direction", "endpointSelector: {}", "spec",
         "rule must have at least one of Ingress, IngressDeny, Egress, EgressDeny"),
    Case("only-empty-directions", "endpointSelector: {}\ningress: []\negressDeny: []", "spec",
         "rule must have at least one of Ingress, IngressDeny, Egress, EgressDeny"),
    Case("both-selectors", "endpointSelector: {}\nnodeSelector: {}  #!\ningress: [{}]",
         "spec.nodeSelector", "rule cannot have both EndpointSelector and NodeSelector",
         kind="CiliumClusterwideNetworkPolicy"),
    Case("cnp-node-selector", "nodeSelector: {}  #!\ningress: [{}]", "spec.nodeSelector",
         "rule cannot have NodeSelector"),
    Case("no-spec-or-specs", """
        apiVersion: cilium.io/v2  #!
        kind: CiliumNetworkPolicy
        metadata: {name: p, namespace: ns}
        """, "", "spec or specs must be provided"),
    Case("bad-rule-in-specs", """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata: {name: p, namespace: ns}
        specs:
        - endpointSelector: {}
          egress: [{}]
        - endpointSelector: {}
          egress: [{toEntities: [everyone]}]  #!
        """, "specs[1].egress[0].toEntities[0]", "unsupported entity: everyone"),
    # -- label selectors ------------------------------------------------------------
    Case("selector-key-prefix", 'endpointSelector: {matchLabels: {"k8s:Example.com/app": x}}  #!\ningress: [{}]',
         "spec.endpointSelector.matchLabels.k8s:Example.com/app",
         'invalid label selector: invalid key "k8s:Example.com/app": prefix part'),
    Case("selector-key-too-long", f"endpointSelector: {{matchLabels: {{{LONG_KEY}: x}}}}  #!\ningress: [{{}}]",
         f"spec.endpointSelector.matchLabels.{LONG_KEY}",
         f'name part must be no more than 63 characters (Cilium validates it as "any.{LONG_KEY}")'),
    Case("selector-key-chars", 'endpointSelector: {matchExpressions: [{key: "a b", operator: Exists}]}  #!\ningress: [{}]',
         "spec.endpointSelector.matchExpressions[0].key", 'invalid key "a b": name part must consist'),
    Case("selector-value-chars", 'endpointSelector: {matchLabels: {app: "my app"}}  #!\ningress: [{}]',
         "spec.endpointSelector.matchLabels.app", 'invalid label selector: invalid value "my app"'),
    Case("selector-value-too-long", f"endpointSelector: {{matchLabels: {{app: {'v' * 64}}}}}  #!\ningress: [{{}}]",
         "spec.endpointSelector.matchLabels.app", "must be no more than 63 characters"),
    Case("in-without-values", """
        endpointSelector: {}
        ingress:
        - fromEndpoints:
          - matchExpressions:
            - {key: app, operator: In}  #!
        """, "spec.ingress[0].fromEndpoints[0].matchExpressions[0]",
         "values must be specified when `operator` is 'In' or 'NotIn'"),
    Case("notin-empty-values", """
        endpointSelector: {}
        egress:
        - toEndpoints:
          - matchExpressions:
            - key: app
              operator: NotIn
              values: []  #!
        """, "spec.egress[0].toEndpoints[0].matchExpressions[0].values",
         "values must be specified when `operator` is 'In' or 'NotIn'"),
    Case("exists-with-values", """
        endpointSelector: {}
        ingress:
        - fromEndpoints:
          - matchExpressions:
            - key: app
              operator: Exists
              values: [x]  #!
        """, "spec.ingress[0].fromEndpoints[0].matchExpressions[0].values",
         "values may not be specified when `operator` is 'Exists' or 'DoesNotExist'"),
    Case("expression-value-chars", """
        endpointSelector:
          matchExpressions:
          - key: app
            operator: In
            values:
            - ok
            - "not ok"  #!
        ingress: [{}]
        """, "spec.endpointSelector.matchExpressions[0].values[1]", 'invalid value "not ok"'),
    Case("operator-enum", """
        endpointSelector:
          matchExpressions:
          - key: app
            operator: Equals  #!
        ingress: [{}]
        """, "spec.endpointSelector.matchExpressions[0].operator",
         'unsupported value "Equals": must be one of "In", "NotIn", "Exists", "DoesNotExist"'),
    Case("node-selector-key", 'nodeSelector: {matchLabels: {"a/b/c": x}}  #!\ningress: [{}]',
         "spec.nodeSelector.matchLabels.a/b/c", "invalid label selector: invalid key",
         kind="CiliumClusterwideNetworkPolicy"),
    Case("from-requires-selector", """
        endpointSelector: {}
        ingress:
        - fromRequires: [{matchLabels: {"env": "-prod"}}]  #!
        """, "spec.ingress[0].fromRequires[0].matchLabels.env", 'invalid value "-prod"'),
    Case("from-nodes-selector", """
        endpointSelector: {}
        ingress:
        - fromNodes: [{matchLabels: {"Node/Role": x}}]  #!
        """, "spec.ingress[0].fromNodes[0].matchLabels.Node/Role", "prefix part", NODES),
    Case("cidr-group-selector-key", """
        endpointSelector: {}
        egress:
        - toCIDRSet:
          - cidrGroupSelector: {matchLabels: {"bad key": x}}  #!
        """, "spec.egress[0].toCIDRSet[0].cidrGroupSelector.matchLabels.bad key",
         'Cilium validates it as "cidrgroup.bad key"'),
    Case("service-selector-value", """
        endpointSelector: {}
        egress:
        - toServices:
          - k8sServiceSelector:
              selector: {matchLabels: {app: "a b"}}  #!
        """, "spec.egress[0].toServices[0].k8sServiceSelector.selector.matchLabels.app",
         'invalid value "a b"'),
    # -- more than one L3 peer type ------------------------------------------------------
    Case("from-endpoints-and-cidr", """
        endpointSelector: {}
        ingress:
        - fromEndpoints: [{}]
          fromCIDR: [10.0.0.0/8]  #!
        """, "spec.ingress[0].fromCIDR", "Combining FromEndpoints and FromCIDR is not supported yet"),
    Case("to-endpoints-and-fqdns", """
        endpointSelector: {}
        egress:
        - toEndpoints: [{}]
          toFQDNs: [{matchName: example.com}]  #!
        """, "spec.egress[0].toFQDNs", "Combining ToEndpoints and ToFQDNs is not supported yet"),
    Case("to-cidr-and-cidrset", """
        endpointSelector: {}
        egress:
        - toCIDR: [10.0.0.0/8]
          toCIDRSet: [{cidr: 10.0.0.0/8}]  #!
        """, "spec.egress[0].toCIDRSet", "Combining ToCIDR and ToCIDRSet is not supported yet"),
    Case("deny-entities-and-cidrset", """
        endpointSelector: {}
        ingressDeny:
        - fromCIDRSet: [{cidr: 10.0.0.0/8}]
          fromEntities: [world]  #!
        """, "spec.ingressDeny[0].fromEntities", "Combining FromCIDRSet and FromEntities is not supported yet"),
    Case("deny-entities-and-services", """
        endpointSelector: {}
        egressDeny:
        - toServices: [{k8sService: {serviceName: a, namespace: b}}]  #!
          toEntities: [world]
        """, "spec.egressDeny[0].toServices", "Combining ToEntities and ToServices is not supported yet"),
    Case("from-endpoints-and-nodes", """
        endpointSelector: {}
        ingress:
        - fromEndpoints: [{}]
          fromNodes: [{}]  #!
        """, "spec.ingress[0].fromNodes", "Combining FromEndpoints and FromNodes is not supported yet", NODES),
    Case("to-groups-and-endpoints", """
        endpointSelector: {}
        egress:
        - toEndpoints: [{}]
          toGroups: [{aws: {region: eu-west-1}}]  #!
        """, "spec.egress[0].toGroups", "Combining ToEndpoints and ToGroups is not supported yet"),
    # -- flags --------------------------------------------------------------------------
    Case("from-nodes-without-flag", """
        endpointSelector: {}
        ingress:
        - fromNodes: [{}]  #!
        """, "spec.ingress[0].fromNodes",
         'FromNodes/ToNodes rules can only be applied when the "enable-node-selector-labels" flag is set'),
    Case("to-nodes-without-flag", """
        endpointSelector: {}
        egressDeny:
        - toNodes: [{}]  #!
        """, "spec.egressDeny[0].toNodes", "FromNodes/ToNodes rules can only be applied"),
    Case("icmps-without-flag", """
        endpointSelector: {}
        ingress:
        - icmps: [{fields: [{type: 8}]}]  #!
        """, "spec.ingress[0].icmps",
         'ICMP rules can only be applied when the "enable-icmp-rules" flag is set', NO_ICMP),
    Case("l7-without-proxy", """
        endpointSelector: {}
        ingress:
        - toPorts:
          - ports: [{port: "80", protocol: TCP}]
            rules: {http: [{method: GET}]}  #!
        """, "spec.ingress[0].toPorts[0].rules",
         "L7 policy is not supported since L7 proxy is not enabled", NO_PROXY),
    Case("dns-without-proxy", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports: [{port: "53", protocol: UDP}]
            rules: {dns: [{matchPattern: "*"}]}  #!
        """, "spec.egress[0].toPorts[0].rules",
         "L7 policy is not supported since L7 proxy is not enabled", NO_PROXY),
    # -- entities and CIDRs -------------------------------------------------------------
    Case("unsupported-entity", """
        endpointSelector: {}
        ingress:
        - fromEntities:
          - world
          - internet  #!
        """, "spec.ingress[0].fromEntities[1]", "unsupported entity: internet"),
    Case("entity-not-in-crd-enum", """
        endpointSelector: {}
        egress:
        - toEntities: [world-ipv6]  #!
        """, "spec.egress[0].toEntities[0]", "unsupported entity: world-ipv6"),
    Case("cidr-unparsable", """
        endpointSelector: {}
        ingress:
        - fromCIDR: [10.0.0.300/8]  #!
        """, "spec.ingress[0].fromCIDR[0]", 'unable to parse CIDR "10.0.0.300/8"'),
    Case("cidr-bare-ip", """
        endpointSelector: {}
        egress:
        - toCIDR: [192.0.2.1]  #!
        """, "spec.egress[0].toCIDR[0]", "missing prefix length"),
    Case("cidr-empty", """
        endpointSelector: {}
        egress:
        - toCIDR: [""]  #!
        """, "spec.egress[0].toCIDR[0]", "IP must be specified"),
    Case("cidr-non-contiguous-mask", """
        endpointSelector: {}
        egressDeny:
        - toCIDR: [10.0.0.0/255.0.255.0]  #!
        """, "spec.egressDeny[0].toCIDR[0]", "CIDR cannot specify non-contiguous mask 10.0.0.0/255.0.255.0"),
    Case("cidr-prefix-too-long", """
        endpointSelector: {}
        egress:
        - toCIDR: ["2001:db8::/129"]  #!
        """, "spec.egress[0].toCIDR[0]", "prefix length 129 out of range"),
    Case("cidrset-unparsable", """
        endpointSelector: {}
        ingress:
        - fromCIDRSet:
          - cidr: 10.0.0.1  #!
        """, "spec.ingress[0].fromCIDRSet[0].cidr", 'unable to parse CIDRRule "10.0.0.1"'),
    Case("except-outside-cidr", """
        endpointSelector: {}
        ingress:
        - fromCIDRSet:
          - cidr: 10.0.0.0/8
            except:
            - 10.1.0.0/16
            - 11.0.0.0/16  #!
        """, "spec.ingress[0].fromCIDRSet[0].except[1]",
         "allow CIDR prefix 10.0.0.0/8 does not contain exclude CIDR prefix 11.0.0.0/16"),
    Case("except-wider-than-cidr", """
        endpointSelector: {}
        egress:
        - toCIDRSet: [{cidr: 10.0.0.0/16, except: [10.0.0.0/8]}]  #!
        """, "spec.egress[0].toCIDRSet[0].except[0]",
         "allow CIDR prefix 10.0.0.0/16 does not contain exclude CIDR prefix 10.0.0.0/8"),
    Case("except-other-family", """
        endpointSelector: {}
        egress:
        - toCIDRSet: [{cidr: 0.0.0.0/0, except: ["::/0"]}]  #!
        """, "spec.egress[0].toCIDRSet[0].except[0]", "does not contain exclude CIDR prefix ::/0"),
    Case("except-unparsable", """
        endpointSelector: {}
        egressDeny:
        - toCIDRSet: [{cidr: 10.0.0.0/8, except: [10.0.0.0/40]}]  #!
        """, "spec.egressDeny[0].toCIDRSet[0].except[0]", 'unable to parse except CIDR "10.0.0.0/40"'),
    Case("cidrset-empty", """
        endpointSelector: {}
        egress:
        - toCIDRSet: [{except: [10.0.0.0/16]}]  #!
        """, "spec.egress[0].toCIDRSet[0]", "one of cidr, cidrGroupRef, or cidrGroupSelector is required"),
    Case("cidrset-two-kinds", """
        endpointSelector: {}
        egress:
        - toCIDRSet: [{cidr: 10.0.0.0/8, cidrGroupRef: office}]  #!
        """, "spec.egress[0].toCIDRSet[0]", "more than one of cidr, cidrGroupRef, or cidrGroupSelector"),
    Case("cidr-group-ref-name", """
        endpointSelector: {}
        egress:
        - toCIDRSet: [{cidrGroupRef: Office_Net}]  #!
        """, "spec.egress[0].toCIDRSet[0].cidrGroupRef", "a lowercase RFC 1123 subdomain"),
    # -- ICMP -----------------------------------------------------------------------
    Case("icmps-with-to-ports", """
        endpointSelector: {}
        egress:
        - icmps: [{fields: [{type: 8}]}]  #!
          toPorts: [{ports: [{port: "80"}]}]
        """, "spec.egress[0].icmps",
         "The ICMPs block may only be present without ToPorts. Define a separate rule to use ToPorts."),
    Case("icmp-too-many-fields", f"""
        endpointSelector: {{}}
        ingressDeny:
        - icmps:
          - fields: {F41}  #!
        """, "spec.ingressDeny[0].icmps[0].fields", "too many types, the max is 40"),
    Case("icmp-family", """
        endpointSelector: {}
        ingress:
        - icmps:
          - fields:
            - family: ipv6  #!
              type: 128
        """, "spec.ingress[0].icmps[0].fields[0].family", "wrong family: ipv6"),
    Case("icmp-type-range", """
        endpointSelector: {}
        ingress:
        - icmps: [{fields: [{type: 256}]}]  #!
        """, "spec.ingress[0].icmps[0].fields[0].type", "between 0 and 255, got 256"),
    Case("icmp-type-string-range", """
        endpointSelector: {}
        ingress:
        - icmps: [{fields: [{type: "256"}]}]  #!
        """, "spec.ingress[0].icmps[0].fields[0].type", 'invalid ICMP type "256"'),
    Case("icmp-type-name", """
        endpointSelector: {}
        egress:
        - icmps: [{fields: [{type: Ping}]}]  #!
        """, "spec.egress[0].icmps[0].fields[0].type", 'invalid ICMP type "Ping"'),
    Case("icmp-type-other-family", """
        endpointSelector: {}
        egress:
        - icmps: [{fields: [{family: IPv6, type: Echo}]}]  #!
        """, "spec.egress[0].icmps[0].fields[0].type", "ICMP type Echo not found in IPv6"),
    Case("icmp-type-crd-typo", """
        endpointSelector: {}
        egress:
        - icmps: [{fields: [{type: ExtendedEchoReply}]}]  #!
        """, "spec.egress[0].icmps[0].fields[0].type", "use 43"),
    Case("icmp-type-missing", """
        endpointSelector: {}
        egress:
        - icmps: [{fields: [{family: IPv4}]}]  #!
        """, "spec.egress[0].icmps[0].fields[0].type", "required field is missing"),
    # -- L4 -------------------------------------------------------------------------
    Case("too-many-ports", f"""
        endpointSelector: {{}}
        ingress:
        - toPorts:
          - ports: {P41}  #!
        """, "spec.ingress[0].toPorts[0].ports", "too many ports, the max is 40"),
    Case("too-many-deny-ports", f"""
        endpointSelector: {{}}
        egressDeny:
        - toPorts:
          - ports: {P41}  #!
        """, "spec.egressDeny[0].toPorts[0].ports", "too many ports, the max is 40"),
    Case("empty-port", """
        endpointSelector: {}
        ingress:
        - toPorts:
          - ports:
            - port: ""  #!
        """, "spec.ingress[0].toPorts[0].ports[0].port", "port must be specified"),
    Case("missing-port", """
        endpointSelector: {}
        ingress:
        - toPorts:
          - ports:
            - protocol: TCP  #!
        """, "spec.ingress[0].toPorts[0].ports[0].port", "port must be specified"),
    Case("port-out-of-range", """
        endpointSelector: {}
        ingress:
        - toPorts:
          - ports:
            - port: "65536"  #!
        """, "spec.ingress[0].toPorts[0].ports[0].port",
         'unable to parse port: strconv.ParseUint: parsing "65536": value out of range'),
    Case("port-garbage", """
        endpointSelector: {}
        egressDeny:
        - toPorts:
          - ports:
            - port: "80/tcp"  #!
        """, "spec.egressDeny[0].toPorts[0].ports[0].port", 'parsing "80/tcp": invalid syntax'),
    Case("port-octal-like", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports:
            - port: "08080"  #!
        """, "spec.egress[0].toPorts[0].ports[0].port", 'parsing "08080": invalid syntax'),
    Case("port-name-too-long", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports:
            - port: a-very-long-port-name  #!
        """, "spec.egress[0].toPorts[0].ports[0].port", "unable to parse port"),
    Case("port-is-integer", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports:
            - port: 443  #!
        """, "spec.egress[0].toPorts[0].ports[0].port", 'must be a string, got integer 443 (quote it: "443")'),
    Case("end-port-range", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports:
            - port: "8000"
              endPort: 70000  #!
        """, "spec.egress[0].toPorts[0].ports[0].endPort", "endPort must be between 0 and 65535"),
    Case("end-port-negative", """
        endpointSelector: {}
        ingressDeny:
        - toPorts:
          - ports:
            - port: "8000"
              endPort: -1  #!
        """, "spec.ingressDeny[0].toPorts[0].ports[0].endPort", "endPort must be between 0 and 65535"),
    Case("protocol-lower-case", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports:
            - port: "80"
              protocol: tcp  #!
        """, "spec.egress[0].toPorts[0].ports[0].protocol", 'invalid protocol "tcp"'),
    Case("protocol-empty", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports:
            - port: "80"
              protocol: ""  #!
        """, "spec.egress[0].toPorts[0].ports[0].protocol", 'invalid protocol ""'),
    Case("protocol-icmp", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports:
            - port: "0"
              protocol: ICMP  #!
        """, "spec.egress[0].toPorts[0].ports[0].protocol", "use icmps for ICMP"),
    Case("protocol-extended-without-flag", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports:
            - port: "0"
              protocol: VRRP  #!
        """, "spec.egress[0].toPorts[0].ports[0].protocol", "--enable-extended-ip-protocols"),
    Case("extended-protocol-with-port", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports:
            - port: "112"  #!
              protocol: VRRP
        """, "spec.egress[0].toPorts[0].ports[0].port", "port must be empty or 0", EXTENDED),
    # -- L7 -------------------------------------------------------------------------
    Case("dns-on-ingress", """
        endpointSelector: {}
        ingress:
        - toPorts:
          - ports: [{port: "53", protocol: UDP}]
            rules:
              dns: [{matchPattern: "*"}]  #!
        """, "spec.ingress[0].toPorts[0].rules.dns", "L7 protocol DNS is not supported on ingress yet"),
    Case("l7-on-udp", """
        endpointSelector: {}
        ingress:
        - toPorts:
          - ports:
            - port: "80"
              protocol: UDP  #!
            rules: {http: [{}]}
        """, "spec.ingress[0].toPorts[0].ports[0].protocol",
         "L7 rules can only apply to TCP (not UDP) except for DNS rules"),
    Case("l7-on-any", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports:
            - port: "80"  #!
            rules: {http: [{}]}
        """, "spec.egress[0].toPorts[0].ports[0]", "L7 rules can only apply to TCP (not ANY)"),
    Case("l7-port-zero", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports:
            - port: "0"  #!
              protocol: TCP
            rules: {http: [{}]}
        """, "spec.egress[0].toPorts[0].ports[0].port", "L7 rules can not be used when a port is 0"),
    Case("dns-port-range", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports:
            - port: "53"
              endPort: 54  #!
            rules: {dns: [{matchPattern: "*"}]}
        """, "spec.egress[0].toPorts[0].ports[0].endPort", "DNS rules do not support port ranges"),
    Case("dns-without-ports", """
        endpointSelector: {}
        egress:
        - toPorts:
          - rules:
              dns: [{matchName: example.com}]  #!
        """, "spec.egress[0].toPorts[0].rules.dns", "port 53 must be specified for DNS rules"),
    Case("multiple-l7-types", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports: [{port: "53", protocol: TCP}]
            rules:  #!
              http: [{}]
              dns: [{matchPattern: "*"}]
        """, "spec.egress[0].toPorts[0].rules", "multiple L7 protocol rule types specified in single rule"),
    Case("l7-without-l7proto", """
        endpointSelector: {}
        ingress:
        - toPorts:
          - ports: [{port: "80", protocol: TCP}]
            rules:
              l7: [{cmd: READ}]  #!
        """, "spec.ingress[0].toPorts[0].rules.l7",
         "'l7' may only be specified when a 'l7proto' is also specified"),
    Case("l7-empty-key", """
        endpointSelector: {}
        ingress:
        - toPorts:
          - ports: [{port: "80", protocol: TCP}]
            rules:
              l7proto: r2d2
              l7:
              - {"": x}  #!
        """, "spec.ingress[0].toPorts[0].rules.l7[0]", "Empty key not allowed"),
    Case("listener-on-ingress", """
        endpointSelector: {}
        ingress:
        - toPorts:
          - ports: [{port: "80", protocol: TCP}]
            listener: {envoyConfig: {name: cec}, name: l1}  #!
        """, "spec.ingress[0].toPorts[0].listener", "Listener is not allowed on ingress (l1)"),
    Case("listener-with-l7", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports: [{port: "80", protocol: TCP}]
            listener: {envoyConfig: {name: cec}, name: l1}  #!
            rules: {http: [{}]}
        """, "spec.egress[0].toPorts[0].listener", "Listener is not allowed with L7 rules (l1)"),
    Case("listener-priority-low", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports: [{port: "80", protocol: TCP}]
            listener:
              envoyConfig: {name: cec}
              name: l1
              priority: 0  #!
        """, "spec.egress[0].toPorts[0].listener.priority", "between 1 and 100, got 0"),
    Case("listener-priority-high", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports: [{port: "80", protocol: TCP}]
            listener:
              envoyConfig: {name: cec}
              name: l1
              priority: 101  #!
        """, "spec.egress[0].toPorts[0].listener.priority", "between 1 and 100, got 101"),
    Case("listener-empty-name", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports: [{port: "80", protocol: TCP}]
            listener:
              envoyConfig: {name: cec}
              name: ""  #!
        """, "spec.egress[0].toPorts[0].listener.name", "must not be empty"),
    Case("listener-envoy-kind", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports: [{port: "80", protocol: TCP}]
            listener:
              envoyConfig: {kind: EnvoyConfig, name: cec}  #!
              name: l1
        """, "spec.egress[0].toPorts[0].listener.envoyConfig.kind", 'unsupported value "EnvoyConfig"'),
    Case("server-names-with-l7-no-tls", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports: [{port: "443", protocol: TCP}]
            serverNames: [api.example.com]  #!
            rules: {http: [{}]}
        """, "spec.egress[0].toPorts[0].serverNames",
         "ServerNames are not allowed with L7 rules without TLS termination"),
    Case("server-name-empty", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports: [{port: "443", protocol: TCP}]
            serverNames:
            - api.example.com
            - ""  #!
        """, "spec.egress[0].toPorts[0].serverNames[1]", "empty server name is not allowed"),
    Case("server-names-empty-list", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports: [{port: "443", protocol: TCP}]
            serverNames: []  #!
        """, "spec.egress[0].toPorts[0].serverNames", "must have at least 1 item"),
    Case("server-name-pattern", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports: [{port: "443", protocol: TCP}]
            serverNames: [api..example.com]  #!
        """, "spec.egress[0].toPorts[0].serverNames[0]", 'invalid server name "api..example.com"'),
    Case("server-name-duplicate", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports: [{port: "443", protocol: TCP}]
            serverNames: [a.example.com, a.example.com]  #!
        """, "spec.egress[0].toPorts[0].serverNames[1]", 'duplicate server name "a.example.com"'),
    Case("host-policy-ingress-l7", """
        nodeSelector: {}
        ingress:
        - toPorts:
          - ports: [{port: "80", protocol: TCP}]
            rules: {http: [{}]}  #!
        """, "spec.ingress[0].toPorts[0].rules", "L7 policy is not supported on host ingress yet",
         kind="CiliumClusterwideNetworkPolicy"),
    Case("host-policy-egress-http", """
        nodeSelector: {}
        egress:
        - toPorts:
          - ports: [{port: "80", protocol: TCP}]
            rules:
              http: [{}]  #!
        """, "spec.egress[0].toPorts[0].rules.http", "L7 protocol HTTP is not supported on host egress yet",
         kind="CiliumClusterwideNetworkPolicy"),
    # -- HTTP -----------------------------------------------------------------------
    Case("http-path-regex", """
        endpointSelector: {}
        ingress:
        - toPorts:
          - ports: [{port: "80", protocol: TCP}]
            rules:
              http:
              - path: /api/(v1  #!
        """, "spec.ingress[0].toPorts[0].rules.http[0].path", 'invalid regular expression "/api/(v1": missing )'),
    Case("http-method-regex", """
        endpointSelector: {}
        ingress:
        - toPorts:
          - ports: [{port: "80", protocol: TCP}]
            rules:
              http:
              - method: GET|[POST  #!
        """, "spec.ingress[0].toPorts[0].rules.http[0].method", "invalid regular expression"),
    Case("http-host-regex", """
        endpointSelector: {}
        ingress:
        - toPorts:
          - ports: [{port: "80", protocol: TCP}]
            rules:
              http:
              - host: "x{2,1}"  #!
        """, "spec.ingress[0].toPorts[0].rules.http[0].host", "invalid regular expression"),
    Case("http-perl-only-regex", """
        endpointSelector: {}
        ingress:
        - toPorts:
          - ports: [{port: "80", protocol: TCP}]
            rules:
              http:
              - path: "/(?!admin).*"  #!
        """, "spec.ingress[0].toPorts[0].rules.http[0].path", "invalid regular expression"),
    Case("header-match-no-name", """
        endpointSelector: {}
        ingress:
        - toPorts:
          - ports: [{port: "80", protocol: TCP}]
            rules:
              http:
              - headerMatches:
                - name: ""  #!
                  value: x
        """, "spec.ingress[0].toPorts[0].rules.http[0].headerMatches[0].name", "Header name missing"),
    Case("header-match-mismatch-action", """
        endpointSelector: {}
        ingress:
        - toPorts:
          - ports: [{port: "80", protocol: TCP}]
            rules:
              http:
              - headerMatches:
                - name: X-Token
                  mismatch: DROP  #!
        """, "spec.ingress[0].toPorts[0].rules.http[0].headerMatches[0].mismatch",
         'unsupported value "DROP": must be one of "LOG", "ADD", "DELETE", "REPLACE"'),
    Case("header-match-secret-no-name", """
        endpointSelector: {}
        ingress:
        - toPorts:
          - ports: [{port: "80", protocol: TCP}]
            rules:
              http:
              - headerMatches:
                - name: X-Token
                  secret: {name: ""}  #!
        """, "spec.ingress[0].toPorts[0].rules.http[0].headerMatches[0].secret.name", "Secret name missing"),
    # -- Kafka ----------------------------------------------------------------------
    Case("kafka-role-and-api-key", """
        endpointSelector: {}
        ingress:
        - toPorts:
          - ports: [{port: "9092", protocol: TCP}]
            rules:
              kafka:
              - {role: produce, apiKey: produce}  #!
        """, "spec.ingress[0].toPorts[0].rules.kafka[0]",
         'cannot set both Role "produce" and APIKey "produce" together'),
    Case("kafka-api-key", """
        endpointSelector: {}
        ingress:
        - toPorts:
          - ports: [{port: "9092", protocol: TCP}]
            rules:
              kafka:
              - apiKey: createtopic  #!
        """, "spec.ingress[0].toPorts[0].rules.kafka[0].apiKey", 'invalid Kafka APIKey "createtopic"'),
    Case("kafka-role", """
        endpointSelector: {}
        ingress:
        - toPorts:
          - ports: [{port: "9092", protocol: TCP}]
            rules:
              kafka:
              - role: admin  #!
        """, "spec.ingress[0].toPorts[0].rules.kafka[0].role", 'invalid Kafka Role "admin"'),
    Case("kafka-role-case", """
        endpointSelector: {}
        ingress:
        - toPorts:
          - ports: [{port: "9092", protocol: TCP}]
            rules:
              kafka:
              - role: Consume  #!
        """, "spec.ingress[0].toPorts[0].rules.kafka[0].role", "the CRD enum is case-sensitive"),
    Case("kafka-api-version-text", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports: [{port: "9092", protocol: TCP}]
            rules:
              kafka:
              - apiVersion: v2  #!
        """, "spec.egress[0].toPorts[0].rules.kafka[0].apiVersion", 'invalid Kafka APIVersion "v2"'),
    Case("kafka-api-version-range", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports: [{port: "9092", protocol: TCP}]
            rules:
              kafka:
              - apiVersion: "32768"  #!
        """, "spec.egress[0].toPorts[0].rules.kafka[0].apiVersion", 'invalid Kafka APIVersion "32768"'),
    Case("kafka-api-version-negative", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports: [{port: "9092", protocol: TCP}]
            rules:
              kafka:
              - apiVersion: "-1"  #!
        """, "spec.egress[0].toPorts[0].rules.kafka[0].apiVersion", 'invalid Kafka APIVersion "-1"'),
    Case("kafka-topic-too-long", f"""
        endpointSelector: {{}}
        egress:
        - toPorts:
          - ports: [{{port: "9092", protocol: TCP}}]
            rules:
              kafka:
              - topic: {"t" * 256}  #!
        """, "spec.egress[0].toPorts[0].rules.kafka[0].topic", "kafka topic exceeds maximum len of 255"),
    Case("kafka-topic-chars", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports: [{port: "9092", protocol: TCP}]
            rules:
              kafka:
              - topic: orders/v1  #!
        """, "spec.egress[0].toPorts[0].rules.kafka[0].topic", 'invalid Kafka Topic name "orders/v1"'),
    # -- FQDN -----------------------------------------------------------------------
    Case("fqdn-name-chars", """
        endpointSelector: {}
        egress:
        - toFQDNs:
          - matchName: "api.example.com/v1"  #!
        """, "spec.egress[0].toFQDNs[0].matchName", 'Invalid characters in MatchName: "api.example.com/v1"'),
    Case("fqdn-pattern-chars", """
        endpointSelector: {}
        egress:
        - toFQDNs:
          - matchPattern: "(.*).example.com"  #!
        """, "spec.egress[0].toFQDNs[0].matchPattern", "Invalid characters in MatchPattern"),
    Case("fqdn-name-too-long", f"""
        endpointSelector: {{}}
        egress:
        - toFQDNs:
          - matchName: {"a" * 252}.com  #!
        """, "spec.egress[0].toFQDNs[0].matchName", "must be no more than 255 characters"),
    Case("fqdn-pattern-too-long", f"""
        endpointSelector: {{}}
        egress:
        - toFQDNs:
          - matchPattern: "*.{"b" * 254}"  #!
        """, "spec.egress[0].toFQDNs[0].matchPattern", "must be no more than 255 characters"),
    Case("fqdn-leading-dot", """
        endpointSelector: {}
        egress:
        - toFQDNs:
          - matchName: .example.com  #!
        """, "spec.egress[0].toFQDNs[0].matchName", 'invalid matchName ".example.com"'),
    Case("fqdn-both", """
        endpointSelector: {}
        egress:
        - toFQDNs:
          - {matchName: a.com, matchPattern: "*.a.com"}  #!
        """, "spec.egress[0].toFQDNs[0]", "only one of MatchName or MatchPattern is allowed"),
    Case("fqdn-neither", """
        endpointSelector: {}
        egress:
        - toFQDNs:
          - {}  #!
        """, "spec.egress[0].toFQDNs[0]", "one of matchName or matchPattern is required"),
    Case("dns-rule-pattern-chars", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports: [{port: "53", protocol: ANY}]
            rules:
              dns:
              - matchPattern: "*.example.com?"  #!
        """, "spec.egress[0].toPorts[0].rules.dns[0].matchPattern", "Invalid characters in MatchPattern"),
    Case("dns-rule-empty-labels", """
        endpointSelector: {}
        egress:
        - toPorts:
          - ports: [{port: "53", protocol: ANY}]
            rules:
              dns:
              - matchName: "a..example.com"  #!
        """, "spec.egress[0].toPorts[0].rules.dns[0].matchName", "no empty labels"),
    # -- metadata, labels, log ------------------------------------------------------
    Case("log-too-long", """
        endpointSelector: {}
        ingress: [{}]
        log:
          value: "0123456789abcdef0123456789abcdef!"  #!
        """, "spec.log.value", "must be no more than 32 characters (got 33)"),
    Case("log-not-printable", """
        endpointSelector: {}
        ingress: [{}]
        log:
          value: "line\\nbreak"  #!
        """, "spec.log.value", "must contain only printable characters"),
    Case("rule-label-without-key", """
        endpointSelector: {}
        ingress: [{}]
        labels:
        - key: ""  #!
          value: x
        """, "spec.labels[0].key", "does not contain label key"),
    Case("metadata-name", """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: Allow_All  #!
          namespace: ns
        spec: {endpointSelector: {}, ingress: [{}]}
        """, "metadata.name", 'invalid name "Allow_All": a lowercase RFC 1123 subdomain'),
    Case("metadata-namespace", """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: p
          namespace: team.a  #!
        spec: {endpointSelector: {}, ingress: [{}]}
        """, "metadata.namespace", "a lowercase RFC 1123 label"),
    Case("metadata-name-missing", """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:  #!
          namespace: ns
        spec: {endpointSelector: {}, ingress: [{}]}
        """, "metadata.name", "required field is missing"),
    Case("metadata-label", """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: p
          labels: {"team/": x}  #!
        spec: {endpointSelector: {}, ingress: [{}]}
        """, "metadata.labels.team/", "name part must be non-empty"),
    Case("deny-with-l7-rules", """
        endpointSelector: {}
        ingressDeny:
        - toPorts:
          - ports: [{port: "80", protocol: TCP}]
            rules: {http: [{}]}  #!
        """, "spec.ingressDeny[0].toPorts[0].rules", "deny rules do not support L7 rules"),
    Case("deny-with-fqdns", """
        endpointSelector: {}
        egressDeny:
        - toFQDNs: [{matchName: example.com}]  #!
        """, "spec.egressDeny[0].toFQDNs", "toFQDNs is not supported in deny rules"),
    Case("unknown-field", """
        endpointSelector: {}
        ingress:
        - fromEndpoint: [{}]  #!
        """, "spec.ingress[0].fromEndpoint", 'unknown field "fromEndpoint" (did you mean "fromEndpoints"?)'),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_policy_is_rejected_with_location(case: Case) -> None:
    expect_one_issue(document(case.body, case.kind), case.field, case.fragment, case.options)


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
