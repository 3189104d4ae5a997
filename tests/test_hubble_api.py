"""The agent's Hubble Observer API (`ciliary.datapath.hubble`) through a real gRPC client.

A fake agent holds the hand-written sample flows in its ring; the server runs on 127.0.0.1
with an ephemeral port. Filters are checked against `ciliary observe` on the same flows.
No root needed.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ciliary.datapath import hubble
from ciliary.datapath.hubble import (
    HEALTH_SERVICE,
    ObserverServer,
    check_address,
    flow_filter_of,
    flow_message,
)
from ciliary.datapath.hubbleapi import flow_pb2, observer_pb2, observer_pb2_grpc
from ciliary.flows.flowfilter import FlowFilter
from ciliary.flows.gotime import format_rfc3339_proto
from ciliary.workflows.observe import observe, parse_observe_args, raw_filters

JSON = dict[str, Any]
SAMPLES = Path(__file__).parent / "data" / "flows" / "hand-written-samples.jsonl"
LINES: list[JSON] = [json.loads(line) for line in SAMPLES.read_text().splitlines()]
assert len(LINES) == 41

# A flow as the nftables agent writes it (ciliary.datapath.events.flow_of): a default-deny
# drop seen on node "kind-worker".
AGENT_FLOW: JSON = {
    "time": "2026-03-14T09:12:09.000000001Z",
    "uuid": "0b6c2a47-9a55-4a35-8d1c-2f1f8b0c6a11",
    "emitter": {"name": "ciliary", "version": "agent"},
    "verdict": "DROPPED",
    "drop_reason": 133,
    "IP": {"source": "10.244.1.5", "destination": "10.244.2.7", "ipVersion": "IPv4"},
    "l4": {"TCP": {"source_port": 40312, "destination_port": 5432, "flags": {"SYN": True}}},
    "source": {
        "identity": 31337,
        "cluster_name": "default",
        "namespace": "shop",
        "labels": ["k8s:app=reporting", "k8s:io.kubernetes.pod.namespace=shop"],
        "pod_name": "reporting-1",
    },
    "destination": {
        "identity": 4242,
        "cluster_name": "default",
        "namespace": "db",
        "labels": ["k8s:app=postgres", "k8s:io.kubernetes.pod.namespace=db"],
        "pod_name": "postgres-0",
    },
    "Type": "L3_L4",
    "node_name": "kind-worker",
    "event_type": {"type": 1, "sub_type": 133},
    "traffic_direction": "INGRESS",
    "drop_reason_desc": "POLICY_DENIED",
    "Summary": "TCP Flags: SYN",
}
AGENT_LINE: JSON = {"flow": AGENT_FLOW, "node_name": "kind-worker", "time": AGENT_FLOW["time"]}
RING: list[JSON] = [*LINES, AGENT_LINE]


class FakeAgent:
    """What ObserverServer reads of `ciliary.datapath.agent.Agent`."""

    def __init__(self, lines: list[JSON], nodes: Mapping[str, object] | None = None) -> None:
        self.ring: deque[JSON] = deque(lines, maxlen=4095)
        self.subscribers: list[Callable[[JSON], None]] = []
        self.seen = len(lines)
        self.nodes: Mapping[str, object] = nodes or {"kind-worker": object()}
        self.lost = 0
        self.started = time.time() - 5.0

    def lost_events(self) -> int:
        return self.lost

    def publish(self, line: JSON) -> None:
        self.ring.append(line)
        self.seen += 1
        for sub in list(self.subscribers):
            sub(line)


class Node:
    def __init__(self, reader: object | None) -> None:
        self.reader = reader


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent(RING)


@pytest.fixture
def server(agent: FakeAgent) -> Iterator[ObserverServer]:
    srv = ObserverServer(agent, "127.0.0.1:0").start()
    yield srv
    srv.stop(grace=0)


@pytest.fixture
def channel(server: ObserverServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.Channel) -> observer_pb2_grpc.ObserverStub:
    return observer_pb2_grpc.ObserverStub(channel)


def get_flows(
    stub: observer_pb2_grpc.ObserverStub, **req: Any
) -> list[observer_pb2.GetFlowsResponse]:
    return list(stub.GetFlows(observer_pb2.GetFlowsRequest(**req), timeout=10))


def uuids(responses: list[observer_pb2.GetFlowsResponse]) -> list[str]:
    return [r.flow.uuid for r in responses]


def flag_request(*args: str) -> dict[str, Any]:
    """The whitelist/blacklist the hubble CLI sends for these `hubble observe` flags."""
    allow, deny = raw_filters(parse_observe_args(args).options)

    def messages(filters: list[FlowFilter]) -> list[flow_pb2.FlowFilter]:
        return [json_format.ParseDict(f.to_dict(), flow_pb2.FlowFilter()) for f in filters]

    return {"whitelist": messages(allow), "blacklist": messages(deny)}


def observe_uuids(ring_file: Path, *args: str) -> list[str]:
    """The flows `ciliary observe RING_FILE <args> -o json` prints, by uuid."""
    options = parse_observe_args(list(args)).options
    return [json.loads(line)["flow"]["uuid"] for line in observe([ring_file], options, "json")]


@pytest.fixture(scope="module")
def ring_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ring (samples + the agent's flow) as a flow file, for `ciliary observe`."""
    path = tmp_path_factory.mktemp("ring") / "ring.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in RING))
    return path


