"""An object given twice: identical copies (as `kubectl apply` accepts them) are loaded once
with a warning naming both places; different objects with the same name stay an error."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from ciliary.cli import app
from ciliary.model.errors import LoadError, ValidationWarning
from ciliary.model.loader import load_policies
from ciliary.model.source import parse_text
from ciliary.policy.config import AgentConfig
from ciliary.workflows.engine import build_engine
from ciliary.workflows.validate import validate_paths

SEED = Path(__file__).parent.parent / "examples" / "seed"
runner = CliRunner()

CNP = """\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: allow-dns
  namespace: shop
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress:
  - toEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": kube-system}}]
    toPorts: [{ports: [{port: "53", protocol: UDP}]}]
"""
KNP = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: shop}
spec: {podSelector: {}, policyTypes: [Ingress]}
"""
# The same object as CNP, as data: flow style, other key order, other quoting.
CNP_REFORMATTED = """\
kind: CiliumNetworkPolicy
apiVersion: "cilium.io/v2"
metadata: {namespace: shop, name: allow-dns}
spec:
  egress:
  - toPorts:
    - ports:
      - {protocol: UDP, port: '53'}
    toEndpoints:
    - matchLabels:
        k8s:io.kubernetes.pod.namespace: "kube-system"
  endpointSelector:
    matchLabels: {app: web}
"""
# Same kind/namespace/name, different spec.
CNP_OTHER = CNP.replace('port: "53"', 'port: "5353"')

WARNING = "duplicate of the identical object at {at}, document {doc}; loaded once"


def _cli(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.stdout, res.stderr


def test_identical_duplicate_in_one_file_loads_once_with_a_warning() -> None:
    text = CNP + "---\n" + KNP + "---\n" + CNP
    result = load_policies(parse_text(text, "in.yaml"))
    assert [str(p.ref) for p in result.policies] == [
        "CiliumNetworkPolicy shop/allow-dns",
        "NetworkPolicy shop/deny-all",
    ]
    assert (result.policies[0].file, result.policies[0].document) == ("in.yaml", 0)
    [w] = result.warnings
    assert isinstance(w, ValidationWarning)
    second_line = len((CNP + "---\n" + KNP + "---\n").splitlines()) + 1
    assert (w.file, w.line, w.document, w.object, w.field) == (
        "in.yaml", second_line, 2, "CiliumNetworkPolicy shop/allow-dns", ""
    )
    assert w.message == WARNING.format(at="in.yaml:1", doc=0)
    assert str(w) == (
        f"in.yaml:{second_line}, document 2, CiliumNetworkPolicy shop/allow-dns: "
        "duplicate of the identical object at in.yaml:1, document 0; loaded once"
    )


def test_identical_duplicate_passes_validate_with_the_warning_on_stderr(tmp_path: Path) -> None:
    f = tmp_path / "policies.yaml"
    f.write_text(CNP + "---\n" + CNP)
    code, out, err = _cli("validate", str(f))
    assert code == 0
    assert "1 valid policy (CiliumNetworkPolicy: 1)" in out and "warning" not in out
    assert err.splitlines() == [
        f"warning: {f}:12, document 1, CiliumNetworkPolicy shop/allow-dns: "
        f"duplicate of the identical object at {f}:1, document 0; loaded once"
    ]
    code, out, err = _cli("validate", str(f), "-o", "json")
    assert code == 0 and orjson.loads(out) == []
    assert err.startswith(f"warning: {f}:12, document 1, CiliumNetworkPolicy shop/allow-dns: ")


def test_identical_duplicate_across_two_files_of_one_input(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(KNP + "---\n" + CNP)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "copy.yaml").write_text("# generated\n" + CNP)
    report = validate_paths([tmp_path])
    assert report.ok and report.policies is not None
    assert len(report.policies) == 2
    [w] = report.warnings
    assert w is report.policies.warnings[0]
    a, b = tmp_path / "a.yaml", tmp_path / "b" / "copy.yaml"
    assert (w.file, w.line, w.document) == (str(b), 2, 0)
    assert w.message == WARNING.format(at=f"{a}:6", doc=1)
    code, _, err = _cli("validate", str(tmp_path))
    assert code == 0
    assert err.strip() == f"warning: {b}:2, document 0, CiliumNetworkPolicy shop/allow-dns: {w.message}"


def test_duplicate_differing_only_in_formatting_and_key_order_is_a_warning() -> None:
    result = load_policies(parse_text(CNP + "---\n" + CNP_REFORMATTED, "in.yaml"))
    assert len(result) == 1
    [w] = result.warnings
    assert (w.line, w.document, w.message) == (12, 1, WARNING.format(at="in.yaml:1", doc=0))


def test_identical_item_of_a_list_is_a_duplicate_too() -> None:
    item = "".join(("- " if i == 0 else "  ") + ln + "\n" for i, ln in enumerate(KNP.splitlines()))
    text = "apiVersion: v1\nkind: List\nitems:\n" + item + "---\n" + KNP
    result = load_policies(parse_text(text, "list.yaml"))
    assert len(result) == 1 and result.policies[0].path == ("items", 0)
    [w] = result.warnings
    assert (w.line, w.document, w.message) == (9, 1, WARNING.format(at="list.yaml:4", doc=0))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (CNP, CNP_OTHER),  # another spec
        (KNP, KNP.replace("metadata: {", "metadata: {labels: {team: a}, ")),  # other metadata
        # Equal to Python's == but not as YAML data: `true` is not `1`.
        (KNP.replace("metadata: {", "metadata: {ownerReferences: [{controller: true}], "),
         KNP.replace("metadata: {", "metadata: {ownerReferences: [{controller: 1}], ")),
    ],
)
def test_same_name_different_object_is_still_an_error(first: str, second: str) -> None:
    with pytest.raises(LoadError) as e:
        load_policies(parse_text(first + "---\n" + second, "in.yaml"))
    [issue] = e.value.issues
    ref = issue.object
    assert ref is not None
    assert issue.field == "metadata.name" and issue.document == 1
    assert issue.message == f"{ref} is defined twice (first in in.yaml, document 0)"
    assert e.value.warnings == []


