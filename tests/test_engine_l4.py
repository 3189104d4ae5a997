"""Layer 4 (cilium-semantics.md §4): named ports, port ranges, ANY, port 0, L3-only vs port
rules and ICMP, ICMP types by number and name (IPv4 and IPv6).

Cluster: tests/engine_helpers.py -- app/server has http 8080/TCP, metrics 9090/TCP,
dns 53/UDP, dns-tcp 53/TCP; other/server has http 8081/TCP; other/db has pg 5432/TCP.
"""

from __future__ import annotations

import pytest

from engine_helpers import (
    DENIED,
    DROPPED,
    EGRESS,
    FORWARDED,
    FWD,
    INGRESS,
    POLICY_DENIED,
    ccnp,
    cnp,
    engine,
    outcome,
    refs,
    short,
    verdict,
)


def _server_ingress(ports_yaml: str, peer: str = "fromEndpoints: [{matchLabels: {app: client}}]") -> str:
    return cnp("l4", f"endpointSelector: {{matchLabels: {{app: server}}}}\ningress:\n- {peer}\n  {ports_yaml}")


# --- §4.4 named ports ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dst", "l4", "expected"),
    [
        ("app/server", "8080/TCP", FWD),  # app/server's own "http"
        ("app/server", "8081/TCP", DENIED),
        ("other/server", "8081/TCP", FWD),  # other/server's own "http"
        ("other/server", "8080/TCP", DENIED),
    ],
)
def test_named_port_ingress_resolves_against_the_subject(dst: str, l4: str, expected: tuple[str, str | None]) -> None:
    # §4.4: ingress names resolve against the subject endpoint's own container ports
    e = engine(ccnp("named", """
endpointSelector: {matchLabels: {app: server}}
ingress:
- fromEntities: [all]
  toPorts: [{ports: [{port: http, protocol: TCP}]}]
"""))
    v = verdict(e, "app/client", dst, l4)
    assert short(v) == expected
    assert v.traffic_direction == INGRESS


@pytest.mark.parametrize(
    ("dst", "l4", "expected"),
    [
        ("app/server", "8080/TCP", FWD),
        ("app/server", "8081/TCP", DENIED),
        ("other/server", "8081/TCP", FWD),
        ("other/server", "8080/TCP", DENIED),
        ("other/db", "5432/TCP", DENIED),  # not selected by the peer selectors
    ],
)
def test_named_port_egress_resolves_per_peer(dst: str, l4: str, expected: tuple[str, str | None]) -> None:
    # §4.4: egress names resolve against the selected peer's ports, possibly different numbers
    # per peer [version: releases before per-identity resolution fail on duplicate names]
    e = engine(cnp("named", """
endpointSelector: {matchLabels: {app: client}}
egress:
- toEndpoints:
  - {matchLabels: {app: server}}
  - {matchLabels: {app: server, k8s:io.kubernetes.pod.namespace: other}}
  toPorts: [{ports: [{port: http, protocol: TCP}]}]
"""))
    v = verdict(e, "app/client", dst, l4)
    assert short(v) == expected
    if expected == DENIED:
        assert v.traffic_direction == EGRESS
    else:
        assert refs(v.egress.allowed_by) == ["CiliumNetworkPolicy app/named"]
        assert v.egress.match_type == "L3_L4"