# ---- GetFlows: selection ---------------------------------------------------------------------


def test_last_two_flows_are_the_rings_last_two(stub: observer_pb2_grpc.ObserverStub) -> None:
    got = get_flows(stub, number=2)
    assert uuids(got) == [RING[-2]["flow"]["uuid"], RING[-1]["flow"]["uuid"]]
    sample, mine = got
    assert sample.flow.verdict == flow_pb2.FORWARDED
    assert sample.flow.l4.TCP.destination_port == 443
    assert sample.flow.trace_observation_point == flow_pb2.TO_STACK
    assert sample.node_name == "prod-east/worker-a1"
    assert sample.time.ToJsonString() == RING[-2]["time"]
    assert mine.flow.verdict == flow_pb2.DROPPED
    assert mine.flow.drop_reason_desc == flow_pb2.POLICY_DENIED
    assert (mine.flow.l4.TCP.source_port, mine.flow.l4.TCP.destination_port) == (40312, 5432)
    assert mine.flow.l4.TCP.flags.SYN and not mine.flow.l4.TCP.flags.ACK
    assert list(mine.flow.source.labels) == [
        "k8s:app=reporting",
        "k8s:io.kubernetes.pod.namespace=shop",
    ]
    assert mine.flow.destination.pod_name == "postgres-0"
    assert not mine.flow.HasField("is_reply")  # drops: unknown, not false
    assert mine.node_name == "kind-worker"
    assert mine.time.ToNanoseconds() % 1_000_000_000 == 1


def test_every_flow_round_trips_to_the_json_the_agent_holds(
    stub: observer_pb2_grpc.ObserverStub,
) -> None:
    got = get_flows(stub)  # number 0, no follow: the whole ring
    assert [json_format.MessageToDict(r, preserving_proto_field_name=True) for r in got] == RING


def test_first_n(stub: observer_pb2_grpc.ObserverStub) -> None:
    assert uuids(get_flows(stub, number=3, first=True)) == [
        line["flow"]["uuid"] for line in RING[:3]
    ]


def test_number_beyond_the_ring_returns_what_is_there(stub: observer_pb2_grpc.ObserverStub) -> None:
    # `hubble observe --all` asks for 2^64-1 flows.
    assert len(get_flows(stub, number=2**64 - 1)) == len(RING)


