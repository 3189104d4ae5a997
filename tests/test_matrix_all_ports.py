"""`matrix --ports all` and `-o connlist` answer every port as per-port matrices do."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ciliary.cli import app
from ciliary.policy.config import AgentConfig
from ciliary.policy.engine import PolicyEngine
from ciliary.policy.ports import PROTO_ICMP, PROTO_NAMES, PROTO_SCTP, PROTO_TCP, PROTO_UDP
from ciliary.verdict.decider import Decider
from ciliary.workflows.connlist import (
    Allowed,
    allowed_ports,
    connlist,
    describe,
    intersect,
    workload_ref,
)
from ciliary.workflows.engine import build_engine
from ciliary.workflows.matrix import Probe, all_port_probes, compute_matrix, merge_alike

ROOT = Path(__file__).parent.parent
SEED = ROOT / "examples" / "seed"
PCI = ROOT / "examples" / "pci"

ENGINES = [
    ("seed", build_engine(SEED / "cluster.yaml", [SEED / "policies"], AgentConfig())),
    ("pci", build_engine(PCI / "cluster.yaml", [PCI / "policies"], AgentConfig())),
]


def _edges(engine: PolicyEngine, proto: int) -> set[int]:
    out = {1, 65535} if proto != PROTO_ICMP else {0, 8, 255}
    for ep in engine.pod_endpoints:
        for d in ("ingress", "egress"):
            for r in engine.policy(ep).direction(d).policy_map.rules():
                if r.port.proto == proto:
                    out |= {r.port.port - 1, r.port.port, r.port.end, r.port.end + 1}
    return {p for p in out if (0 if proto == PROTO_ICMP else 1) <= p <= (255 if proto == PROTO_ICMP else 65535)}


@pytest.mark.parametrize(("name", "engine"), ENGINES, ids=[n for n, _ in ENGINES])
def test_all_ports_matrix_equals_per_port_matrices(name: str, engine: PolicyEngine) -> None:
    eps = sorted(engine.pod_endpoints, key=lambda e: e.key)
    whole = merge_alike(compute_matrix(engine, all_port_probes(Decider(engine), eps), eps))
    rng = random.Random(name)
    for proto in (PROTO_TCP, PROTO_UDP, PROTO_SCTP, PROTO_ICMP):
        mine = [p for p in whole.probes if p.proto == proto]
        ports = sorted(_edges(engine, proto) | {rng.randint(1, 65535) for _ in range(5)} if proto != PROTO_ICMP else _edges(engine, proto))
        per_port = compute_matrix(engine, [Probe(proto, p) for p in ports], eps)
        for port in ports:
            probe = next(p for p in mine if p.port <= port <= (p.end or p.port))
            for s in whole.endpoints:
                for d in whole.endpoints:
                    a, b = whole.cell(probe, s, d), per_port.cell(Probe(proto, port), s, d)
                    assert (a.verdict, a.drop_reason_desc, a.traffic_direction) == (b.verdict, b.drop_reason_desc, b.traffic_direction), (
                        name, s, d, port, PROTO_NAMES[proto])


def test_the_seed_connlist_names_the_ports_policies_open() -> None:
    _, engine = ENGINES[0]
    lines = list(connlist(engine, sorted(engine.pod_endpoints, key=lambda e: e.key)))
    assert "cde-payments/card-processor[Deployment] => cde-db/ledger-db-0[Pod] : TCP 5432" in lines
    assert "gateway/api-gateway[Deployment] => cde-payments/card-processor[Deployment] : TCP 8443" in lines
    assert "monitoring/prometheus-0[Pod] => shop/backend[Deployment] : TCP 9090" in lines
    assert "gateway/api-gateway[Deployment] => internal-tools/wiki[Deployment] : All Connections" in lines
    # Nothing the policies do not open: the frontend reaches no card processor port.
    assert not any(ln.startswith("shop/frontend[Deployment] => cde-payments/") for ln in lines)
    # One line per ordered pair of distinct workloads, never a workload with itself.
    pairs = [ln.split(" : ")[0].split(" => ") for ln in lines]
    assert len({tuple(p) for p in pairs}) == len(pairs) and all(a != b for a, b in pairs)


@pytest.mark.parametrize(("name", "engine"), ENGINES, ids=[n for n, _ in ENGINES])
def test_connlist_agrees_with_per_port_decisions(name: str, engine: PolicyEngine) -> None:
    eps = sorted(engine.pod_endpoints, key=lambda e: e.key)
    listed: dict[tuple[str, str], str] = {}
    for ln in connlist(engine, eps):
        pair, conns = ln.split(" : ", 1)
        a, b = pair.split(" => ")
        listed[(a, b)] = conns
    m = compute_matrix(engine, [Probe(PROTO_TCP, p) for p in sorted(_edges(engine, PROTO_TCP))], eps)
    by_ref: dict[str, list[str]] = {}
    for ep in eps:
        by_ref.setdefault(str(workload_ref(ep)), []).append(ep.key)
    for a, pods_a in by_ref.items():
        for b, pods_b in by_ref.items():
            if a == b:
                continue
            any_tcp = any(all(m.allowed(p, s, d) for s in pods_a for d in pods_b) for p in m.probes)
            if any_tcp:
                assert (a, b) in listed and ("TCP" in listed[(a, b)] or listed[(a, b)] == "All Connections"), (a, b)


def test_port_set_arithmetic() -> None:
    a: Allowed = {PROTO_TCP: ((1, 100), (200, 300)), PROTO_UDP: ((53, 53),)}
    b: Allowed = {PROTO_TCP: ((50, 250),)}
    assert intersect(a, b) == {PROTO_TCP: ((50, 100), (200, 250))}
    assert describe({PROTO_TCP: ((80, 80), (443, 443)), PROTO_UDP: ((53, 53),)}) == "TCP 80,443, UDP 53"
    assert describe({PROTO_TCP: ((1, 65535),), PROTO_UDP: ((1, 65535),), PROTO_SCTP: ((1, 65535),), PROTO_ICMP: ((0, 255),)}) == "All Connections"
    assert describe({PROTO_TCP: ((1000, 2000),), PROTO_ICMP: ((0, 255),)}) == "TCP 1000-2000, ICMP"
    assert allowed_ports([]) == {}


def test_cli_connlist_and_ports() -> None:
    r = CliRunner()
    base = ["matrix", "--cluster", str(SEED / "cluster.yaml"), "--policies", str(SEED / "policies")]
    res = r.invoke(app, [*base, "-o", "connlist"])
    assert res.exit_code == 0
    assert "cde-payments/card-processor[Deployment] => cde-db/ledger-db-0[Pod] : TCP 5432\n" in res.stdout
    res = r.invoke(app, [*base, "-o", "connlist", "--dport", "80/TCP"])
    assert res.exit_code == 2 and "covers every port" in res.stderr
    res = r.invoke(app, [*base, "--dport", "80/TCP", "--ports", "all"])
    assert res.exit_code == 2 and "alternatives" in res.stderr
    res = r.invoke(app, [*base, "-n", "monitoring", "-n", "shop", "-o", "csv"])
    assert res.exit_code == 0
    rows = [ln.split(",") for ln in res.stdout.splitlines()[1:]]
    assert any(r0[0] == "9090" and r0[2] == "monitoring/prometheus-0" and r0[4] == "FORWARDED" for r0 in rows)
    assert any("-" in r0[0] for r0 in rows)  # ranges between the named ports
    old = r.invoke(app, [*base, "--ports", "containers", "-o", "json"])
    assert old.exit_code == 0 and '"end_port"' not in old.stdout