@pytest.mark.parametrize(
    ("ports", "l4", "expected"),
    [
        ("toPorts: [{ports: [{port: HTTP, protocol: TCP}]}]", "8080/TCP", FWD),  # names are case-insensitive
        ("toPorts: [{ports: [{port: nope, protocol: TCP}]}]", "8080/TCP", DENIED),  # unresolvable: nothing
        ("toPorts: [{ports: [{port: dns, protocol: UDP}]}]", "53/UDP", FWD),
        ("toPorts: [{ports: [{port: dns, protocol: TCP}]}]", "53/TCP", DENIED),  # dns is a UDP port
        ("toPorts: [{ports: [{port: dns}]}]", "53/UDP", FWD),  # ANY matches the port's own protocol
        ("toPorts: [{ports: [{port: dns}]}]", "53/TCP", DENIED),
        ("toPorts: [{ports: [{port: dns-tcp}]}]", "53/TCP", FWD),
        ("toPorts: [{ports: [{port: http, endPort: 9090, protocol: TCP}]}]", "8081/TCP", DENIED),  # endPort ignored
    ],
)
def test_named_port_details(ports: str, l4: str, expected: tuple[str, str | None]) -> None:
    # §4.1/§4.4: names are case-insensitive, protocol must match, endPort ignored for names
    assert short(verdict(engine(_server_ingress(ports)), "app/client", "app/server", l4)) == expected


def test_named_port_with_wildcard_peer_on_egress() -> None:
    # §4.4 + §3.4: a name only one pod defines resolves for a ports-only egress rule
    e = engine(cnp("db", "endpointSelector: {matchLabels: {app: client}}\negress: [{toPorts: [{ports: [{port: pg, protocol: TCP}]}]}]"))
    assert short(verdict(e, "app/client", "other/db", "5432/TCP")) == FWD
    assert short(verdict(e, "app/client", "other/db", "5433/TCP")) == DENIED


# --- §4.1/§4.2 ranges, ANY, port 0 -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ports", "l4", "expected"),
    [
        # endPort: [port, endPort] inclusive (§4.1)
        ("{port: '8080', endPort: 8095, protocol: TCP}", "8080/TCP", FWD),
        ("{port: '8080', endPort: 8095, protocol: TCP}", "8095/TCP", FWD),
        ("{port: '8080', endPort: 8095, protocol: TCP}", "8079/TCP", DENIED),
        ("{port: '8080', endPort: 8095, protocol: TCP}", "8096/TCP", DENIED),
        ("{port: '1000', endPort: 2999, protocol: TCP}", "1000/TCP", FWD),  # unaligned range
        ("{port: '1000', endPort: 2999, protocol: TCP}", "2048/TCP", FWD),
        ("{port: '1000', endPort: 2999, protocol: TCP}", "2999/TCP", FWD),
        ("{port: '1000', endPort: 2999, protocol: TCP}", "3000/TCP", DENIED),
        ("{port: '1000', endPort: 2999, protocol: TCP}", "999/TCP", DENIED),
        ("{port: '1', endPort: 65535, protocol: TCP}", "65535/TCP", FWD),
        # ANY / omitted protocol = TCP, UDP and SCTP, never ICMP (§4.2)
        ("{port: '53'}", "53/TCP", FWD),
        ("{port: '53'}", "53/UDP", FWD),
        ("{port: '53'}", "53/SCTP", FWD),
        ("{port: '53', protocol: ANY}", "53/SCTP", FWD),
        ("{port: '53', protocol: ANY}", "icmp:8", DENIED),
        ("{port: '53', protocol: ANY}", "54/UDP", DENIED),
        ("{port: '53', protocol: UDP}", "53/TCP", DENIED),
        ("{port: '53', protocol: SCTP}", "53/SCTP", FWD),
        ("{port: '53', protocol: SCTP}", "53/UDP", DENIED),
        # port 0 = every port of the protocol(s) (§4.2)
        ("{port: '0', protocol: TCP}", "1/TCP", FWD),
        ("{port: '0', protocol: TCP}", "65535/TCP", FWD),
        ("{port: '0', protocol: TCP}", "53/UDP", DENIED),
        ("{port: '0', protocol: TCP}", "icmp:8", DENIED),
        ("{port: '0'}", "40000/UDP", FWD),
        ("{port: '0'}", "icmp:8", DENIED),
    ],
)
def test_port_ranges_any_and_port_zero(ports: str, l4: str, expected: tuple[str, str | None]) -> None:
    e = engine(_server_ingress(f"toPorts: [{{ports: [{ports}]}}]"))
    v = verdict(e, "app/client", "app/server", l4)
    assert short(v) == expected
    assert v.traffic_direction == INGRESS