@pytest.mark.parametrize(
    "flags",
    [
        ("--verdict", "DROPPED"),
        ("--from-pod", "shop/reporting"),
        ("--to-port", "8443"),
        ("--verdict", "DROPPED", "--from-pod", "shop/reporting", "--to-port", "8443"),
        ("--namespace", "payments"),
        ("--label", "k8s:k8s-app=kube-dns", "--protocol", "udp"),
        ("--type", "l7", "--http-method", "DELETE"),
        ("--drop-reason-desc", "POLICY_DENIED", "--node-name", "kind-*"),
        ("--to-identity", "world", "--traffic-direction", "egress"),
        ("--not", "--namespace", "kube-system", "--verdict", "FORWARDED"),
        ("--not", "--verdict", "FORWARDED"),
    ],
)
def test_filters_select_what_ciliary_observe_selects(
    stub: observer_pb2_grpc.ObserverStub, ring_file: Path, flags: tuple[str, ...]
) -> None:
    expected = observe_uuids(ring_file, *flags)
    assert expected, "a filter that selects nothing proves little"
    assert uuids(get_flows(stub, **flag_request(*flags))) == expected


def test_a_filter_message_built_by_hand(
    stub: observer_pb2_grpc.ObserverStub, ring_file: Path
) -> None:
    # What a Hubble client sends for --verdict DROPPED --from-pod shop/reporting --to-port 8443.
    ff = flow_pb2.FlowFilter(
        verdict=[flow_pb2.DROPPED], source_pod=["shop/reporting"], destination_port=["8443"]
    )
    got = get_flows(stub, whitelist=[ff])
    assert uuids(got) == observe_uuids(
        ring_file, "--verdict", "DROPPED", "--from-pod", "shop/reporting", "--to-port", "8443"
    )
    assert len(got) == 3
    assert {r.flow.destination.pod_name for r in got} == {"payments-api-84c6d5b7f9-tz6vh"}


def test_blacklist_removes_what_it_matches(
    stub: observer_pb2_grpc.ObserverStub, ring_file: Path
) -> None:
    no_l7 = flow_pb2.FlowFilter(event_type=[flow_pb2.EventTypeFilter(type=129)])
    got = get_flows(stub, blacklist=[no_l7])
    assert uuids(got) == [
        line["flow"]["uuid"] for line in RING if line["flow"]["event_type"]["type"] != 129
    ]
    dropped = flow_pb2.FlowFilter(verdict=[flow_pb2.DROPPED])
    both = get_flows(stub, whitelist=[dropped], blacklist=[no_l7])
    assert {r.flow.verdict for r in both} == {flow_pb2.DROPPED}
    assert uuids(both) == observe_uuids(ring_file, "--verdict", "DROPPED", "--not", "--type", "l7")


def test_since_and_until_compare_each_flows_time(
    stub: observer_pb2_grpc.ObserverStub, ring_file: Path
) -> None:
    since, until = Timestamp(), Timestamp()
    since.FromJsonString("2026-03-14T09:12:05Z")
    until.FromJsonString("2026-03-14T09:12:06Z")
    got = get_flows(stub, since=since, until=until)
    expected = [
        line["flow"]["uuid"]
        for line in RING
        if "2026-03-14T09:12:05" <= line["time"] < "2026-03-14T09:12:06.000000001"
    ]
    assert uuids(got) == expected
    assert len(expected) == 7
    assert uuids(got) == observe_uuids(
        ring_file, "--since", "2026-03-14T09:12:05Z", "--until", "2026-03-14T09:12:06Z"
    )


