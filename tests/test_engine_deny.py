"""Deny rules (cilium-semantics.md §5): precedence over allows of any kind, scope, port-range
precedence (distillery_test.go TestEgressPortRangePrecedence), CIDR deny vs allow
(Test_EnsureDeniesPrecedeAllows, Test_Allowception) and the deny.rst truth table.
"""

from __future__ import annotations

import pytest

from engine_helpers import (
    DENIED,
    DENY,
    DROPPED,
    EGRESS,
    FORWARDED,
    FWD,
    INGRESS,
    POLICY_DENY,
    WORLD_IP,
    ccnp,
    cnp,
    engine,
    knp,
    outcome,
    refs,
    short,
    verdict,
)

REDIRECTED = "REDIRECTED"
CLIENT = "{matchLabels: {app: client}}"


# --- §5 scope bullets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "l4", "expected"),
    [("app/client", "80/TCP", DENY), ("app/client", "81/TCP", FWD), ("app/client", "icmp:8", FWD),
     (WORLD_IP, "80/TCP", DENY), (WORLD_IP, "443/TCP", FWD)],
)
def test_deny_port_with_allow_all_drops_only_that_port(src: str, l4: str, expected: tuple[str, str | None]) -> None:
    # §5: deny port 80 + allow-all => only port 80 dropped
    e = engine(cnp("p", """
endpointSelector: {matchLabels: {app: server}}
ingress: [{fromEntities: [all]}]
ingressDeny: [{toPorts: [{ports: [{port: "80", protocol: TCP}]}]}]
"""))
    v = verdict(e, src, "app/server", l4)
    assert short(v) == expected
    assert v.traffic_direction == INGRESS
    if expected == DENY:
        assert refs(v.ingress.denied_by) == ["CiliumNetworkPolicy app/p"]  # Hubble ingress_denied_by
        assert v.policy_match_type == "L4_ONLY"


@pytest.mark.parametrize(
    ("src", "l4", "expected"),
    [("app/client", "80/TCP", DENY), ("app/client", "icmp:8", DENY), ("app/client", "5353/UDP", DENY),
     ("app/local", "80/TCP", FWD), ("app/local", "81/TCP", DENIED), ("app/local", "icmp:8", DENIED)],
)
def test_deny_peer_beats_port_allow_from_anyone(src: str, l4: str, expected: tuple[str, str | None]) -> None:
    # §5: deny peer X (L3) + allow port 80 from anyone => everything from X dropped (incl. ping)
    e = engine(cnp("p", f"""
endpointSelector: {{matchLabels: {{app: server}}}}
ingress: [{{toPorts: [{{ports: [{{port: "80", protocol: TCP}}]}}]}}]
ingressDeny: [{{fromEndpoints: [{CLIENT}]}}]
"""))
    v = verdict(e, src, "app/server", l4)
    assert short(v) == expected
    if expected == DENY:
        assert v.policy_match_type == "L3_ONLY"


# --- TestEgressPortRangePrecedence (pkg/policy/distillery_test.go) ------------------------------------------

# (start, end, allow): egress of app/client to app=server, TCP. Checks: (port, expected).
# Ports without any allow fall back to default deny (133), matching ones to a deny to 181.
RANGE_CASES = {
    "deny range (1-1024) covers port allow (80)": (
        [(80, 0, True), (1, 1024, False)],
        [(79, DENY), (80, DENY), (81, DENY), (1023, DENY), (1024, DENY), (1025, DENIED)],
    ),
    "deny port (80) in broader allow range (1-1024)": (
        [(80, 0, False), (1, 1024, True)],
        [(1, FWD), (2, FWD), (79, FWD), (80, DENY), (81, FWD), (1023, FWD), (1024, FWD), (1025, DENIED), (1026, DENIED)],
    ),
    "wildcard deny (*) covers broad allow range (1-1024)": (
        [(0, 0, False), (1, 1024, True)],
        [(1, DENY), (2, DENY), (1023, DENY), (1024, DENY), (1025, DENY)],
    ),
    "wildcard allow (*) has an deny range hole (1-1024)": (
        [(0, 0, True), (1, 1024, False)],
        [(1, DENY), (2, DENY), (1023, DENY), (1024, DENY), (1025, FWD), (1026, FWD), (65534, FWD)],
    ),
    "two allow ranges (80-90, 90-100) with overlapping deny (85-95)": (
        [(80, 90, True), (85, 95, False), (90, 100, True)],
        [(79, DENIED), *((p, FWD) for p in range(80, 85)), *((p, DENY) for p in range(85, 96)),
         *((p, FWD) for p in range(96, 101)), (101, DENIED)],
    ),
}