# --- §4.2 L3-only vs port rules and ICMP ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("l4", "l3_only", "port_rule"),
    [
        ("8080/TCP", FWD, FWD),
        ("icmp:8", FWD, DENIED),  # L3-only covers ICMP; a port rule alone does not (layer4.rst)
        ("icmpv6:128", FWD, DENIED),
        ("53/UDP", FWD, DENIED),
        ("9/SCTP", FWD, DENIED),
    ],
)
def test_l3_only_rule_covers_icmp_port_rule_does_not(l4: str, l3_only: tuple[str, str | None], port_rule: tuple[str, str | None]) -> None:
    # §4.2 (layer4.rst): an L3-only rule is one any-protocol entry; a port rule blocks ICMP
    assert short(verdict(engine(_server_ingress("")), "app/client", "app/server", l4)) == l3_only
    e = engine(_server_ingress("toPorts: [{ports: [{port: '8080', protocol: TCP}]}]"))
    v = verdict(e, "app/client", "app/server", l4)
    assert short(v) == port_rule


# --- §4.3 ICMP ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "l4", "expected"),
    [
        ("[{type: 8}]", "icmp:8", FWD),
        ("[{type: 8}]", "icmp:13", DENIED),
        ("[{type: 8}]", "8/TCP", DENIED),  # ICMP only, no transport ports
        ("[{type: 8, family: IPv4}]", "icmpv6:8", DENIED),  # family decides the protocol
        ("[{type: EchoRequest}]", "icmp:8", FWD),  # CamelCase names (icmp.go)
        ("[{type: Echo}]", "icmp:8", FWD),
        ("[{type: TimeExceeded}]", "icmp:11", FWD),
        ("[{type: DestinationUnreachable}]", "icmp:3", FWD),
        ("[{type: EchoRequest, family: IPv6}]", "icmpv6:128", FWD),
        ("[{type: EchoRequest, family: IPv6}]", "icmp:8", DENIED),
        ("[{type: EchoRequest, family: IPv6}]", "icmpv6:129", DENIED),
        ("[{type: 128, family: IPv6}]", "icmpv6:128", FWD),
        ("[{type: NeighborSolicitation, family: IPv6}]", "icmpv6:135", FWD),
        ("[{type: 8}, {type: EchoRequest, family: IPv6}]", "icmpv6:128", FWD),
    ],
)
def test_icmp_types(fields: str, l4: str, expected: tuple[str, str | None]) -> None:
    # §4.3 (pkg/policy/api/icmp.go): match on type by number or CamelCase name, per family
    e = engine(_server_ingress(f"icmps: [{{fields: {fields}}}]"))
    v = verdict(e, "app/client", "app/server", l4)
    assert short(v) == expected
    if expected == FWD:
        assert v.policy_match_type == "L3_L4"  # the type sits in the port slot (§4.3)
        assert refs(v.ingress.allowed_by) == ["CiliumNetworkPolicy app/l4"]


def test_icmp_without_peer_is_any_peer_and_egress() -> None:
    # §3.3: `{icmps}` without a peer = wildcard peer; works on egress to world too
    e = engine(cnp("ping", """
endpointSelector: {matchLabels: {app: client}}
egress:
- icmps: [{fields: [{type: 8}, {type: EchoRequest, family: IPv6}]}]
"""))
    assert outcome(verdict(e, "app/client", "1.2.3.4", "icmp:8")) == (FORWARDED, None, EGRESS)
    assert outcome(verdict(e, "app/client", "2001:db8::1", "icmpv6:128")) == (FORWARDED, None, EGRESS)
    assert outcome(verdict(e, "app/client", "1.2.3.4", "443/TCP")) == (DROPPED, POLICY_DENIED, EGRESS)
    v = verdict(e, "app/client", "app/server", "icmp:8")
    assert v.egress.match_type == "L4_ONLY"
