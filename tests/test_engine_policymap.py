"""Policy map (cilium-semantics.md §10): keys, the datapath lookup precedence (§10.4) and
Hubble's policy_match_type values (§9: L3_ONLY, L3_L4, L4_ONLY, ALL, L3_PROTO, PROTO_ONLY).
"""

from __future__ import annotations

import pytest

from ciliary.policy.engine import PolicyEngine
from ciliary.policy.mapstate import MapEntry
from engine_helpers import (
    DENIED,
    FORWARDED,
    INGRESS,
    WORLD_IP,
    cnp,
    engine,
    outcome,
    refs,
    short,
    verdict,
)

SERVER = "endpointSelector: {matchLabels: {app: server}}\ningress:\n"
FROM_CLIENT = "fromEndpoints: [{matchLabels: {app: client}}]"


def _rule(name: str, element: str) -> str:
    return cnp(name, SERVER + "- " + element)


L3 = _rule("l3", FROM_CLIENT)
L3_L4_8080 = _rule("l3-l4", FROM_CLIENT + "\n  toPorts: [{ports: [{port: '8080', protocol: TCP}]}]")
L4_8080 = _rule("l4", "toPorts: [{ports: [{port: '8080', protocol: TCP}]}]")
ALL = _rule("all", "fromEntities: [all]")
L3_TCP = _rule("l3-proto", FROM_CLIENT + "\n  toPorts: [{ports: [{port: '0', protocol: TCP}]}]")
TCP_ONLY = _rule("proto", "toPorts: [{ports: [{port: '0', protocol: TCP}]}]")
RANGE_8080_8095 = _rule("range", "toPorts: [{ports: [{port: '8080', endPort: 8095, protocol: TCP}]}]")
L3_RANGE_8080_8095 = _rule("l3-range", FROM_CLIENT + "\n  toPorts: [{ports: [{port: '8080', endPort: 8095, protocol: TCP}]}]")
L4_8085 = _rule("l4-8085", "toPorts: [{ports: [{port: '8085', protocol: TCP}]}]")


@pytest.mark.parametrize(
    ("policy", "match_type"),
    [
        (L3, "L3_ONLY"),  # specific identity, any port
        (L3_L4_8080, "L3_L4"),  # identity + port
        (L4_8080, "L4_ONLY"),  # wildcard identity + port
        (ALL, "ALL"),  # wildcard identity, any port
        (L3_TCP, "L3_PROTO"),  # identity + protocol, any port
        (TCP_ONLY, "PROTO_ONLY"),  # wildcard identity + protocol
    ],
)
def test_policy_match_types(policy: str, match_type: str) -> None:
    # §9 (pkg/monitor/api): the matched map entry's shape
    v = verdict(engine(policy), "app/client", "app/server", "8080/TCP")
    assert outcome(v) == (FORWARDED, None, INGRESS)
    assert v.policy_match_type == match_type
    assert len(v.ingress.allowed_by) == 1


@pytest.mark.parametrize(
    ("policies", "src", "l4", "match_type", "allowed_by"),
    [
        # L3-only for the peer vs L4-only wildcard: the longer port prefix wins (§10.4 step 3)
        ((L3, L4_8080), "app/client", "8080/TCP", "L4_ONLY", ["CiliumNetworkPolicy app/l4"]),
        ((L3, L4_8080), "app/client", "9090/TCP", "L3_ONLY", ["CiliumNetworkPolicy app/l3"]),
        ((L3, L4_8080), "app/local", "8080/TCP", "L4_ONLY", ["CiliumNetworkPolicy app/l4"]),
        # same port prefix: the peer's own entry wins the tie
        ((L3_L4_8080, L4_8080), "app/client", "8080/TCP", "L3_L4", ["CiliumNetworkPolicy app/l3-l4"]),
        ((L3_L4_8080, L4_8080), "app/local", "8080/TCP", "L4_ONLY", ["CiliumNetworkPolicy app/l4"]),
        # protocol-only entries are longer than any-protocol entries
        ((L3, TCP_ONLY), "app/client", "8080/TCP", "PROTO_ONLY", ["CiliumNetworkPolicy app/proto"]),
        ((L3, TCP_ONLY), "app/client", "53/UDP", "L3_ONLY", ["CiliumNetworkPolicy app/l3"]),
        ((L3_TCP, L4_8080), "app/client", "8080/TCP", "L4_ONLY", ["CiliumNetworkPolicy app/l4"]),
        ((L3_TCP, L4_8080), "app/client", "9090/TCP", "L3_PROTO", ["CiliumNetworkPolicy app/l3-proto"]),
        ((ALL, L3_L4_8080), "app/client", "8080/TCP", "L3_L4", ["CiliumNetworkPolicy app/l3-l4"]),
        ((ALL, L3_L4_8080), WORLD_IP, "8080/TCP", "ALL", ["CiliumNetworkPolicy app/all"]),
        # ranges are prefixes: an exact port is longer than the /12 block of 8080-8095
        ((RANGE_8080_8095, L3_L4_8080), "app/client", "8080/TCP", "L3_L4", ["CiliumNetworkPolicy app/l3-l4"]),
        ((RANGE_8080_8095, L3_L4_8080), "app/client", "8081/TCP", "L4_ONLY", ["CiliumNetworkPolicy app/range"]),
        ((L3_RANGE_8080_8095, L4_8085), "app/client", "8085/TCP", "L4_ONLY", ["CiliumNetworkPolicy app/l4-8085"]),
        ((L3_RANGE_8080_8095, L4_8085), "app/client", "8086/TCP", "L3_L4", ["CiliumNetworkPolicy app/l3-range"]),
        # two policies installing the same key merge: both are reported
        ((L4_8080, _rule("l4-again", "toPorts: [{ports: [{port: '8080', protocol: TCP}]}]")), "app/client", "8080/TCP",
         "L4_ONLY", ["CiliumNetworkPolicy app/l4", "CiliumNetworkPolicy app/l4-again"]),
    ],
)
def test_lookup_precedence(policies: tuple[str, ...], src: str, l4: str, match_type: str, allowed_by: list[str]) -> None:
    # §10.4: most specific entry for the peer and for identity 0; longer prefix wins, tie -> peer
    v = verdict(engine(*policies), src, "app/server", l4)
    assert outcome(v) == (FORWARDED, None, INGRESS)
    assert v.policy_match_type == match_type
    assert refs(v.ingress.allowed_by) == allowed_by