def test_field_mask_sends_only_the_fields_asked_for(stub: observer_pb2_grpc.ObserverStub) -> None:
    # The mask `hubble observe -o compact` asks for (its defaults), plus a path this API omits.
    paths = [
        "time",
        "verdict",
        "IP",
        "l4",
        "source.identity",
        "source.pod_name",
        "Summary",
        "tunnel",
    ]
    got = get_flows(stub, number=1, field_mask=FieldMask(paths=paths))
    flow = json_format.MessageToDict(got[0].flow, preserving_proto_field_name=True)
    assert flow == {
        "time": AGENT_FLOW["time"],
        "verdict": "DROPPED",
        "IP": AGENT_FLOW["IP"],
        "l4": AGENT_FLOW["l4"],
        "source": {"identity": 31337, "pod_name": "reporting-1"},
        "Summary": "TCP Flags: SYN",
    }


def test_bad_requests_are_invalid_argument(stub: observer_pb2_grpc.ObserverStub) -> None:
    cel = flow_pb2.FlowFilter(
        experimental=flow_pb2.FlowFilter.Experimental(cel_expression=["_flow.verdict == 2"])
    )
    for req in ({"whitelist": [cel]}, {"first": True, "follow": True, "number": 1}):
        with pytest.raises(grpc.RpcError) as err:
            get_flows(stub, **req)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_filter_field_the_server_does_not_know_is_refused() -> None:
    # A newer client's FlowFilter field (number 500 here) must not be silently ignored.
    raw = flow_pb2.FlowFilter(verdict=[flow_pb2.DROPPED]).SerializeToString() + bytes(
        [0xA0, 0x1F, 1]
    )
    with pytest.raises(ValueError, match="500"):
        flow_filter_of(flow_pb2.FlowFilter.FromString(raw))


# ---- flow dict -> flow.Flow -------------------------------------------------------------------


def _parse_dict(flow: JSON) -> bytes:
    msg = flow_pb2.Flow()
    json_format.ParseDict(flow, msg, ignore_unknown_fields=True)
    return msg.SerializeToString(deterministic=True)


def test_flows_convert_as_parse_dict_converts_them_without_calling_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = [_parse_dict(line["flow"]) for line in RING]

    def no_parse_dict(*args: object, **kwargs: object) -> None:
        raise AssertionError("the direct path fell back to ParseDict")

    monkeypatch.setattr(hubble.json_format, "ParseDict", no_parse_dict)
    assert [
        flow_message(line["flow"]).SerializeToString(deterministic=True) for line in RING
    ] == expected


@pytest.mark.parametrize(
    "flow",
    [
        {
            "nodeName": "n",
            "isReply": True,
            "dropReasonDesc": 133,
            "verdict": 2,
        },  # JSON names, numbers
        {"l4": {"TCP": {"sourcePort": 1}}, "source": {}, "destination": None},
        {"drop_reason_desc": "NOT_A_REASON", "verdict": "5", "policy_match_type": 1.0},
        {"egress_allowed_by": [{"revision": 57}, {"revision": "58"}], "l7": {"latency_ns": "12"}},
        {"IP": {"encrypted": 1}, "tunnel": {"vni": 3}},  # not canonical; a field left out
    ],
)
def test_unusual_flows_convert_as_parse_dict_converts_them(flow: JSON) -> None:
    try:
        expected: bytes | None = _parse_dict(flow)
    except json_format.ParseError:
        expected = None
    try:
        got: bytes | None = flow_message(flow).SerializeToString(deterministic=True)
    except json_format.ParseError:
        got = None
    assert got == expected


@pytest.mark.parametrize(
    "flow",
    [{"uuid": 5}, {"time": "yesterday"}, {"l4": {"TCP": {"source_port": -1}}}, {"is_reply": "yes"}],
)
def test_malformed_flows_are_parse_errors(flow: JSON) -> None:
    with pytest.raises(json_format.ParseError):
        flow_message(flow)


def test_a_flow_that_does_not_convert_is_left_out_of_the_stream() -> None:
    bad = {"flow": dict(AGENT_FLOW, uuid=5), "node_name": "kind-worker", "time": AGENT_FLOW["time"]}
    agent = FakeAgent([LINES[0], bad, LINES[1]])
    with ObserverServer(agent, "127.0.0.1:0") as srv, grpc.insecure_channel(srv.address) as ch:
        got = get_flows(observer_pb2_grpc.ObserverStub(ch))
    assert uuids(got) == [LINES[0]["flow"]["uuid"], LINES[1]["flow"]["uuid"]]


