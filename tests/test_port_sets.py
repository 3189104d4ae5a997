"""Port sets: `Decider.decide_port_set` answers for every port what one lookup per port
answers (the plain `decide`), on the bundled examples and on the 48 upstream NetworkPolicy
e2e scenarios' policies."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ciliary.model.loader import load_policies
from ciliary.model.source import parse_text
from ciliary.policy.config import AgentConfig
from ciliary.policy.engine import PolicyEngine
from ciliary.policy.mapstate import PolicyMap
from ciliary.policy.ports import PROTO_ICMP, PROTO_TCP, PROTO_UDP, PortPrefix, port_max
from ciliary.policy.rules import EGRESS, INGRESS
from ciliary.verdict.decide import decide, endpoint_peer
from ciliary.verdict.decider import PORT_SET_PROTOS, Decider, PortInterval
from ciliary.verdict.portsets import PortSets, allowed_ports
from ciliary.verdict.types import Connection, FlowPeer, Verdict
from ciliary.workflows.engine import build_engine

ROOT = Path(__file__).parent.parent
E2E = Path(__file__).parent / "netpol_e2e"


def _outcome(v: Verdict) -> tuple[object, ...]:
    return (v.verdict, v.drop_reason_desc, v.traffic_direction, v.policy_match_type,
            tuple(v.egress.allowed_by), tuple(v.egress.denied_by), tuple(v.ingress.allowed_by), tuple(v.ingress.denied_by))


def _e2e_engines() -> list[tuple[str, PolicyEngine]]:
    from test_netpol_e2e import _cluster

    out = []
    for path in sorted((E2E / "scenarios").glob("*.yaml")):
        scenario = yaml.safe_load(path.read_text())
        for n, step in enumerate(scenario["steps"]):
            if not step.get("policies"):
                continue
            text = yaml.safe_dump_all(step["policies"])
            out.append((f"{path.stem}#{n}", PolicyEngine(_cluster(None), load_policies(parse_text(text, path.name)))))
    return out


ENGINES = [
    ("seed", build_engine(ROOT / "examples/seed/cluster.yaml", [ROOT / "examples/seed/policies"], AgentConfig())),
    ("seed-audit-hostfw", build_engine(ROOT / "examples/seed/cluster.yaml", [ROOT / "examples/seed/policies"],
                                       AgentConfig().with_overrides(enable_host_firewall=True, audit_mode_endpoints=("shop/*",)))),
    ("pci", build_engine(ROOT / "examples/pci/cluster.yaml", [ROOT / "examples/pci/policies"], AgentConfig())),
    *_e2e_engines(),
]


def _rule_edges(engine: PolicyEngine, src: FlowPeer, dst: FlowPeer, proto: int) -> set[int]:
    out: set[int] = set()
    sides = [(src.endpoint, EGRESS), (dst.endpoint, INGRESS)]
    for ep, direction in sides:
        if ep is None:
            continue
        for r in engine.policy(ep).direction(direction).policy_map.rules():
            if r.port.proto == proto:
                out |= {r.port.port - 1, r.port.port, r.port.end, r.port.end + 1}
    return out


def _check(engine: PolicyEngine, rng: random.Random, pairs: int = 40) -> int:
    decider = Decider(engine)
    eps = sorted(engine.endpoints, key=lambda e: e.key)
    checked = 0
    for _ in range(pairs):
        src, dst = endpoint_peer(rng.choice(eps)), endpoint_peer(rng.choice(eps))
        if src.ip is None or dst.ip is None:
            continue
        intervals = decider.decide_port_set(decider.pair(src, dst))
        for proto in PORT_SET_PROTOS:
            mine = [iv for iv in intervals if iv.proto == proto]
            # The intervals tile 0..max without gaps or overlaps.
            assert mine[0].lo == 0 and mine[-1].hi == port_max(proto)
            assert all(a.hi + 1 == b.lo for a, b in itertools.pairwise(mine))
            # Ports where the rules of either side start and end (read from the rules, not
            # from port_bounds), each interval's ends, and a random port of each.
            ports = set(_rule_edges(engine, src, dst, proto))
            for iv in mine:
                ports |= {iv.lo, iv.hi, rng.randint(iv.lo, iv.hi)}
            for port in sorted(p for p in ports if 0 <= p <= port_max(proto)):
                iv = next(iv for iv in mine if iv.lo <= port <= iv.hi)
                plain = decide(engine, Connection(src, dst, proto, port))
                assert _outcome(plain) == _outcome(iv.decision.verdict), (src, dst, proto, port, iv.lo, iv.hi)
                checked += 1
    return checked


@pytest.mark.parametrize(("name", "engine"), ENGINES, ids=[n for n, _ in ENGINES])
def test_port_sets_equal_per_port_lookups(name: str, engine: PolicyEngine) -> None:
    assert _check(engine, random.Random(name)) > 0


def test_the_examples_have_port_sets_of_several_intervals() -> None:
    """The check above is not vacuous: pairs there allow some ports and drop others."""
    _, engine = ENGINES[0]
    decider = Decider(engine)
    eps = [e for e in engine.pod_endpoints if e.ips]
    mixed = 0
    for s in eps:
        for d in eps:
            ivs = [iv for iv in decider.decide_port_set(decider.pair(endpoint_peer(s), endpoint_peer(d))) if iv.proto == PROTO_TCP]
            mixed += len({iv.allowed for iv in ivs}) == 2
    assert mixed > 0


@st.composite
def _maps(draw: st.DrawFn) -> PolicyMap:
    m = PolicyMap("ingress")
    for _ in range(draw(st.integers(0, 8))):
        proto = draw(st.sampled_from([PROTO_TCP, PROTO_UDP, PROTO_ICMP, 0]))
        top = port_max(proto)
        if proto == 0:
            port = PortPrefix(0, 0, 0)
        elif draw(st.booleans()):
            port = PortPrefix(proto, draw(st.integers(0, top)), 16)
        else:
            prefix = draw(st.integers(8 if proto == PROTO_ICMP else 0, 15))
            size = 1 << (16 - prefix)
            port = PortPrefix(proto, (draw(st.integers(0, top)) // size) * size, prefix)
        ids = draw(st.one_of(st.none(), st.frozensets(st.integers(1, 4), min_size=1)))
        m.insert_many(ids, port, draw(st.booleans()), None)
    return m


@given(_maps(), st.sampled_from([PROTO_TCP, PROTO_UDP, PROTO_ICMP]), st.integers(1, 4), st.integers(0, 65535))
@settings(max_examples=300, deadline=None)
def test_a_lookup_is_constant_between_port_bounds(m: PolicyMap, proto: int, identity: int, port: int) -> None:
    port %= port_max(proto) + 1
    bounds = m.port_bounds(proto)
    start = max(b for b in bounds if b <= port)
    a, b = m.lookup(identity, proto, port).entry, m.lookup(identity, proto, start).entry
    assert (a is None) == (b is None)
    if a is not None and b is not None:
        assert (a.deny, a.key.port, a.key.identity) == (b.deny, b.key.port, b.key.identity)


def test_port_interval_allowed_is_not_dropped() -> None:
    _, engine = ENGINES[0]
    decider = Decider(engine)
    ep = next(e for e in engine.pod_endpoints if e.ips)
    iv = decider.decide_port_set(decider.pair(endpoint_peer(ep), endpoint_peer(ep)))[0]
    assert isinstance(iv, PortInterval)
    assert iv.allowed == (iv.decision.verdict.verdict != "DROPPED")


@pytest.mark.parametrize(("name", "engine"), ENGINES[:3] + ENGINES[3::6], ids=[n for n, _ in ENGINES[:3] + ENGINES[3::6]])
def test_per_side_port_sets_equal_the_deciders(name: str, engine: PolicyEngine) -> None:
    """PortSets (each side once per policy and peer signature, then intersected) equals
    the allowed intervals of decide_port_set, for every pair of endpoints."""
    decider = Decider(engine)
    sets = PortSets(engine)
    eps = sorted(engine.endpoints, key=lambda e: e.key)
    nonempty = 0
    for s in eps:
        for d in eps:
            want = allowed_ports(decider.decide_port_set(decider.pair(endpoint_peer(s), endpoint_peer(d))))
            got = sets.allowed(s, d)
            assert got == want, (s.key, d.key)
            nonempty += bool(got)
    assert nonempty > 0
