"""`ciliary lab`: a snapshot's pods as real network namespaces (tests/data/lab/cluster.yaml:
2 nodes, 4 endpoint pods, a host-network pod, a dual-stack pod, a finished pod).

Without a policy datapath everything connects: every pod reaches every other pod's TCP
and UDP ports and answers ICMP, same node and across nodes, and the world. The lab is built
once for the module; the teardown tests build their own. The planning tests need no root;
the rest skip with the reason (tests/datapath_helpers.py) where namespaces cannot be built."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import orjson
import pytest
from typer.testing import CliRunner

from ciliary.cli import app
from ciliary.cluster.loader import read_cluster
from ciliary.datapath import netns
from ciliary.datapath.lab import (
    LabError,
    LabState,
    Port,
    Server,
    down,
    load_state,
    pick_world_addresses,
    plan,
    policy_world,
    status,
    up,
)
from ciliary.datapath.prober import Probe, probe_many
from ciliary.policy.config import AgentConfig
from ciliary.workflows.engine import build_engine
from datapath_helpers import assert_nothing_left, leftovers, requires_netns, unique_prefix

CLUSTER = Path(__file__).parent / "data" / "lab" / "cluster.yaml"
WORLD = ("203.0.113.1", "198.51.100.7")
CILIARY = str(Path(sys.executable).parent / "ciliary")
DENY_WEB_INGRESS = """\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-default-deny, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress: [{}]
"""
EGRESS_TO_CIDR = """\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: api-to-partner, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: api}}
  egress:
  - toCIDRSet: [{cidr: 192.0.2.0/24}]
    toPorts: [{ports: [{port: "8443", protocol: TCP}]}]