def _range_policy(rules: list[tuple[int, int, bool]]) -> str:
    allows, denies = [], []
    for start, end, allow in rules:
        port = f"{{port: '{start}', protocol: TCP" + (f", endPort: {end}}}" if end else "}")
        el = f"- toEndpoints: [{{matchLabels: {{app: server}}}}]\n  toPorts: [{{ports: [{port}]}}]"
        (allows if allow else denies).append(el)
    body = "endpointSelector: {matchLabels: {app: client}}\n"
    if allows:
        body += "egress:\n" + "\n".join(allows) + "\n"
    if denies:
        body += "egressDeny:\n" + "\n".join(denies) + "\n"
    return cnp("ranges", body)


@pytest.mark.parametrize("name", list(RANGE_CASES))
def test_egress_port_range_precedence(name: str) -> None:
    # §5 (distillery_test.go TestEgressPortRangePrecedence); 133 where no allow matches
    rules, checks = RANGE_CASES[name]
    e = engine(_range_policy(rules))
    got = {port: short(verdict(e, "app/client", "app/server", f"{port}/TCP")) for port, _ in checks}
    assert got == dict(checks)
    v = verdict(e, "app/client", "app/server", f"{checks[0][0]}/TCP")
    if v.verdict == DROPPED:
        assert v.traffic_direction == EGRESS


# --- CIDR deny vs allow (Test_EnsureDeniesPrecedeAllows, Test_Allowception) ---------------------------------


