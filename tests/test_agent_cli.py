"""`ciliary agent` as a user runs it: a foreground process next to `ciliary lab`, its status,
its flows file and Hubble API, `--stop` leaving the datapath enforcing and `--stop --flush`
removing it. Needs root and network namespaces (skipped otherwise, with the reason)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ciliary.datapath.prober import Probe, probe_many
from datapath_helpers import assert_nothing_left, requires_netns, unique_prefix

pytestmark = requires_netns

ROOT = Path(__file__).parent.parent
LINT = ROOT / "examples" / "lint"
CLI = str(Path(sys.executable).parent / "ciliary")


def _ciliary(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=60, check=False)
    if check:
        assert res.returncode == 0, (args, res.stdout, res.stderr)
    return res


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    tmp = tmp_path_factory.mktemp("agentcli")
    prefix, run = unique_prefix("c"), tmp / "run"
    policies = tmp / "deny-only.yaml"
    policies.write_text((LINT / "deny-only.yaml").read_text())
    flows = tmp / "flows.jsonl"
    port = _free_port()
    common = ["--prefix", prefix, "--run-dir", str(run)]
    _ciliary("lab", "up", "--cluster", str(LINT / "cluster.yaml"), *common)
    proc = subprocess.Popen(
        [CLI, "agent", "--cluster", str(LINT / "cluster.yaml"), "--policies", str(policies), *common,
         "--flows-out", str(flows), "--hubble-listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not (run / "agent.pid").exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        time.sleep(0.3)  # the Hubble server starts right after the pid file
        yield {"prefix": prefix, "run": run, "common": common, "flows": flows, "port": port, "proc": proc, "policies": policies}
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        _ciliary("agent", "--stop", "--flush", *common, check=False)
        _ciliary("lab", "down", *common, check=False)
        assert_nothing_left(prefix)


def _netns(running: dict[str, object], target: str) -> str:
    from ciliary.datapath.lab import load_state

    return load_state(str(running["prefix"]), Path(str(running["run"]))).netns_for(target)


def test_the_agent_enforces_and_reports(running: dict[str, object]) -> None:
    common = list(running["common"])  # type: ignore[call-overload]
    # deny-only.yaml: shop's egress is default deny (only an egressDeny rule selects it).
    shop = _netns(running, "shop/frontend-1")
    other = _netns(running, "batch/job-1")
    [blocked] = probe_many(shop, [Probe("10.10.1.31", "tcp", 8443)], 0.6)
    [open_] = probe_many(other, [Probe("10.10.1.31", "tcp", 8443)], 0.6)
    assert (blocked.delivered, open_.delivered) == (False, True)
    res = _ciliary("agent", "status", *common, "-o", "json")
    st = json.loads(res.stdout)
    assert st["running"] is True
    eps = {e["endpoint"]: e for n in st["nodes"].values() for e in n["endpoints"]}
    assert eps["shop/frontend-1"]["egress_default_deny"] and not eps["batch/job-1"]["egress_enforced"]
    text = _ciliary("agent", "status", *common).stdout
    assert "shop/frontend-1" in text and "default deny" in text and "events:" in text
    time.sleep(0.5)
    lines = [json.loads(x) for x in Path(str(running["flows"])).read_text().splitlines()]
    drops = [ln["flow"] for ln in lines if ln["flow"]["verdict"] == "DROPPED"]
    assert any(f["source"].get("pod_name") == "frontend-1" and f["drop_reason_desc"] == "POLICY_DENIED"
               and f["traffic_direction"] == "EGRESS" for f in drops), lines[:3]


def test_the_hubble_observer_api_serves_the_flows(running: dict[str, object]) -> None:
    import grpc

    from ciliary.datapath.hubbleapi import flow_pb2, observer_pb2, observer_pb2_grpc

    shop = _netns(running, "shop/backend-1")
    probe_many(shop, [Probe("10.10.1.23", "tcp", 8080)], 0.5)
    time.sleep(0.5)
    with grpc.insecure_channel(f"127.0.0.1:{running['port']}") as ch:
        stub = observer_pb2_grpc.ObserverStub(ch)
        status = stub.ServerStatus(observer_pb2.ServerStatusRequest(), timeout=5)
        assert status.num_flows >= 1
        req = observer_pb2.GetFlowsRequest(number=50, whitelist=[flow_pb2.FlowFilter(source_pod=["shop/backend-1"], verdict=[flow_pb2.DROPPED])])
        got = list(stub.GetFlows(req, timeout=5))
    flows = [r.flow for r in got if r.HasField("flow")]
    assert flows and all(f.source.pod_name == "backend-1" and f.verdict == flow_pb2.DROPPED for f in flows)
    assert any(f.l4.TCP.destination_port == 8080 for f in flows)


def test_stop_leaves_the_datapath_enforcing_and_flush_removes_it(running: dict[str, object]) -> None:
    common = list(running["common"])  # type: ignore[call-overload]
    res = _ciliary("agent", "--stop", *common)
    assert "keeps enforcing" in res.stdout
    proc = running["proc"]
    assert proc.wait(10) == 0  # type: ignore[attr-defined]
    shop = _netns(running, "shop/frontend-1")
    assert not probe_many(shop, [Probe("10.10.1.31", "tcp", 8443)], 0.6)[0].delivered
    st = json.loads(_ciliary("agent", "status", *common, "-o", "json").stdout)
    assert st["running"] is False
    _ciliary("agent", "--stop", "--flush", *common)
    assert probe_many(shop, [Probe("10.10.1.31", "tcp", 8443)], 0.6)[0].delivered
    assert os.path.exists(str(running["run"]))
