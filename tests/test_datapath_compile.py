"""Policy maps -> nftables elements, checked without a kernel: what the chains would decide
from the compiled sets (`compile.evaluate`, the plain reading of `ruleset.py`) equals the
policy map lookup that trace and replay use, for every local endpoint, both directions,
many peers, protocols and ports; and the flattened ipcache gives every address the identity
the engine's ipcache gives it."""

from __future__ import annotations

import ipaddress
import random
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ciliary.datapath.compile import (
    DIRECTIONS,
    SETS,
    compile_node,
    diff,
    evaluate,
    flatten_prefixes,
    local_endpoints,
    merge_ranges,
)
from ciliary.datapath.ruleset import skeleton
from ciliary.policy.config import AgentConfig
from ciliary.policy.engine import PolicyEngine
from ciliary.policy.ports import PROTO_ICMP, PROTO_SCTP, PROTO_TCP, PROTO_UDP
from ciliary.workflows.engine import build_engine

ROOT = Path(__file__).parent.parent
SEED = ROOT / "examples" / "seed"
LINT = ROOT / "examples" / "lint"


def _engines() -> list[tuple[str, PolicyEngine]]:
    return [
        ("seed", build_engine(SEED / "cluster.yaml", [SEED / "policies"], AgentConfig())),
        ("seed-hostfw-audit", build_engine(SEED / "cluster.yaml", [SEED / "policies"], AgentConfig().with_overrides(
            enable_host_firewall=True, audit_mode_endpoints=("shop/*",)))),
        ("pci", build_engine(ROOT / "examples" / "pci" / "cluster.yaml", [ROOT / "examples" / "pci" / "policies"], AgentConfig())),
        ("lint-pitfalls", build_engine(LINT / "cluster.yaml", sorted(LINT.glob("*.yaml"))[1:], AgentConfig().with_overrides(allow_localhost="policy"))),
    ]


ENGINES = _engines()


def test_the_engines_exercise_deny_and_no_default_deny() -> None:
    outcomes = set()
    for _, engine in ENGINES:
        for node in engine.cluster.nodes:
            state = compile_node(engine, node.name)
            outcomes |= {n for n in ("in_deny_l3", "eg_deny_l3", "in_deny", "eg_deny", "eg_audit", "in_audit") if state.elements[n]}
    assert {"eg_deny_l3", "eg_audit"} <= outcomes, outcomes


def _expected(engine: PolicyEngine, ep: object, direction: str, peer: int, proto: int, port: int) -> str:
    dp = engine.policy(ep).direction(direction)  # type: ignore[arg-type]
    if not dp.enforced:
        return "pass"
    hit = dp.lookup(peer, proto, port)
    if hit.entry is None:
        return "denied" if dp.default_deny else "allow-no-default-deny"
    return "deny" if hit.entry.deny else "allow"


@pytest.mark.parametrize(("name", "engine"), ENGINES, ids=[n for n, _ in ENGINES])
def test_compiled_sets_decide_like_the_policy_map(name: str, engine: PolicyEngine) -> None:
    rng = random.Random(7)
    peers = sorted(engine.index.ids | {1, 2, 6, 7})
    checked = 0
    seen: set[str] = set()
    for node in engine.cluster.nodes:
        state = compile_node(engine, node.name)
        for ep in local_endpoints(engine, node.name):
            ips = [ip for ip in ep.ips if ipaddress.ip_address(ip).version == 4]
            if not ips:
                continue
            ports = sorted({p for r in engine.policy(ep).ingress.policy_map.rules() + engine.policy(ep).egress.policy_map.rules()
                            for p in (r.port.port, r.port.end, r.port.end + 1, max(r.port.port - 1, 0)) if p <= 65535} | {0, 80, 8080, 65535})
            for d in DIRECTIONS:
                for peer in rng.sample(peers, min(len(peers), 25)):
                    for proto in (PROTO_TCP, PROTO_UDP, PROTO_SCTP, PROTO_ICMP, 47):
                        for port in (rng.sample(ports, min(len(ports), 8)) if proto != PROTO_ICMP else [0, 3, 8, 255]):
                            port = 0 if proto == 47 else port
                            got = evaluate(state, d, ips[0], peer, proto, port)
                            assert got == _expected(engine, ep, d, peer, proto, port), (name, ep.key, d, peer, proto, port)
                            checked += 1
                            seen.add(got)
    assert checked > 500
    assert {"pass", "allow", "denied"} <= seen, seen