def test_no_entry_is_default_deny_with_no_match_type() -> None:
    # §10.4 step 2: no entry -> default deny (133), Hubble match type 0 (none)
    v = verdict(engine(L3_L4_8080), "app/client", "app/server", "8081/TCP")
    assert short(v) == DENIED
    assert v.policy_match_type == "none"
    assert v.ingress.entry is None


# --- keys ----------------------------------------------------------------------------------------------


def _keys(e: PolicyEngine, pod: str, direction: str = "ingress") -> list[MapEntry]:
    ep = e.endpoint(pod)
    assert ep is not None
    pm = e.policy(ep).direction(direction).policy_map
    return [m for m in pm.entries() if m.origins]


@pytest.mark.parametrize(
    ("ports", "keys"),
    [
        # policymap.txtar: 8080-8095 is a single /12 entry
        ("{port: '8080', endPort: 8095, protocol: TCP}", ["8080-8095/TCP"]),
        ("{port: '80', endPort: 90, protocol: TCP}", ["80-87/TCP", "88-89/TCP", "90/TCP"]),
        ("{port: '8080', protocol: TCP}", ["8080/TCP"]),
        ("{port: '53'}", ["53/SCTP", "53/TCP", "53/UDP"]),  # ANY: TCP, UDP, SCTP (§4.2)
        ("{port: '0', protocol: UDP}", ["UDP/*"]),  # port 0: every port
        ("{port: '1', endPort: 65535, protocol: TCP}",
         [f"{1 << b}-{(2 << b) - 1}/TCP" if b else "1/TCP" for b in range(16)]),
    ],
)
def test_port_range_keys(ports: str, keys: list[str]) -> None:
    e = engine(_rule("keys", f"{FROM_CLIENT}\n  toPorts: [{{ports: [{ports}]}}]"))
    got = sorted(str(m.key.port) for m in _keys(e, "app/server"))
    assert got == sorted(keys)
    client = e.endpoint("app/client")
    assert client is not None
    assert {m.key.identity for m in _keys(e, "app/server")} == {client.identity.id}


def test_range_prefixes_cover_exactly_the_range() -> None:
    # §4.1: power-of-two aligned blocks, disjoint, covering exactly [port, endPort]
    e = engine(_rule("keys", "toPorts: [{ports: [{port: '1000', endPort: 2999, protocol: TCP}]}]"))
    covered: list[int] = []
    for m in _keys(e, "app/server"):
        p = m.key.port
        size = 1 << (16 - p.prefix)
        assert p.port % size == 0  # aligned
        covered.extend(range(p.port, p.port + size))
    assert sorted(covered) == list(range(1000, 3000))


def test_l3_only_and_unenforced_keys() -> None:
    # §10.1/§10.3: an L3-only rule is one any-protocol key; an unenforced direction is one
    # "any identity, any protocol" allow; allow-localhost adds an identity-1 key on ingress
    e = engine(L3)
    ingress = _keys(e, "app/server")
    assert [str(m.key.port) for m in ingress] == ["ANY"]
    ep = e.endpoint("app/server")
    assert ep is not None
    egress = e.policy(ep).egress.policy_map.entries()
    assert [(m.key.identity, str(m.key.port), m.deny) for m in egress] == [(0, "ANY", False)]
    all_ingress = e.policy(ep).ingress.policy_map.entries()
    assert (1, "ANY") in {(m.key.identity, str(m.key.port)) for m in all_ingress if not m.origins}


def test_deny_keys_are_marked_deny() -> None:
    # §10.2/§10.3: a deny rule installs deny keys (precedence 255)
    e = engine(cnp("d", SERVER.replace("ingress:", "ingressDeny:") + "- toPorts: [{ports: [{port: '22', protocol: TCP}]}]"))
    keys = _keys(e, "app/server")
    assert [(m.key.identity, str(m.key.port), m.deny) for m in keys] == [(0, "22/TCP", True)]