@pytest.mark.parametrize(
    ("allow", "deny", "dst", "l4", "expected"),
    [
        # deny a /32 inside an allowed /24: only the /32 dropped
        ("toCIDR: [192.0.2.0/24]", "toCIDR: [192.0.2.5/32]", "192.0.2.5", "443/TCP", DENY),
        ("toCIDR: [192.0.2.0/24]", "toCIDR: [192.0.2.5/32]", "192.0.2.6", "443/TCP", FWD),
        # deny a /24 with an allowed /32 inside: the /32 is still dropped
        ("toCIDR: [192.0.2.5/32]", "toCIDR: [192.0.2.0/24]", "192.0.2.5", "443/TCP", DENY),
        ("toCIDR: [192.0.2.5/32]", "toCIDR: [192.0.2.0/24]", "192.0.2.6", "443/TCP", DENY),
        ("toCIDR: [192.0.2.5/32]", "toCIDR: [192.0.2.0/24]", "198.51.100.1", "443/TCP", DENIED),
        # broad CIDR deny on one port vs a specific L3 CIDR allow: only that port is denied
        ("toCIDR: [192.0.2.5/32]", "toCIDR: [0.0.0.0/0]\n  toPorts: [{ports: [{port: '8080'}]}]", "192.0.2.5", "8080/TCP", DENY),
        ("toCIDR: [192.0.2.5/32]", "toCIDR: [0.0.0.0/0]\n  toPorts: [{ports: [{port: '8080'}]}]", "192.0.2.5", "8080/UDP", DENY),
        ("toCIDR: [192.0.2.5/32]", "toCIDR: [0.0.0.0/0]\n  toPorts: [{ports: [{port: '8080'}]}]", "192.0.2.5", "443/TCP", FWD),
        # broad CIDR allow on a port vs a specific L3 CIDR deny
        ("toCIDR: [192.0.2.0/24]\n  toPorts: [{ports: [{port: '8080'}]}]", "toCIDR: [192.0.2.5/32]", "192.0.2.5", "8080/TCP", DENY),
        ("toCIDR: [192.0.2.0/24]\n  toPorts: [{ports: [{port: '8080'}]}]", "toCIDR: [192.0.2.5/32]", "192.0.2.6", "8080/TCP", FWD),
        # "allowception": allow 0.0.0.0/0, deny 1.0.0.0/8 except 1.1.1.1/32
        ("toCIDR: [0.0.0.0/0]", "toCIDRSet: [{cidr: 1.0.0.0/8, except: [1.1.1.1/32]}]", "1.1.1.1", "443/TCP", FWD),
        ("toCIDR: [0.0.0.0/0]", "toCIDRSet: [{cidr: 1.0.0.0/8, except: [1.1.1.1/32]}]", WORLD_IP, "443/TCP", DENY),
        ("toCIDR: [0.0.0.0/0]", "toCIDRSet: [{cidr: 1.0.0.0/8, except: [1.1.1.1/32]}]", "8.8.8.8", "443/TCP", FWD),
        # except range not denied but also not allowed when nothing allows it
        ("toCIDR: [8.8.8.0/24]", "toCIDRSet: [{cidr: 1.0.0.0/8, except: [1.1.1.1/32]}]", "1.1.1.1", "443/TCP", DENIED),
    ],
)
def test_cidr_deny_vs_allow(allow: str, deny: str, dst: str, l4: str, expected: tuple[str, str | None]) -> None:
    e = engine(cnp("cidr", f"endpointSelector: {{matchLabels: {{app: client}}}}\negress:\n- {allow}\negressDeny:\n- {deny}"))
    v = verdict(e, "app/client", dst, l4)
    assert short(v) == expected
    assert v.traffic_direction == EGRESS
    if expected == DENY:
        assert refs(v.egress.denied_by) == ["CiliumNetworkPolicy app/cidr"]


# --- deny.rst truth table -----------------------------------------------------------------------------------

ALLOW_L7 = cnp("allow-l7", f"""
endpointSelector: {{matchLabels: {{app: server}}}}
ingress:
- fromEndpoints: [{CLIENT}]
  toPorts: [{{ports: [{{port: "80", protocol: TCP}}], rules: {{http: [{{method: GET, path: "/"}}]}}}}]
""")
ALLOW_L4_80 = cnp("allow-l4-80", f"endpointSelector: {{matchLabels: {{app: server}}}}\ningress: [{{fromEndpoints: [{CLIENT}], toPorts: [{{ports: [{{port: '80', protocol: TCP}}]}}]}}]")
ALLOW_L4_81 = cnp("allow-l4-81", f"endpointSelector: {{matchLabels: {{app: server}}}}\ningress: [{{fromEndpoints: [{CLIENT}], toPorts: [{{ports: [{{port: '81', protocol: TCP}}]}}]}}]")
ALLOW_L3 = cnp("allow-l3", f"endpointSelector: {{matchLabels: {{app: server}}}}\ningress: [{{fromEndpoints: [{CLIENT}]}}]")
DENY_L4_80 = cnp("deny-l4-80", "endpointSelector: {matchLabels: {app: server}}\ningressDeny: [{toPorts: [{ports: [{port: '80', protocol: TCP}]}]}]")
DENY_L3 = cnp("deny-l3", f"endpointSelector: {{matchLabels: {{app: server}}}}\ningressDeny: [{{fromEndpoints: [{CLIENT}]}}]")
ALLOWS = (ALLOW_L7, ALLOW_L4_80, ALLOW_L4_81, ALLOW_L3)
A, D = "allowed", "denied"


