"""Selector semantics: what a CNP selector selects among identity label sets."""

from __future__ import annotations

import random

import pytest

from ciliary.identity.labels import Label, LabelSet
from ciliary.identity.selector import LabelIndex, Requirement, Selector, SelectorError


def ls(*texts: str) -> LabelSet:
    return LabelSet.from_strings(texts)


FRONTEND = ls("k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=shop")
CONTAINER_APP = ls("container:app=frontend")
HOST = ls("reserved:host")


def sel(data: dict[str, object]) -> Selector:
    return Selector.from_dict(data)


def test_key_without_source_matches_any_source() -> None:
    s = sel({"matchLabels": {"app": "frontend"}})
    assert s.matches(FRONTEND)
    assert s.matches(CONTAINER_APP)
    assert str(s) == "any:app=frontend"


def test_concrete_source_matches_only_that_source() -> None:
    s = sel({"matchLabels": {"k8s:app": "frontend"}})
    assert s.matches(FRONTEND)
    assert not s.matches(CONTAINER_APP)


def test_explicit_any_source_is_the_same_as_none() -> None:
    assert sel({"matchLabels": {"any:app": "frontend"}}) == sel({"matchLabels": {"app": "frontend"}})


def test_reserved_short_forms() -> None:
    for key in ("reserved:host", "$host", "reserved.host"):
        s = sel({"matchLabels": {key: ""}})
        assert s.matches(HOST), key
        assert not s.matches(FRONTEND)


def test_empty_selector_matches_everything() -> None:
    s = sel({})
    assert s.is_empty
    for labels in (FRONTEND, HOST, LabelSet(), ls("cidr:10.0.0.0/8", "reserved:world")):
        assert s.matches(labels)
    assert Selector.everything() == s


def test_match_expressions_operators() -> None:
    labels = ls("k8s:app=frontend", "k8s:tier=web")
    cases = [
        ({"key": "app", "operator": "In", "values": ["frontend", "backend"]}, True),
        ({"key": "app", "operator": "In", "values": ["backend"]}, False),
        ({"key": "app", "operator": "NotIn", "values": ["backend"]}, True),
        ({"key": "app", "operator": "NotIn", "values": ["frontend"]}, False),
        ({"key": "app", "operator": "Exists"}, True),
        ({"key": "db", "operator": "Exists"}, False),
        ({"key": "app", "operator": "DoesNotExist"}, False),
        ({"key": "db", "operator": "DoesNotExist"}, True),
    ]
    for expr, expected in cases:
        assert sel({"matchExpressions": [expr]}).matches(labels) is expected, expr


def test_not_in_matches_when_key_absent() -> None:
    # Kubernetes semantics: NotIn is true when the label is missing altogether.
    s = sel({"matchExpressions": [{"key": "k8s:env", "operator": "NotIn", "values": ["prod"]}]})
    assert s.matches(FRONTEND)
    assert s.matches(HOST)
    assert not s.matches(ls("k8s:env=prod"))


def test_match_labels_and_expressions_are_anded() -> None:
    s = sel(
        {
            "matchLabels": {"app": "frontend"},
            "matchExpressions": [{"key": "k8s:io.kubernetes.pod.namespace", "operator": "In", "values": ["other"]}],
        }
    )
    assert not s.matches(FRONTEND)


def test_cidr_selector_matches_contained_prefixes_only() -> None:
    s = sel({"matchLabels": {"cidr:10.0.0.0/8": ""}})
    assert s.matches(ls("cidr:10.1.2.3/32", "reserved:world"))
    assert s.matches(ls("cidr:10.0.0.0/8", "reserved:world"))
    assert not s.matches(ls("cidr:0.0.0.0/0", "reserved:world"))  # broader is not inside
    assert not s.matches(ls("cidr:11.0.0.1/32", "reserved:world"))
    narrow = sel({"matchExpressions": [{"key": "cidr:10.1.2.0/24", "operator": "Exists"}]})
    assert not narrow.matches(ls("cidr:10.0.0.0/8"))


def test_cidr_ipv6_dash_and_colon_spellings_are_equivalent() -> None:
    dashed = sel({"matchLabels": {"cidr:2001-db8--/32": ""}})
    colon = sel({"matchLabels": {"cidr:2001:db8::/32": ""}})
    assert dashed == colon and str(dashed) == str(colon)
    assert dashed.matches(ls("cidr:2001:db8::1/128", "reserved:world"))
    assert dashed.matches(LabelSet([Label("cidr", "2001-db8--1/128")]))
    assert not dashed.matches(ls("cidr:2001:db9::1/128"))
    # IPv4 selectors never match IPv6 labels and vice versa.
    assert not sel({"matchLabels": {"cidr:0.0.0.0/1": ""}}).matches(ls("cidr:2001:db8::1/128"))


def test_cidr_not_in_and_does_not_exist() -> None:
    inside = ls("cidr:10.1.2.3/32")
    outside = ls("cidr:192.168.0.1/32")
    dne = sel({"matchExpressions": [{"key": "cidr:10.0.0.0/8", "operator": "DoesNotExist"}]})
    assert not dne.matches(inside)
    assert dne.matches(outside)
    assert dne.matches(FRONTEND)


