"""Property: whatever is done to valid policies, the loader either returns every policy or
raises LoadError whose issues all carry a location. It never crashes, never half-loads."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ciliary.model.errors import LoadError
from ciliary.model.loader import load_policies
from ciliary.model.source import parse_text

SEED = Path(__file__).parent.parent / "examples" / "seed" / "policies"
BASE: list[dict[str, Any]] = [
    yaml.safe_load(p.read_text()) for p in sorted(SEED.glob("*.yaml"))
] + [
    {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "knp", "namespace": "x"},
        "spec": {
            "podSelector": {"matchLabels": {"pod": "a"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}], "ports": [{"port": 80, "protocol": "TCP"}]}],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}],
        },
    }
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_paths(v, (*prefix, i)))
    return out


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        value = value[p]
    return value


def _deep(depth: int) -> Any:
    v: Any = "x"
    for i in range(depth):
        v = [v] if i % 2 else {"k": v}
    return v


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.text(alphabet=st.characters(min_codepoint=0x80, max_codepoint=0x2FFFF), max_size=20),
    st.sampled_from(["", "*", "TCP", "ANY", "ICMP", "65536", "-1", "0", "world", "10.0.0.0/33", "a" * 300]),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=12), children, max_size=3)
    ),
    max_leaves=8,
)

mutation = st.one_of(
    st.tuples(st.just("replace"), values),
    st.tuples(st.just("delete"), st.none()),
    st.tuples(st.just("extra"), st.tuples(st.text(min_size=1, max_size=15), values)),
    st.tuples(st.just("nest"), st.integers(min_value=50, max_value=400)),
    st.tuples(st.just("duplicate"), st.none()),
)


def _mutate(doc: dict[str, Any], path: tuple[Any, ...], op: str, arg: Any) -> str:
    doc = copy.deepcopy(doc)
    if op == "duplicate":
        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
        lines = text.splitlines()
        candidates = [i for i, ln in enumerate(lines) if re.match(r"^\s*[A-Za-z][\w.:/-]*: \S", ln)]
        i = candidates[hash(path) % len(candidates)]
        lines.insert(i + 1, lines[i])
        return "\n".join(lines) + "\n"
    if op == "nest":
        arg = _deep(arg)
        op = "replace"
    if not path:
        if op == "replace":
            return yaml.safe_dump(arg, allow_unicode=True)
        if op == "delete":
            return "{}\n"
    parent = _get(doc, path[:-1]) if path else doc
    key = path[-1] if path else None
    if op == "replace":
        parent[key] = arg
    elif op == "delete":
        del parent[key]
    elif op == "extra":
        target = _get(doc, path)
        if isinstance(target, dict):
            target[arg[0]] = arg[1]
        else:
            parent[key] = {arg[0]: arg[1]}
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_policies_fail_cleanly_or_load_whole(data: st.DataObject) -> None:
    base = data.draw(st.sampled_from(BASE), label="policy")
    path = data.draw(st.sampled_from(_paths(base)), label="path")
    op, arg = data.draw(mutation, label="mutation")
    mutated = _mutate(base, path, op, arg)
    good = yaml.safe_dump(BASE[1])
    text = mutated + "---\n" + good
    try:
        docs = parse_text(text, "mutated.yaml")
        result = load_policies(docs)
    except LoadError as e:
        assert e.issues, "LoadError without issues"
        for issue in e.issues:
            assert issue.file == "mutated.yaml"
            assert issue.line is not None or issue.field, f"issue without location: {issue}"
            assert issue.message
        if op == "duplicate":
            assert any("duplicate key" in i.message for i in e.issues)
        return
    # Loaded: then it loaded everything, including the untouched second document.
    assert op not in ("duplicate", "nest") or path == ()
    names = {p.name for p in result.policies}
    assert BASE[1]["metadata"]["name"] in names
    kinds_in_input = sum(1 for d in docs if isinstance(d.value, dict) and d.value.get("kind") in (
        "CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy", "NetworkPolicy"))
    # A mutation that leaves the first object equal to the second is an identical duplicate:
    # loaded once, with a warning.
    assert len(result.policies) + len(result.warnings) == kinds_in_input
    assert all("duplicate of the identical object" in w.message for w in result.warnings)


@pytest.mark.parametrize("text", ["a: [1\n", "{", "- : :\n  - ]", "\t- x", "key: 'unterminated\n"])
def test_malformed_yaml_is_located(text: str) -> None:
    with pytest.raises(LoadError) as e:
        parse_text(text, "bad.yaml")
    assert e.value.issues[0].file == "bad.yaml"
    assert e.value.issues[0].line is not None
    assert "malformed YAML" in e.value.issues[0].message