@pytest.mark.parametrize(
    ("policies", "curl81", "curl80", "ping"),
    [
        (ALLOWS, A, A, A),
        ((*ALLOWS, DENY_L4_80), A, D, A),
        ((*ALLOWS, DENY_L3), D, D, D),
        ((*ALLOWS, DENY_L4_80, DENY_L3), D, D, D),
        ((DENY_L4_80,), D, D, D),
    ],
    ids=["allows", "allows+deny-L4", "allows+deny-L3", "allows+both", "deny-L4-only"],
)
def test_deny_rst_truth_table(policies: tuple[str, ...], curl81: str, curl80: str, ping: str) -> None:
    # Documentation/security/policy/deny.rst: client -> server with the listed ingress policies
    e = engine(*policies)
    for l4, want in (("81/TCP", curl81), ("80/TCP", curl80), ("icmp:8", ping)):
        v = verdict(e, "app/client", "app/server", l4)
        if want == A:
            # port 80 carries an HTTP rule: REDIRECTED once the L7 proxy is modelled (§6.3)
            assert v.verdict in ((FORWARDED, REDIRECTED) if l4 == "80/TCP" else (FORWARDED,)), l4
        else:
            assert (v.verdict, v.traffic_direction) == (DROPPED, INGRESS), l4
            # a matching deny says 181; no allow under default deny says 133
            matching_deny = (DENY_L3 in policies) or (DENY_L4_80 in policies and l4 == "80/TCP")
            assert v.drop_reason_desc == ("POLICY_DENY" if matching_deny else "POLICY_DENIED"), l4


# --- precedence across resource kinds and features -------------------------------------------------------------


def test_deny_from_ccnp_beats_allow_from_knp() -> None:
    # deny.rst: "Deny policies take precedence over allow policies, regardless of whether they are
    # a Cilium Network Policy, a Clusterwide Cilium Network Policy or even a Kubernetes Network Policy"
    e = engine(
        knp("allow-all", "podSelector: {matchLabels: {app: server}}\ningress: [{}]"),
        ccnp("deny-clients", f"endpointSelector: {{matchLabels: {{app: server}}}}\ningressDeny: [{{fromEndpoints: [{CLIENT}]}}]"),
    )
    for src in ("app/client", "other/client"):  # CCNP peer: app=client in every namespace
        v = verdict(e, src, "app/server", "8080/TCP")
        assert outcome(v) == (DROPPED, POLICY_DENY, INGRESS), src
        assert refs(v.ingress.denied_by) == ["CiliumClusterwideNetworkPolicy deny-clients"]
    v = verdict(e, "app/local", "app/server", "8080/TCP")
    assert outcome(v) == (FORWARDED, None, INGRESS)
    assert refs(v.ingress.allowed_by) == ["NetworkPolicy app/allow-all"]


def test_deny_from_cnp_beats_allow_from_ccnp_on_egress() -> None:
    e = engine(
        ccnp("allow-all", "endpointSelector: {}\negress: [{toEntities: [all]}]"),
        cnp("no-world", "endpointSelector: {}\negressDeny: [{toEntities: [world]}]"),
    )
    v = verdict(e, "app/client", WORLD_IP, "443/TCP")
    assert outcome(v) == (DROPPED, POLICY_DENY, EGRESS)
    assert refs(v.egress.denied_by) == ["CiliumNetworkPolicy app/no-world"]
    assert short(verdict(e, "other/client", WORLD_IP, "443/TCP")) == FWD  # CNP scope: app only
    assert short(verdict(e, "app/client", "other/server", "8081/TCP")) == FWD


def test_deny_world_from_all_namespaces() -> None:
    # cilium: examples/policies/l3/entities/from_world_deny.yaml: allow all + deny world
    e = engine(ccnp("from-world-deny", """
endpointSelector: {}
ingress: [{fromEntities: [all]}]
ingressDeny: [{fromEntities: [world]}]
"""))
    assert short(verdict(e, WORLD_IP, "app/server", "8080/TCP")) == DENY
    assert short(verdict(e, WORLD_IP, "other/db", "5432/TCP")) == DENY
    assert short(verdict(e, "other/client", "app/server", "8080/TCP")) == FWD
    assert short(verdict(e, "node/node-1", "app/server", "8080/TCP")) == FWD  # remote node is not world