def test_with_requirements_adds_namespace_constraint() -> None:
    base = sel({"matchLabels": {"app": "frontend"}})
    scoped = base.with_requirements(Requirement.make("k8s:io.kubernetes.pod.namespace", "In", ["shop"]))
    assert scoped.matches(FRONTEND)
    assert not scoped.matches(ls("k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=other"))
    anyns = sel({}).with_requirements(Requirement.make("k8s:io.kubernetes.pod.namespace", "Exists"))
    assert anyns.matches(FRONTEND)
    assert not anyns.matches(HOST)
    assert base == sel({"matchLabels": {"app": "frontend"}})  # unchanged


def test_with_match_label_replaces_user_value_like_add_match() -> None:
    s = sel({"matchLabels": {"k8s:io.kubernetes.pod.namespace": "other", "app": "frontend"}})
    forced = s.with_match_label("k8s", "io.kubernetes.pod.namespace", "shop")
    assert forced.get_match_label("k8s", "io.kubernetes.pod.namespace") == "shop"
    assert forced.matches(FRONTEND)


def test_inspection_helpers() -> None:
    s = sel(
        {
            "matchLabels": {"k8s:io.cilium.k8s.namespace.labels.team": "retail"},
            "matchExpressions": [{"key": "io.kubernetes.pod.namespace", "operator": "Exists"}],
        }
    )
    assert s.has_key("any", "io.kubernetes.pod.namespace")
    assert not s.has_key("k8s", "io.kubernetes.pod.namespace")
    assert s.has_key_prefix("k8s", "io.cilium.k8s.namespace.labels.")
    assert not s.has_source("reserved")


def test_canonical_string_and_hash_ignore_spelling_order() -> None:
    a = sel({"matchLabels": {"b": "2", "a": "1"}})
    b = sel({"matchLabels": {"a": "1", "b": "2"}})
    assert a == b and hash(a) == hash(b) and str(a) == str(b) == "any:a=1, any:b=2"
    c = sel({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}, {"key": "b", "operator": "In", "values": ["2"]}]})
    assert str(c) == str(a)  # same selection, same cache key
    assert {a: 1}[b] == 1
    d = sel({"matchExpressions": [{"key": "x", "operator": "NotIn", "values": ["q", "p"]}, {"key": "y", "operator": "DoesNotExist"}]})
    assert str(d) == "any:x notin (p,q), !any:y"


def test_to_dict_round_trips() -> None:
    s = sel({"matchLabels": {"app": "x"}, "matchExpressions": [{"key": "k8s:tier", "operator": "In", "values": ["b", "a"]}]})
    assert Selector.from_dict(s.to_dict()) == s


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"matchExpressions": [{"key": "a", "operator": "in", "values": ["x"]}]}, ("matchExpressions", 0, "operator")),
        ({"matchExpressions": [{"key": "a", "operator": "In"}]}, ("matchExpressions", 0, "values")),
        ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}, ("matchExpressions", 0, "values")),
        ({"matchExpressions": [{"operator": "Exists"}]}, ("matchExpressions", 0, "key")),
        ({"matchLabels": {"app": 1}}, ("matchLabels", "app")),
        ({"matchLabel": {"app": "x"}}, ("matchLabel",)),
    ],
)
def test_invalid_selectors_are_rejected_with_a_path(data: dict[str, object], path: tuple[object, ...]) -> None:
    with pytest.raises(SelectorError) as e:
        Selector.from_dict(data)
    assert e.value.path == path


def test_label_index_agrees_with_matches() -> None:
    rng = random.Random(7)
    keys = ["k8s:app", "k8s:tier", "container:app", "k8s:env"]
    vals = ["a", "b", "c"]
    items: dict[int, LabelSet] = {}

    def random_labels() -> LabelSet:
        chosen = {k: rng.choice(vals) for k in rng.sample(keys, rng.randint(0, 3))}
        labels = [Label.parse(f"{k}={v}") for k, v in chosen.items()]
        if rng.random() < 0.2:
            labels.append(Label.cidr(f"10.{rng.randint(0, 3)}.0.0/16"))
        return LabelSet(labels)

    for i in range(300):
        items[256 + i] = random_labels()
    items[1] = HOST
    index = LabelIndex(items)
    ops = ["In", "NotIn", "Exists", "DoesNotExist"]
    selectors: list[Selector] = []
    for _ in range(300):
        exprs = []
        for _ in range(rng.randint(0, 3)):
            op = rng.choice(ops)
            key = rng.choice([*keys, "app", "tier", "cidr:10.1.0.0/16", "cidr:10.0.0.0/8"])
            values = rng.sample(vals, rng.randint(1, 2)) if op in ("In", "NotIn") else []
            if key.startswith("cidr:") and values:
                values = [""]
            exprs.append({"key": key, "operator": op, "values": values})
        s = Selector.from_dict({"matchExpressions": exprs})
        selectors.append(s)
        brute = frozenset(i for i, labels in items.items() if s.matches(labels))
        assert index.select(s) == brute, str(s)
    # Identities added later (FQDN IPs, pods only flows name) join the cached selections.
    for i in range(40):
        items[1000 + i] = random_labels()
        grown = index.add(1000 + i, items[1000 + i])
        # add reports the cached selections the newcomer joined (the engine recompiles by it)
        assert set(grown) == {s for s in selectors if s.matches(items[1000 + i])}
    for s in selectors:
        assert index.select(s) == frozenset(i for i, labels in items.items() if s.matches(labels)), str(s)