def test_same_name_different_object_fails_validate_and_loads_nothing(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(CNP + "---\n" + CNP_OTHER)
    report = validate_paths([f])
    assert not report.ok and report.policies is None and report.warnings == []
    code, out, err = _cli("validate", str(f), "-o", "json")
    assert code == 1
    [issue] = orjson.loads(out)
    assert issue == {
        "file": str(f), "line": 15, "document": 1, "object": "CiliumNetworkPolicy shop/allow-dns",
        "field": "metadata.name",
        "message": f"CiliumNetworkPolicy shop/allow-dns is defined twice (first in {f}, document 0)",
    }
    assert "warning" not in err
    code, _, err = _cli("validate", str(f))
    assert code == 1 and "1 error; nothing loaded" in err


def test_warnings_are_kept_when_another_error_stops_the_load(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(CNP + "---\n" + CNP + "---\n" + KNP.replace("[Ingress]", "[Inbound]"))
    report = validate_paths([f])
    assert not report.ok and len(report.issues) == 1 and len(report.warnings) == 1
    code, out, err = _cli("validate", str(f), "-o", "json")
    assert code == 1 and len(orjson.loads(out)) == 1
    assert err.startswith(f"warning: {f}:12, document 1, CiliumNetworkPolicy shop/allow-dns: ")


def test_engine_commands_print_the_warning_on_stderr(tmp_path: Path) -> None:
    policy = SEED / "policies" / "02-allow-frontend-to-backend.yaml"
    f = tmp_path / "twice.yaml"
    f.write_text(policy.read_text() + "---\n" + policy.read_text())
    engine = build_engine(SEED / "cluster.yaml", [f], AgentConfig())
    [w] = engine.policies.warnings
    assert w.object == "CiliumNetworkPolicy shop/allow-frontend-to-backend"
    code, out, err = _cli(
        "trace", "--cluster", str(SEED / "cluster.yaml"), "--policies", str(f),
        "--src", "shop/frontend-7d9c5b8f6-k2x4p", "--dst", "shop/backend-5f6d8c9b7-xz91c",
        "--dport", "8080/TCP", "-o", "json",
    )
    assert code == 0 and orjson.loads(out)["verdict"] == "FORWARDED"
    assert err.strip() == f"warning: {w}"
