"""The policy map's indexed lookup against the expanded map (cilium-semantics.md §10.4).

PolicyMap keeps rule entries over shared identity sets and answers lookups through per-port
views and port-range segments. Whatever rules are inserted, its answer must be the one the
expanded Cilium map gives: any covering deny (the peer's own or identity 0's) wins, the most
specific one first with ties to the peer's own key; otherwise the most specific allow, ties
to the peer's own key; no covering key means no entry.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ciliary.model.policy import PolicyRef
from ciliary.policy.mapstate import WILDCARD_IDENTITY, MapEntry, PolicyMap
from ciliary.policy.ports import PROTO_ANY, PROTO_TCP, PROTO_UDP, PortPrefix, port_prefixes
from ciliary.policy.rules import RuleOrigin

IDENTITIES = [256, 257, 258, 259]
PORTS = [0, 1, 79, 80, 81, 443, 8080, 8081, 8095, 8096, 65535]


def _origin(n: int) -> RuleOrigin:
    return RuleOrigin(PolicyRef("CiliumNetworkPolicy", "default", f"rule-{n}"), ("spec", "ingress", 0), None, "p.yaml")


@st.composite
def _rules(draw: st.DrawFn) -> list[tuple[frozenset[int] | None, PortPrefix, bool, RuleOrigin]]:
    out = []
    for n in range(draw(st.integers(0, 8))):
        ids = draw(st.one_of(st.none(), st.frozensets(st.sampled_from(IDENTITIES), min_size=1)))
        proto = draw(st.sampled_from([PROTO_ANY, PROTO_TCP, PROTO_UDP]))
        deny = draw(st.booleans())
        if proto == PROTO_ANY:
            prefixes = [PortPrefix(PROTO_ANY, 0, 0)]
        else:
            start = draw(st.sampled_from(PORTS))
            end = draw(st.one_of(st.none(), st.sampled_from([p for p in PORTS if p >= start])))
            prefixes = port_prefixes(proto, start, end)
        out.extend((ids, pp, deny, _origin(n)) for pp in prefixes)
    return out


def _expected(entries: list[MapEntry], identity: int, proto: int, port: int) -> MapEntry | None:
    covering = [e for e in entries if e.key.identity in (identity, WILDCARD_IDENTITY) and e.key.port.covers(proto, port)]
    if not covering:
        return None
    denies = [e for e in covering if e.deny]
    pool = denies or covering
    return max(pool, key=lambda e: (e.key.port.specificity, e.key.identity != WILDCARD_IDENTITY))


@settings(max_examples=300, deadline=None)
@given(
    rules=_rules(),
    queries=st.lists(
        st.tuples(st.sampled_from([*IDENTITIES, 999]), st.sampled_from([PROTO_TCP, PROTO_UDP]), st.sampled_from([*PORTS, 8088, 444])),
        min_size=1, max_size=20,
    ),
)
def test_lookup_agrees_with_the_expanded_map(
    rules: list[tuple[frozenset[int] | None, PortPrefix, bool, RuleOrigin]], queries: list[tuple[int, int, int]]
) -> None:
    pm = PolicyMap("ingress")
    for ids, pp, deny, origin in rules:
        pm.insert_many(ids, pp, deny, origin)
    expanded = pm.entries()
    for _ in range(2):  # cold, then from the lookup cache
        for identity, proto, port in queries:
            want = _expected(expanded, identity, proto, port)
            got = pm.lookup(identity, proto, port).entry
            if want is None:
                assert got is None, (identity, proto, port, got)
                continue
            assert got is not None, (identity, proto, port, want)
            assert (got.key, got.deny) == (want.key, want.deny), (identity, proto, port)
            assert sorted(map(str, got.origins)) == sorted(map(str, want.origins))


def test_ports_of_one_range_share_a_view_but_exact_ports_get_their_own() -> None:
    pm = PolicyMap("ingress")
    pm.insert_many(frozenset({256}), PortPrefix(PROTO_TCP, 8080, 12), False, _origin(1))  # 8080-8095
    pm.insert_many(None, PortPrefix(PROTO_TCP, 8085, 16), True, _origin(2))
    assert pm.lookup(256, PROTO_TCP, 8081).allowed
    assert pm.lookup(256, PROTO_TCP, 8094).allowed
    assert pm.lookup(256, PROTO_TCP, 8085).denied  # the wildcard deny on 8085 beats the range
    assert pm.lookup(257, PROTO_TCP, 8081).entry is None
    assert pm.lookup(256, PROTO_TCP, 8096).entry is None
    entry = pm.lookup(256, PROTO_TCP, 8085).entry
    assert entry is not None and entry.key.identity == WILDCARD_IDENTITY and str(entry.origins[0].ref).endswith("rule-2")