def test_deny_beats_l7_allow() -> None:
    # §6.3: deny rules are evaluated before redirection: the port is dropped (no 403)
    e = engine(ALLOW_L7, cnp("deny", f"endpointSelector: {{matchLabels: {{app: server}}}}\ningressDeny: [{{fromEndpoints: [{CLIENT}], toPorts: [{{ports: [{{port: '80', protocol: TCP}}]}}]}}]"))
    assert outcome(verdict(e, "app/client", "app/server", "80/TCP")) == (DROPPED, POLICY_DENY, INGRESS)


def test_deny_host_beats_allow_localhost() -> None:
    # mapstate.go: the localhost allow is inserted like any allow, so a covering deny wins
    e = engine(cnp("no-host", "endpointSelector: {matchLabels: {app: server}}\ningress: [{fromEntities: [all]}]\ningressDeny: [{fromEntities: [host]}]"))
    assert outcome(verdict(e, "node/node-2", "app/server", "8080/TCP")) == (DROPPED, POLICY_DENY, INGRESS)
    assert short(verdict(e, "node/node-1", "app/server", "8080/TCP")) == FWD


@pytest.mark.parametrize(
    ("l4", "expected"),
    [("icmp:8", DENY), ("icmp:0", FWD), ("8/TCP", FWD), ("icmpv6:128", DENY), ("icmpv6:129", FWD)],
)
def test_deny_icmp_types(l4: str, expected: tuple[str, str | None]) -> None:
    # §4.3: icmps work in deny rules too
    e = engine(cnp("no-ping", """
endpointSelector: {matchLabels: {app: server}}
ingress: [{fromEntities: [all]}]
ingressDeny: [{icmps: [{fields: [{type: EchoRequest}, {type: EchoRequest, family: IPv6}]}]}]
"""))
    assert short(verdict(e, "app/client", "app/server", l4)) == expected


@pytest.mark.parametrize(
    ("enable_default_deny", "src", "expected"),
    [
        (None, "app/client", DENY),
        (None, "app/local", DENIED),  # deny-only policy flips ingress to default deny (§3.1)
        (None, WORLD_IP, DENIED),
        ("false", "app/client", DENY),
        ("false", "app/local", FWD),  # ...unless enableDefaultDeny.ingress is false
        ("false", WORLD_IP, FWD),
    ],
)
def test_deny_only_policy_default_deny(enable_default_deny: str | None, src: str, expected: tuple[str, str | None]) -> None:
    # §5: a deny-only policy turns on default deny unless enableDefaultDeny.<dir> is false
    extra = f"\nenableDefaultDeny: {{ingress: {enable_default_deny}}}" if enable_default_deny else ""
    e = engine(cnp("deny-only", f"endpointSelector: {{matchLabels: {{app: server}}}}\ningressDeny: [{{fromEndpoints: [{CLIENT}]}}]{extra}"))
    v = verdict(e, src, "app/server", "8080/TCP")
    assert short(v) == expected
    assert v.traffic_direction == INGRESS


def test_deny_on_egress_and_ingress_reports_first_side() -> None:
    # §0: egress of the source is evaluated first; its deny decides, ingress is not reached
    e = engine(
        cnp("eg", "endpointSelector: {matchLabels: {app: client}}\negressDeny: [{toEndpoints: [{matchLabels: {app: server}}]}]\negress: [{toEntities: [all]}]"),
        cnp("in", "endpointSelector: {matchLabels: {app: server}}\ningressDeny: [{fromEndpoints: [{matchLabels: {app: client}}]}]\ningress: [{fromEntities: [all]}]"),
    )
    v = verdict(e, "app/client", "app/server", "8080/TCP")
    assert outcome(v) == (DROPPED, POLICY_DENY, EGRESS)
    assert refs(v.egress.denied_by) == ["CiliumNetworkPolicy app/eg"]
    assert not v.ingress.denied_by
