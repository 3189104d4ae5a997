"""Property: replacing any value of the comprehensive valid fixtures with an arbitrary one
never crashes validation: the object loads, or LoadError locates every problem."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ciliary.model.errors import LoadError
from ciliary.model.loader import load_policies
from ciliary.model.options import ValidationOptions
from ciliary.model.source import Document

VALID = Path(__file__).parent / "data" / "valid"
FIXTURES: list[Any] = [
    doc for p in sorted(VALID.glob("*.yaml")) for doc in yaml.safe_load_all(p.read_text())
]
OPTIONS = ValidationOptions(enable_node_selector_labels=True, enable_extended_ip_protocols=True)


def _leaves(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_leaves(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_leaves(v, (*prefix, i)))
    return out


tricky = st.sampled_from([
    "", "0", "-1", "65536", "0x10", "1_0", "08", "*", "**.", ".", "a..b", "TCP", "tcp", "ANY",
    "ICMP", "VRRP", "10.0.0.0/8", "10.0.0.1", "::/0", "::ffff:1.2.3.4/120", "1.2.3.4/255.0.255.0",
    "fe80::1%eth0/64", "(", "[a-", "\\", "k8s:", "$host", "a/b/c", "İ", "١٠", "\x00", "é" * 70,
    "x" * 300, "EchoReply", "ExtendedEcho Reply", "world-ipv4", "In", "Exists",
])  # fmt: skip
values = st.one_of(
    tricky, st.text(max_size=20), st.integers(-(2**40), 2**40), st.booleans(), st.none(),
    st.lists(tricky, max_size=3), st.dictionaries(tricky, tricky, max_size=2),
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_replaced_value_loads_or_fails_cleanly(data: st.DataObject) -> None:
    base = data.draw(st.sampled_from(FIXTURES), label="fixture")
    path = data.draw(st.sampled_from(_leaves(base)), label="path")
    doc = copy.deepcopy(base)
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = data.draw(values, label="value")
    try:
        load_policies([Document("fuzz.yaml", 0, doc, {})], OPTIONS)
    except LoadError as e:
        assert e.issues
        for issue in e.issues:
            assert issue.message
            assert issue.field or issue.line is not None or "must be provided" in issue.message