# ---- GetFlows: follow --------------------------------------------------------------------------


def _new_line(uuid: str, verdict: str = "FORWARDED") -> JSON:
    flow = dict(AGENT_FLOW, uuid=uuid, verdict=verdict, time=format_rfc3339_proto(time.time_ns()))
    if verdict != "DROPPED":
        flow.pop("drop_reason_desc")
        flow.pop("drop_reason")
        flow["event_type"] = {"type": 5}
        flow["is_reply"] = False
    return {"flow": flow, "node_name": flow["node_name"], "time": flow["time"]}


def _wait_subscribed(agent: FakeAgent, n: int = 1) -> None:
    deadline = time.monotonic() + 5
    while len(agent.subscribers) < n:
        assert time.monotonic() < deadline, "the follower never subscribed"
        time.sleep(0.01)


def test_follow_streams_new_flows_that_pass_the_filters(
    stub: observer_pb2_grpc.ObserverStub, agent: FakeAgent
) -> None:
    dropped = flow_pb2.FlowFilter(verdict=[flow_pb2.DROPPED])
    stream = stub.GetFlows(observer_pb2.GetFlowsRequest(number=1, follow=True, whitelist=[dropped]))
    first = next(stream)
    assert first.flow.uuid == AGENT_FLOW["uuid"]  # the last DROPPED flow of the ring
    _wait_subscribed(agent)
    agent.publish(_new_line("new-forwarded"))
    agent.publish(_new_line("new-dropped", "DROPPED"))
    got = next(stream)
    assert got.flow.uuid == "new-dropped"
    assert got.flow.verdict == flow_pb2.DROPPED
    stream.cancel()
    deadline = time.monotonic() + 5
    while agent.subscribers:  # the call unsubscribes when the client goes away
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_follow_alone_starts_with_new_flows(
    stub: observer_pb2_grpc.ObserverStub, agent: FakeAgent
) -> None:
    stream = stub.GetFlows(observer_pb2.GetFlowsRequest(follow=True))
    _wait_subscribed(agent)
    agent.publish(_new_line("after-the-call"))
    assert next(stream).flow.uuid == "after-the-call"
    stream.cancel()


def test_a_follower_that_falls_behind_gets_a_lost_event(agent: FakeAgent) -> None:
    with (
        ObserverServer(agent, "127.0.0.1:0", follow_queue=1) as srv,
        grpc.insecure_channel(srv.address) as ch,
    ):
        stream = observer_pb2_grpc.ObserverStub(ch).GetFlows(
            observer_pb2.GetFlowsRequest(follow=True)
        )
        _wait_subscribed(agent)
        # Publish 20 lines in one go (no thread switch meanwhile): the queue holds one.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1.0)
        try:
            for i in range(20):
                agent.publish(_new_line(f"burst-{i}"))
        finally:
            sys.setswitchinterval(interval)
        flow = next(stream)
        lost = next(stream)
        stream.cancel()
    assert flow.flow.uuid == "burst-0"
    assert lost.WhichOneof("response_types") == "lost_events"
    assert lost.lost_events.source == flow_pb2.HUBBLE_RING_BUFFER
    assert lost.lost_events.num_events_lost == 19


def test_events_the_agent_lost_are_reported_to_followers(
    stub: observer_pb2_grpc.ObserverStub, agent: FakeAgent
) -> None:
    agent.lost = 3  # lost before the call: not this stream's
    stream = stub.GetFlows(observer_pb2.GetFlowsRequest(follow=True))
    _wait_subscribed(agent)
    agent.lost = 10
    got = next(stream)
    stream.cancel()
    assert got.lost_events.source == flow_pb2.PERF_EVENT_RING_BUFFER
    assert got.lost_events.num_events_lost == 7


