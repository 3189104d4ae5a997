"""The YAML emitter `ciliary generate` writes with: what it writes reads back as the data."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ciliary.model.emit import Commented, to_yaml, to_yaml_stream


def _strip(v: Any) -> Any:
    if isinstance(v, Commented):
        return _strip(v.value)
    if isinstance(v, dict):
        return {k: _strip(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_strip(x) for x in v]
    return v


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_scalar = st.one_of(_text, st.integers(-10**6, 10**6), st.booleans(), st.none(),
                    st.sampled_from(["yes", "No", "on", "null", "~", "1.5", "0x10", "*.x", "a: b", "- x", "#c", "80", "k8s:app"]))
_key = st.one_of(_text.filter(bool), st.sampled_from(["k8s:io.kubernetes.pod.namespace", "app", "y", "true", "1"]))


def _commented(s: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(s, st.builds(Commented, s, st.text(max_size=20)))


_value = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(_commented(inner), max_size=4),
        st.dictionaries(_key, _commented(inner), max_size=4),
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_key, _commented(_value), min_size=1, max_size=5), st.none() | st.text(max_size=30))
def test_what_is_written_reads_back_as_the_data(doc: dict[str, Any], header: str | None) -> None:
    assert yaml.safe_load(to_yaml(doc, header)) == _strip(doc)


def test_kubectl_style_and_comments_before_their_items() -> None:
    doc = {
        "spec": {
            "endpointSelector": {"matchLabels": {"app": "x"}},
            "egress": [Commented({"toCIDR": ["1.2.3.4/32"], "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]}, "3 flows")],
            "ingress": [Commented({}, "nothing observed")],
        },
    }
    assert to_yaml(doc, "generated") == (
        "# generated\n"
        "spec:\n"
        "  endpointSelector:\n"
        "    matchLabels:\n"
        "      app: x\n"
        "  egress:\n"
        "  # 3 flows\n"
        "  - toCIDR:\n"
        '    - "1.2.3.4/32"\n'
        "    toPorts:\n"
        "    - ports:\n"
        '      - port: "443"\n'
        "        protocol: TCP\n"
        "  ingress:\n"
        "  # nothing observed\n"
        "  - {}\n"
    )


@pytest.mark.parametrize(("value", "written"), [
    ("kube-dns", "kube-dns"), ("k8s:app", "k8s:app"), ("443", '"443"'), ("yes", '"yes"'),
    ("*.example.com", '"*.example.com"'), ("a: b", '"a: b"'), ("GET", "GET"), ("", '""'), ("trailing:", '"trailing:"'),
])
def test_strings_are_quoted_only_when_yaml_would_read_them_otherwise(value: str, written: str) -> None:
    assert to_yaml({"k": value}) == f"k: {written}\n"


def test_a_stream_separates_documents() -> None:
    text = to_yaml_stream([({"a": 1}, "first"), ({"b": [1, 2]}, None)])
    assert list(yaml.safe_load_all(text)) == [{"a": 1}, {"b": [1, 2]}]
    assert text.startswith("# first\na: 1\n---\nb:\n")
