"""Policy audit mode (cilium-semantics.md §8) and the seed article's default-deny rollout
(/work/shared/reference/seed-cilium-network-policy-in-practice.txt, "Four-Stage Roadmap")
replayed on examples/seed with the payments namespace.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from ciliary.policy.config import AgentConfig
from ciliary.policy.engine import PolicyEngine
from ciliary.workflows.engine import build_engine
from engine_helpers import (
    AUDIT,
    DROPPED,
    EGRESS,
    FORWARDED,
    INGRESS,
    POLICY_DENIED,
    WORLD_IP,
    cnp,
    engine,
    outcome,
    refs,
    verdict,
)

SERVER_POLICY = cnp("server-in", """
endpointSelector: {matchLabels: {app: server}}
ingress:
- fromEndpoints: [{matchLabels: {app: client}}]
  toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
ingressDeny:
- fromEndpoints: [{matchLabels: {app: local}}]
""")
CLIENT_POLICY = cnp("client-out", "endpointSelector: {matchLabels: {app: client}}\negress: [{toEndpoints: [{matchLabels: {app: server}}]}]")


# --- §8 agent-wide and per-endpoint audit -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "dst", "l4", "enforced", "audited"),
    [
        # would be 133 at ingress -> AUDIT at ingress
        ("other/client", "app/server", "8080/TCP", (DROPPED, POLICY_DENIED, INGRESS), (AUDIT, INGRESS)),
        (WORLD_IP, "app/server", "8080/TCP", (DROPPED, POLICY_DENIED, INGRESS), (AUDIT, INGRESS)),
        # would be 133 at egress -> AUDIT at egress
        ("app/client", WORLD_IP, "443/TCP", (DROPPED, POLICY_DENIED, EGRESS), (AUDIT, EGRESS)),
        # would be 181 (deny rule) -> AUDIT too (bpf: any policy drop is audited; Open q. 7)
        ("app/local", "app/server", "8080/TCP", (DROPPED, "POLICY_DENY", INGRESS), (AUDIT, INGRESS)),
        # allowed traffic stays FORWARDED
        ("app/client", "app/server", "8080/TCP", (FORWARDED, None, INGRESS), (FORWARDED, INGRESS)),
    ],
)
def test_agent_wide_audit_mode(src: str, dst: str, l4: str, enforced: tuple[str, str | None, str], audited: tuple[str, str]) -> None:
    # §8: packets that L3/L4 policy would drop are forwarded and marked AUDIT; nothing is dropped
    assert outcome(verdict(engine(SERVER_POLICY, CLIENT_POLICY), src, dst, l4)) == enforced
    v = verdict(engine(SERVER_POLICY, CLIENT_POLICY, policy_audit_mode=True), src, dst, l4)
    assert (v.verdict, v.traffic_direction) == audited
    assert v.allowed


def test_audit_at_egress_when_destination_is_not_enforced() -> None:
    # app/client's egress allows only app=server in app; other/server's ingress is not enforced
    e = engine(SERVER_POLICY, CLIENT_POLICY, policy_audit_mode=True)
    v = verdict(e, "app/client", "other/server", "8081/TCP")
    assert (v.verdict, v.traffic_direction) == (AUDIT, EGRESS)
    assert v.egress.audit_mode


@pytest.mark.parametrize(
    ("audit_endpoints", "src", "dst", "l4", "expected"),
    [
        # only app/server audited: its ingress drop becomes AUDIT
        (("app/server",), "other/client", "app/server", "8080/TCP", (AUDIT, INGRESS)),
        # app/client not audited: its egress drop still drops
        (("app/server",), "app/client", WORLD_IP, "443/TCP", (DROPPED, EGRESS)),
        # globs over ns/pod
        (("app/*",), "app/client", WORLD_IP, "443/TCP", (AUDIT, EGRESS)),
        (("other/*",), "other/client", "app/server", "8080/TCP", (DROPPED, INGRESS)),
        # the audited source's egress drop becomes AUDIT; other/db's ingress is not enforced
        (("app/client",), "app/client", "other/db", "5432/TCP", (AUDIT, EGRESS)),
    ],
)
def test_per_endpoint_audit_mode(audit_endpoints: tuple[str, ...], src: str, dst: str, l4: str, expected: tuple[str, str]) -> None:
    # §8: per endpoint (`cilium-dbg endpoint config <id> PolicyAuditMode=Enabled`)
    e = engine(SERVER_POLICY, CLIENT_POLICY, audit_mode_endpoints=audit_endpoints)
    v = verdict(e, src, dst, l4)
    assert (v.verdict, v.traffic_direction) == expected


def test_audited_egress_then_enforced_ingress_drop() -> None:
    # egress of app/local is audited (its CNP allows nothing to app/server), app/server's
    # ingress deny is enforced: the packet passes egress as AUDIT and is dropped at ingress
    e = engine(
        SERVER_POLICY,
        cnp("local-out", "endpointSelector: {matchLabels: {app: local}}\negress: [{}]"),
        audit_mode_endpoints=("app/local",),
    )
    v = verdict(e, "app/local", "app/server", "8080/TCP")
    assert outcome(v) == (DROPPED, "POLICY_DENY", INGRESS)
    assert v.egress.verdict == AUDIT
    assert refs(v.ingress.denied_by) == ["CiliumNetworkPolicy app/server-in"]


def test_audit_flow_has_no_drop_reason() -> None:
    v = verdict(engine(SERVER_POLICY, policy_audit_mode=True), "other/client", "app/server", "8080/TCP")
    assert v.verdict == AUDIT
    assert v.drop_reason_desc is None


# --- the seed article's rollout (examples/seed, payments) -------------------------------------------------

SEED = Path(__file__).resolve().parent.parent / "examples" / "seed"
POLICIES = sorted((SEED / "policies").glob("*.yaml"))
# Stage 2: allow policies only (no 04 egressDeny, no 09 default deny); stages 3/4 add 09.
STAGE2 = [p for p in POLICIES if not p.name.startswith(("04-", "09-"))]
STAGE34 = [*STAGE2, SEED / "policies" / "09-default-deny.yaml"]

PG = "payments/pg-gateway-7b9f8d6c5-r3k8d"  # worker-1, https 8443
API = "payments/payments-api-8c7d6b5f4-m2n9s"  # worker-2, http 8080
DNS = "kube-system/coredns-5d78c9869d-t9v4w"  # worker-1
FRONTEND = "shop/frontend-7d9c5b8f6-k2x4p"
PROM = "monitoring/prometheus-0"
APISERVER = "172.18.0.2"  # cp-1


@cache
def seed_engine(stage: str) -> PolicyEngine:
    cluster = str(SEED / "cluster.yaml")
    if stage == "2":
        return build_engine(cluster, STAGE2, AgentConfig())
    if stage == "3":  # helm policyAuditMode=true
        return build_engine(cluster, STAGE34, AgentConfig(policy_audit_mode=True))
    if stage == "3-endpoints":  # cilium endpoint config <id> PolicyAuditMode=Enabled on payments
        return build_engine(cluster, STAGE34, AgentConfig(audit_mode_endpoints=("payments/*",)))
    return build_engine(cluster, STAGE34, AgentConfig())


SEED_FLOWS = [
    # (src, dst, l4, stage 2, stage 4) -- stage 3 must be AUDIT exactly where stage 4 drops
    (API, PG, "8443/TCP", (FORWARDED, None, INGRESS), (DROPPED, POLICY_DENIED, EGRESS)),
    (API, WORLD_IP, "443/TCP", (FORWARDED, None, EGRESS), (DROPPED, POLICY_DENIED, EGRESS)),
    (API, DNS, "53/UDP", (FORWARDED, None, INGRESS), (DROPPED, POLICY_DENIED, EGRESS)),
    (API, APISERVER, "6443/TCP", (FORWARDED, None, INGRESS), (DROPPED, POLICY_DENIED, EGRESS)),
    ("node/worker-1", PG, "8443/TCP", (FORWARDED, None, INGRESS), (FORWARDED, None, INGRESS)),  # kubelet probe
    ("node/worker-2", API, "8080/TCP", (FORWARDED, None, INGRESS), (FORWARDED, None, INGRESS)),
    # An allow policy already switches its direction to default deny (§3.1), so these drop
    # at stage 2 although the article says nothing is blocked yet: 08 restricts pg-gateway's
    # egress, 01 restricts payments ingress to the namespace.
    (PG, API, "8080/TCP", (DROPPED, POLICY_DENIED, EGRESS), (DROPPED, POLICY_DENIED, EGRESS)),
    (PG, APISERVER, "6443/TCP", (DROPPED, POLICY_DENIED, EGRESS), (DROPPED, POLICY_DENIED, EGRESS)),
    (FRONTEND, API, "8080/TCP", (DROPPED, POLICY_DENIED, INGRESS), (DROPPED, POLICY_DENIED, INGRESS)),
    (PROM, API, "8080/TCP", (DROPPED, POLICY_DENIED, INGRESS), (DROPPED, POLICY_DENIED, INGRESS)),
    (WORLD_IP, PG, "8443/TCP", (DROPPED, POLICY_DENIED, INGRESS), (DROPPED, POLICY_DENIED, INGRESS)),
]


@pytest.mark.parametrize(("src", "dst", "l4", "stage2", "stage4"), SEED_FLOWS)
def test_seed_rollout_stages(src: str, dst: str, l4: str, stage2: tuple[str, str | None, str], stage4: tuple[str, str | None, str]) -> None:
    assert outcome(verdict(seed_engine("2"), src, dst, l4)) == stage2
    assert outcome(verdict(seed_engine("4"), src, dst, l4)) == stage4
    for stage3 in ("3", "3-endpoints"):
        v = verdict(seed_engine(stage3), src, dst, l4)
        if stage4[0] == DROPPED:
            # `hubble observe --verdict AUDIT --namespace payments` shows exactly what stage 4 drops
            assert (v.verdict, v.traffic_direction) == (AUDIT, stage4[2]), stage3
        else:
            assert outcome(v) == stage4, stage3


def test_seed_dns_lookup_of_pg_gateway_survives_enforcement() -> None:
    # 08 allows pg-gateway -> kube-dns 53/UDP (with a DNS rule: proxied once L7 is modelled)
    for stage in ("2", "3", "3-endpoints", "4"):
        v = verdict(seed_engine(stage), PG, DNS, "53/UDP")
        assert v.verdict in (FORWARDED, "REDIRECTED"), stage
        assert refs(v.egress.allowed_by) == ["CiliumNetworkPolicy payments/allow-external-apis"]


def test_seed_stage3_audits_exactly_what_stage4_drops() -> None:
    # Every payments flow between these peers: stage 4 DROPPED <=> stage 3 AUDIT (same
    # direction); everything stage 4 forwards is forwarded identically at stage 3.
    peers = [PG, API, DNS, FRONTEND, PROM, WORLD_IP, APISERVER, "node/worker-1", "node/worker-2"]
    ports = ["8443/TCP", "8080/TCP", "53/UDP", "443/TCP"]
    checked = audited = 0
    for src in peers:
        for dst in peers:
            if src == dst or not any(p.startswith("payments/") for p in (src, dst)):
                continue
            for l4 in ports:
                want = verdict(seed_engine("4"), src, dst, l4)
                for stage3 in ("3", "3-endpoints"):
                    got = verdict(seed_engine(stage3), src, dst, l4)
                    if want.verdict == DROPPED:
                        assert (got.verdict, got.traffic_direction) == (AUDIT, want.traffic_direction), (src, dst, l4, stage3)
                        audited += 1
                    else:
                        assert got.verdict == want.verdict, (src, dst, l4, stage3)
                    checked += 1
    assert checked > 100 and audited > 50