@pytest.mark.parametrize(("name", "engine"), ENGINES, ids=[n for n, _ in ENGINES])
def test_flattened_ipcache_gives_the_engines_identities(name: str, engine: PolicyEngine) -> None:
    rng = random.Random(3)
    for node in engine.cluster.nodes:
        state = compile_node(engine, node.name)
        cache = engine.ipcache(node.name)
        exact = {k[0]: v for k, v in state.elements["ipcache_ep"].items()}
        ranges = [(int(ipaddress.IPv4Address(k[0][0])), int(ipaddress.IPv4Address(k[0][1])), v)  # type: ignore[index]
                  for k, v in state.elements["ipcache_cidr"].items()]
        samples = set(exact)
        for lo, hi, _ in ranges:
            samples |= {str(ipaddress.IPv4Address(x)) for x in (lo, hi, max(lo - 1, 0), min(hi + 1, 2**32 - 1))}
        samples |= {str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(200)}
        for ip in samples:
            want = cache.lookup(ip).id
            got = exact.get(ip)
            if got is None:
                v = int(ipaddress.IPv4Address(ip))
                got = next((ident for lo, hi, ident in ranges if lo <= v <= hi), state.world_identity)
            assert got == want, (node.name, ip)


def test_every_set_is_declared_and_the_skeleton_names_them() -> None:
    text = skeleton("cilxdp", "cilxh*", 2)
    for s in SETS:
        assert f" {s.name} {{ type " in text
    _, engine = ENGINES[0]
    state = compile_node(engine, engine.cluster.nodes[0].name)
    assert set(state.elements) == {s.name for s in SETS}


@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(8, 32), st.integers(1, 5)), max_size=12))
@settings(max_examples=200, deadline=None)
def test_flatten_prefixes_is_longest_prefix_match(items: list[tuple[int, int, int]]) -> None:
    nets: dict[ipaddress.IPv4Network, int] = {}
    for addr, plen, v in items:
        nets[ipaddress.IPv4Network((addr, plen), strict=False)] = v
    flat = flatten_prefixes(nets.items())
    for (lo, hi), _ in flat:
        assert lo <= hi
    for a, b in pairwise(flat):
        assert a[0][1] < b[0][0]
    probes = {int(n.network_address) for n in nets} | {int(n.broadcast_address) for n in nets} | {int(n.broadcast_address) + 1 for n in nets if int(n.broadcast_address) < 2**32 - 1}
    for x in probes:
        covering = [(n.prefixlen, v) for n, v in nets.items() if int(n.network_address) <= x <= int(n.broadcast_address)]
        want = max(covering)[1] if covering else None
        got = next((v for (lo, hi), v in flat if lo <= x <= hi), None)
        assert got == want


def test_merge_ranges() -> None:
    assert merge_ranges([(80, 80), (81, 90), (100, 200), (150, 160), (5, 6)]) == [(5, 6), (80, 90), (100, 200)]


def test_diff_turns_one_state_into_the_other() -> None:
    _, engine = ENGINES[0]
    node = engine.cluster.nodes[0].name
    new = compile_node(engine, node)
    changes = diff(None, new)
    assert sum(len(c.add) for c in changes) == new.size() and not any(c.delete for c in changes)
    assert diff(new, compile_node(engine, node)) == []
    empty = build_engine(SEED / "cluster.yaml", [ROOT / "examples" / "lint" / "deny-only.yaml"], AgentConfig())
    back = diff(new, compile_node(empty, node))
    assert any(c.delete for c in back)
