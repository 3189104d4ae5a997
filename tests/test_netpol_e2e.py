"""The 48 scenarios of the Kubernetes upstream NetworkPolicy e2e suite, through `matrix`.

Data: tests/netpol_e2e (see its README). Where Cilium documents a different outcome (ipBlock
aimed at pod IPs), the scenario carries `cilium_reachability` and the test follows Cilium.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from ciliary.cluster.loader import load_cluster
from ciliary.model.loader import load_policies
from ciliary.model.source import parse_text
from ciliary.policy.engine import PolicyEngine
from ciliary.policy.ports import PROTO_NUMBERS
from ciliary.workflows.matrix import Probe, compute_matrix

DATA = Path(__file__).parent / "netpol_e2e"
CLUSTER = yaml.safe_load((DATA / "cluster.yaml").read_text())
SCENARIOS = sorted((DATA / "scenarios").glob("*.yaml"))


def _cluster(relabel: dict[str, Any] | None) -> Any:
    doc = copy.deepcopy(CLUSTER)
    for item in doc["items"]:
        meta = item["metadata"]
        if relabel and item["kind"] == "Namespace" and meta["name"] in relabel.get("namespaces", {}):
            meta["labels"] = relabel["namespaces"][meta["name"]]
        if relabel and item["kind"] == "Pod":
            key = f"{meta['namespace']}/{meta['name']}"
            if key in relabel.get("pods", {}):
                meta["labels"] = relabel["pods"][key]
    return load_cluster(parse_text(yaml.safe_dump(doc), "cluster.yaml"))


def _table(text: str) -> dict[tuple[str, str], bool]:
    lines = [ln.split() for ln in text.strip().splitlines()]
    cols = lines[0][1:]
    return {(row[0], cols[i]): cell == "." for row in lines[1:] for i, cell in enumerate(row[1:])}


def test_all_48_scenarios_are_encoded() -> None:
    assert len(SCENARIOS) == 48


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_upstream_netpol_scenario(path: Path) -> None:
    scenario = yaml.safe_load(path.read_text())
    relabel: dict[str, Any] = {"namespaces": {}, "pods": {}}
    for n, step in enumerate(scenario["steps"]):
        for kind in ("namespaces", "pods"):
            relabel[kind].update((step.get("relabel") or {}).get(kind, {}))
        cluster = _cluster(relabel)
        text = yaml.safe_dump_all(step.get("policies") or [])
        policies = load_policies(parse_text(text, f"{path.name}#step{n}") if step.get("policies") else [])
        engine = PolicyEngine(cluster, policies)
        probes = [Probe(PROTO_NUMBERS[p["protocol"]], p["port"]) for p in step["probes"]]
        matrix = compute_matrix(engine, probes)
        for p, probe in zip(step["probes"], probes, strict=True):
            expected = _table(p.get("cilium_reachability") or p["reachability"])
            wrong = [
                f"{s}->{d}: expected {'.' if want else 'X'}"
                for (s, d), want in expected.items()
                if not (scenario.get("ignore_loopback") and s == d)
                and matrix.allowed(probe, s, d) != want
            ]
            assert not wrong, (
                f"step {n} probe {probe}: {len(wrong)} cells differ\n" + "\n".join(wrong[:20])
                + "\n\ngot:\n" + matrix.truth_table(probe)
            )