"""
runner = CliRunner()


def cli(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.stdout


# -- planning (pure, no root) ---------------------------------------------------------


def test_plan_names_placement_and_ports() -> None:
    cluster = read_cluster([CLUSTER])
    state = plan(cluster, "abcdef", [*WORLD, "10.244.1.10", "fd00::1"])
    assert state == plan(read_cluster([CLUSTER]), "abcdef", [*WORLD, "10.244.1.10", "fd00::1"])  # deterministic
    assert [(n.name, n.netns, n.ips) for n in state.nodes] == [
        ("node-a", "abcdef-node-0", ("172.30.0.10",)), ("node-b", "abcdef-node-1", ("172.30.0.11",)),
    ]
    pods = {p.key: p for p in state.pods}
    assert list(pods) == ["kube-system/coredns-0", "shop/api-0", "shop/web-0", "shop/web-1"]
    assert [p.netns for p in state.pods] == [f"abcdef-pod-{j}" for j in range(4)]
    assert (pods["shop/web-0"].node_netns, pods["shop/web-1"].node_netns) == ("abcdef-node-0", "abcdef-node-1")
    assert pods["shop/web-1"].ips == ("10.244.2.10",)  # its IPv6 address is skipped, and said so
    assert any("IPv6" in n for n in state.notes)
    assert [(p.port, p.proto, p.http) for p in pods["shop/web-0"].ports] == [(8080, "TCP", True), (9090, "TCP", False)]
    assert [(p.port, p.proto) for p in pods["kube-system/coredns-0"].ports] == [(53, "TCP"), (53, "UDP")]
    assert [(h.key, h.netns) for h in state.host_pods] == [("kube-system/node-agent-a", "abcdef-node-0")]
    assert state.skipped == [("shop/migrate-x7", "terminated (phase Succeeded): no endpoint")]
    # A world address that is a pod's, or IPv6, is not taken.
    assert state.world.addresses == WORLD
    assert any("10.244.1.10 skipped" in n for n in state.notes) and any("fd00::1 skipped" in n for n in state.notes)
    servers = {s.label: s for s in state.servers}
    assert set(servers) == {*pods, "node/node-a", "world"}
    assert [(p.port, p.http) for p in servers["node/node-a"].ports] == [(9962, True)]
    names = [n for p in state.pods for n in (p.host_if, p.pod_if)]
    names += [n for node in state.nodes for n in (node.link.outer_if, node.link.inner_if)]
    names += [state.world.link.outer_if, state.world.link.inner_if]
    assert len(set(names)) == len(names) and all(len(n) <= 15 and n.startswith("abcdef") for n in names)
    assert len(set(state.namespaces())) == len(state.namespaces()) == 8
    assert state.netns_for("kube-system/node-agent-a") == "abcdef-node-0"
    assert state.address_of("kube-system/node-agent-a") == "172.30.0.10"
    with pytest.raises(LabError, match="terminated"):
        state.netns_for("shop/migrate-x7")
    for bad in ("", "Cil", "1ab", "toolong7", "a-b"):
        with pytest.raises(LabError, match="bad prefix"):
            plan(cluster, bad)


def test_world_addresses_from_policy_prefixes() -> None:
    assert pick_world_addresses(["0.0.0.0/0"]) == ["203.0.113.1"]
    # Outside the except, so the address exercises what the rule allows.
    assert pick_world_addresses(["10.0.0.0/8", "10.0.0.0/16"]) == ["10.0.0.1", "10.16.0.1"]
    assert pick_world_addresses(["192.0.2.0/24"], taken=["192.0.2.1"]) == ["192.0.2.17"]
    assert pick_world_addresses(["169.254.169.254/32", "fd00::/8"]) == ["169.254.169.254"]
    assert pick_world_addresses(["169.254.0.0/16"]) == ["169.254.169.254", "169.254.0.1"]
    assert pick_world_addresses(["198.51.100.9/32", "198.51.100.8/31"]) == ["198.51.100.8", "198.51.100.9"]


def test_policy_world_takes_cidrs_and_ports(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(EGRESS_TO_CIDR)
    addresses, ports = policy_world(build_engine(CLUSTER, [tmp_path / "p.yaml"], AgentConfig()))
    assert addresses == ["192.0.2.1"]
    assert ports == [(80, "TCP"), (443, "TCP"), (53, "UDP"), (8443, "TCP")]


# -- the module's lab -----------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    prefix = unique_prefix()
    run_dir = tmp_path_factory.mktemp("lab") / "run"
    t0 = time.monotonic()
    try:
        up(plan(read_cluster([CLUSTER]), prefix, WORLD), run_dir)
        assert time.monotonic() - t0 < 10
        yield load_state(prefix, run_dir)
    finally:
        down(prefix, run_dir)
        assert_nothing_left(prefix)


def _args(state: LabState) -> list[str]:
    return ["--prefix", state.prefix, "--run-dir", state.run_dir]


@requires_netns
def test_every_pod_reaches_every_other_pod(lab: LabState) -> None:
    node_of = {p.key: p.node for p in lab.pods} | {h.key: h.node for h in lab.host_pods}
    targets = [(p.key, p.ips[0], p.ports) for p in lab.pods]
    targets += [(h.key, lab.address_of(h.key), h.ports) for h in lab.host_pods]
    pairs = {"same node": 0, "cross node": 0}
    for src in node_of:
        probes, expected = [], []
        for key, ip, ports in targets:
            if key == src:
                continue
            pairs["same node" if node_of[key] == node_of[src] else "cross node"] += 1
            for port in ports:
                probes.append(Probe(ip, port.proto.lower(), port.port))
                expected.append(("connected", f"{key} {port.port}"))
            probes.append(Probe(ip, "icmp"))
            expected.append(("connected", None))
        results = probe_many(lab.netns_for(src), probes, 2.0)
        assert [(r.result, r.answer) for r in results] == expected, src
    assert pairs["same node"] >= 6 and pairs["cross node"] >= 10


@requires_netns
def test_world_nodes_and_fabric(lab: LabState) -> None:
    probes = [Probe(a, proto, port) for a in WORLD for proto, port in (("tcp", 80), ("tcp", 443), ("udp", 53))]
    probes += [Probe(a, "icmp") for a in (*WORLD, "172.30.0.10", "172.30.0.11")]
    results = probe_many(lab.netns_for("shop/web-1"), probes, 2.0)
    assert [r.result for r in results] == ["connected"] * len(probes)
    assert [r.answer for r in results[:6]] == ["world 80", "world 443", "world 53"] * 2
    # From the world and from a node, back into the pods.
    back = [Probe("10.244.1.10", "tcp", 8080), Probe("10.244.2.11", "udp", 53)]
    assert [r.answer for r in probe_many(lab.netns_for("world"), back)] == ["shop/web-0 8080", "kube-system/coredns-0 53"]
    assert [r.answer for r in probe_many(lab.netns_for("node/node-b"), back)] == ["shop/web-0 8080", "kube-system/coredns-0 53"]


@requires_netns
def test_http_ports_speak_http(lab: LabState) -> None:
    [r] = probe_many(lab.netns_for("shop/api-0"), [Probe("10.244.2.10", "tcp", 8080, http_path="/v1/orders")])
    assert (r.result, r.http_status, r.answer) == ("connected", 200, "shop/web-1 8080 GET /v1/orders")
    [r] = probe_many(lab.netns_for("shop/api-0"), [Probe("172.30.0.10", "tcp", 9962, http_path="/metrics")])
    assert (r.http_status, r.answer) == (200, "kube-system/node-agent-a 9962 GET /metrics")


@requires_netns
def test_negatives_and_a_big_batch_within_one_timeout(lab: LabState) -> None:
    src = lab.netns_for("shop/web-0")
    closed = probe_many(src, [Probe("10.244.2.10", "tcp", 1234), Probe("10.244.2.10", "udp", 1234), Probe("10.99.0.1", "tcp", 80), Probe("10.99.0.1", "icmp")])
    assert [r.result for r in closed] == ["refused", "refused", "unreachable", "unreachable"]
    # Silent drops: a table in the world namespace (inside the lab, gone with it) drops 7000-7099.
    rules = "table inet drops {\n chain input {\n  type filter hook input priority 0;\n  meta l4proto { tcp, udp } th dport 7000-7099 drop\n }\n}\n"
    assert netns.run_in(lab.world.netns, ["nft", "-f", "-"], stdin=rules).returncode == 0
    probes = [Probe(WORLD[0], "tcp" if i % 2 else "udp", 7000 + i) for i in range(50)]
    probes += [Probe(WORLD[i % 2], "tcp", 80) for i in range(25)] + [Probe(p.ips[0], "icmp") for p in lab.pods] * 6 + [Probe(WORLD[1], "udp", 53)]
    t0 = time.monotonic()
    results = probe_many(src, probes, 0.5)
    elapsed = time.monotonic() - t0
    assert len(results) == 100 and elapsed < 2.0, elapsed
    assert [r.result for r in results[:50]] == ["timeout"] * 50
    assert [r.result for r in results[50:]] == ["connected"] * 50
    # The same batch in a child `ip netns exec ... python -m ciliary.datapath.prober`.
    isolated = probe_many(src, probes[45:55], 0.5, isolated=True)
    assert [r.result for r in isolated] == ["timeout"] * 5 + ["connected"] * 5


@requires_netns
def test_in_netns_switches_the_thread_and_back(lab: LabState) -> None:
    pod = lab.pods[0]
    home = {name for _, name in socket.if_nameindex()}
    with netns.in_netns(pod.netns):
        assert {name for _, name in socket.if_nameindex()} == {"lo", pod.pod_if}
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # keeps the pod's namespace
    with pytest.raises(ZeroDivisionError), netns.in_netns(lab.fabric):
        1 / 0  # noqa: B018
    assert {name for _, name in socket.if_nameindex()} == home
    with sock:
        sock.bind((pod.ips[0], 0))  # an address only the pod has


@requires_netns
def test_lab_exec_runs_in_the_right_namespace(lab: LabState) -> None:
    res = subprocess.run([CILIARY, "lab", "exec", "shop/web-0", *_args(lab), "--", "ip", "-j", "addr"], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    local = {a["local"] for link in json.loads(res.stdout) for a in link.get("addr_info", [])}
    assert "10.244.1.10" in local and "172.30.0.10" not in local
    res = subprocess.run([CILIARY, "lab", "exec", *_args(lab), "node/node-a", "--", "sh", "-c", "exit 7"], check=False)
    assert res.returncode == 7
    code, out = cli("lab", "exec", "kube-system/node-agent-a", *_args(lab), "-o", "json", "--", "ip", "-j", "addr", "show", "lo")
    d = orjson.loads(out)
    assert code == 0 and d["netns"] == lab.nodes[0].netns and "172.30.0.10" in d["stdout"]
    code, _ = cli("lab", "exec", "shop/nope", *_args(lab), "--", "true")
    assert code == 1


@requires_netns
def test_lab_probe_next_to_trace(lab: LabState, tmp_path: Path) -> None:
    code, out = cli("lab", "probe", *_args(lab), "--src", "shop/web-0", "--dst", "shop/web-1", "--dport", "8080/TCP",
                    "--cluster", str(CLUSTER), "--expect-agree", "-o", "json")
    d = orjson.loads(out)
    assert code == 0 and d["probe"]["result"] == "connected" and d["probe"]["answer"] == "shop/web-1 8080"
    assert (d["trace"]["verdict"], d["predicted"], d["delivered"], d["agree"]) == ("FORWARDED", "FORWARDED", True, True)
    code, out = cli("lab", "probe", *_args(lab), "--src", "kube-system/coredns-0", "--dst", "world", "--icmp", "EchoRequest", "--cluster", str(CLUSTER))
    assert code == 0 and "-> world (203.0.113.1) ICMP type 8: connected" in out and "agree  yes" in out
    code, out = cli("lab", "probe", *_args(lab), "--src", "shop/api-0", "--dst", "10.244.2.10", "--dport", "1234/UDP")
    assert code == 0 and ": refused" in out and "trace" not in out
    # A policy the lab does not enforce yet: trace drops, the probe connects.
    (tmp_path / "deny.yaml").write_text(DENY_WEB_INGRESS)
    args = ["lab", "probe", *_args(lab), "--src", "shop/api-0", "--dst", "shop/web-0", "--dport", "8080/TCP",
            "--cluster", str(CLUSTER), "--policies", str(tmp_path / "deny.yaml")]
    code, out = cli(*args)
    assert code == 0 and "trace  DROPPED" in out and "agree  NO" in out
    assert cli(*args, "--expect-agree")[0] == 1
    assert cli("lab", "probe", *_args(lab), "--src", "shop/web-0", "--dst", "shop/web-1")[0] == 2
    assert cli("lab", "probe", *_args(lab), "--src", "shop/web-0", "--dst", "shop/web-1", "--dport", "1/SCTP")[0] == 2


@requires_netns
def test_lab_status(lab: LabState) -> None:
    code, out = cli("lab", "status", *_args(lab), "-o", "json")
    d = orjson.loads(out)
    assert code == 0 and d["up"] and d["netns_missing"] == [] and d["stray_processes"] == []
    assert len(d["servers"]) == 6 and all(s["alive"] for s in d["servers"])
    assert sorted(d["netns_present"]) == sorted(lab.namespaces())
    code, out = cli("lab", "status", "--prefix", unique_prefix(), "--run-dir", lab.run_dir + "-none")
    assert code == 1 and "no lab" in out


# -- building and removing labs of their own -------------------------------------------


@requires_netns
def test_up_down_idempotent_and_after_a_crash(tmp_path: Path) -> None:
    prefix, rd = unique_prefix(), tmp_path / "run"
    (tmp_path / "p.yaml").write_text(EGRESS_TO_CIDR)
    args = ["--prefix", prefix, "--run-dir", str(rd)]
    try:
        code, out = cli("lab", "up", "--cluster", str(CLUSTER), "--policies", str(tmp_path / "p.yaml"), *args, "-o", "json")
        d = orjson.loads(out)
        assert code == 0 and d["up"] and d["world"]["addresses"] == ["192.0.2.1"]
        [r] = probe_many(f"{prefix}-pod-1", [Probe("192.0.2.1", "tcp", 8443)])
        assert (r.result, r.answer) == ("connected", "world 8443")
        code, out = cli("lab", "up", "--cluster", str(CLUSTER), *args)
        assert code == 1 and leftovers(prefix)["netns"]  # refused, and what runs is untouched
        code, out = cli("lab", "down", *args)
        assert code == 0 and f"removed lab {prefix}: 8 namespace(s), 6 process(es), 13 run file(s)" in out
        assert_nothing_left(prefix)
        assert not rd.exists()
        code, out = cli("lab", "down", *args)
        assert code == 0 and "nothing to remove" in out
        # A crash: the servers killed and the state file lost; down still finds everything.
        state = plan(read_cluster([CLUSTER]), prefix, WORLD)
        up(state, rd)
        for pid in state.pids.values():
            os.killpg(pid, signal.SIGKILL)
        (rd / "state.json").unlink()
        assert cli("lab", "status", *args)[0] == 1
        assert len(down(prefix, rd).netns) == 8
        assert_nothing_left(prefix)
        # The state file lost, the servers still running: found by their marker.
        state = plan(read_cluster([CLUSTER]), prefix, WORLD)
        up(state, rd)
        (rd / "state.json").unlink()
        report = down(prefix, rd)
        assert sorted(report.killed) == sorted(state.pids.values())
        assert_nothing_left(prefix)
    finally:
        down(prefix, rd)
        assert_nothing_left(prefix)


@requires_netns
def test_a_failed_up_removes_what_it_built(tmp_path: Path) -> None:
    prefix = unique_prefix()
    state = plan(read_cluster([CLUSTER]), prefix, WORLD)
    try:
        bad = msgspec.structs.replace(state.pods[1], host_if="x" * 16)  # an interface name too long
        broken = msgspec.structs.replace(state, pods=[state.pods[0], bad, *state.pods[2:]])
        with pytest.raises(LabError, match=r"building lab .* failed: .*Command failed.*\(everything built was removed\)"):
            up(broken, tmp_path / "a")
        assert_nothing_left(prefix)
        # A server that cannot listen: the error names it and its log line.
        pod = state.pods[0]
        dup = Server(pod.netns, pod.key, (Port(7, "TCP", pod.key), Port(7, "TCP", pod.key)))
        broken = msgspec.structs.replace(state, servers=[dup, *state.servers[1:]])
        with pytest.raises(LabError, match=rf"server in {pod.netns} exited: podserver {pod.key}: cannot listen on 7/TCP"):
            up(broken, tmp_path / "b")
        assert_nothing_left(prefix)
        assert not (tmp_path / "b").exists()
        assert status(prefix, tmp_path / "b").state is None
    finally:
        down(prefix, tmp_path / "c")