def test_stop_ends_followers(agent: FakeAgent) -> None:
    srv = ObserverServer(agent, "127.0.0.1:0").start()
    ended = threading.Event()
    received: list[str] = []
    errors: list[grpc.StatusCode] = []

    def follow() -> None:
        with grpc.insecure_channel(srv.address) as ch:
            stub = observer_pb2_grpc.ObserverStub(ch)
            try:
                for r in stub.GetFlows(observer_pb2.GetFlowsRequest(follow=True)):
                    received.append(r.flow.uuid)
            except grpc.RpcError as exc:
                errors.append(exc.code())
        ended.set()

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    _wait_subscribed(agent)
    agent.publish(_new_line("before-stop"))
    deadline = time.monotonic() + 5
    while not received:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    started = time.monotonic()
    srv.stop(grace=2)
    assert ended.wait(5), "the follower did not end"
    assert time.monotonic() - started < 2
    assert received == ["before-stop"]
    assert errors == []  # the stream ended, it was not torn down
    assert agent.subscribers == []


# ---- ServerStatus, health, addresses -----------------------------------------------------------


def test_server_status_counts_the_ring_and_the_nodes() -> None:
    now_lines = [_new_line(f"recent-{i}") for i in range(30)]
    agent = FakeAgent(
        [*RING, *now_lines],
        nodes={"a": Node(reader=object()), "b": Node(reader=None), "c": Node(object())},
    )
    agent.seen = 1000
    with ObserverServer(agent, "127.0.0.1:0") as srv, grpc.insecure_channel(srv.address) as ch:
        st = observer_pb2_grpc.ObserverStub(ch).ServerStatus(observer_pb2.ServerStatusRequest())
    assert st.num_flows == len(RING) + 30
    assert st.max_flows == 4095
    assert st.seen_flows == 1000
    assert 5e9 <= st.uptime_ns < 60e9
    assert st.num_connected_nodes.value == 2
    assert st.num_unavailable_nodes.value == 1
    assert list(st.unavailable_nodes) == ["b"]
    assert st.version.startswith("ciliary-")
    assert st.flows_rate == pytest.approx(30 / 60)


def test_health_reports_the_observer_serving(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    resp = health.Check(health_pb2.HealthCheckRequest(service=HEALTH_SERVICE), timeout=5)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    "address", ["0.0.0.0:4245", ":4245", "10.0.0.1:4245", "[::]:4245", "example.com:4245"]
)
def test_non_loopback_addresses_are_refused(agent: FakeAgent, address: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        ObserverServer(agent, address)
    assert check_address(address, allow_remote=True) == address


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1:4245", "127.3.4.5:1", "[::1]:4245", "localhost:4245", "unix:/run/hubble.sock"],
)
def test_loopback_addresses_are_accepted(address: str) -> None:
    assert check_address(address) == address


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.1:http", "::1:4245", "127.0.0.1:70000"])
def test_malformed_addresses_are_refused(address: str) -> None:
    with pytest.raises(ValueError, match="invalid address"):
        check_address(address)


def test_a_port_in_use_is_an_error(server: ObserverServer, agent: FakeAgent) -> None:
    with pytest.raises(OSError, match="cannot serve"):
        ObserverServer(agent, server.address).start()


def test_serves_on_a_unix_socket(agent: FakeAgent, tmp_path: Path) -> None:
    sock = tmp_path / "hubble.sock"
    with ObserverServer(agent, f"unix:{sock}") as srv, grpc.insecure_channel(srv.address) as ch:
        got = list(
            observer_pb2_grpc.ObserverStub(ch).GetFlows(observer_pb2.GetFlowsRequest(number=1))
        )
    assert uuids(got) == [AGENT_FLOW["uuid"]]
