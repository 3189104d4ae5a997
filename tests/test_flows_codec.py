"""Reading and writing Hubble flow files: round trips, old spellings, bad lines, stdin."""

from __future__ import annotations

import gzip
import io
import sys
from pathlib import Path

import orjson
import pytest

from ciliary.flows import schema
from ciliary.flows.codec import (
    FlowReadError,
    ReadStats,
    flow_line,
    go_json,
    parse_flow_line,
    read_flows,
    write_flows,
)
from ciliary.flows.model import Flow

DATA = Path(__file__).parent / "data" / "flows"
SAMPLES = DATA / "hand-written-samples.jsonl"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "reference" / "flows"


def _flow_files() -> list[Path]:
    files = [SAMPLES, *sorted((DATA / "hubble-otel").glob("*.json"))]
    if SHARED.is_dir():  # the reference copy itself, when it is beside the repository
        files += [SHARED / "hand-written-samples.jsonl"]
        files += sorted((SHARED / "hubble-otel").glob("*.json"))
    return files


FLOW_FILES = _flow_files()


@pytest.mark.parametrize("path", FLOW_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_round_trip_every_reference_file(path: Path, tmp_path: Path) -> None:
    stats = ReadStats()
    flows = list(read_flows(path, stats=stats, strict=True))
    assert flows and stats.bad == 0 and stats.non_flow == 0
    assert stats.flows == stats.lines == len(flows)
    out = tmp_path / "out.jsonl"
    assert write_flows(flows, out) == len(flows)
    # byte-for-byte: same keys, same order, same values, Go's escaping (\u0026)
    assert out.read_bytes() == path.read_bytes()
    again = list(read_flows(out, strict=True))
    assert again == flows
    assert [f.envelope for f in again] == [f.envelope for f in flows]


@pytest.mark.parametrize("path", FLOW_FILES[:10], ids=lambda p: p.name)
def test_every_flow_is_typed_and_in_declaration_order(path: Path) -> None:
    for f in read_flows(path):
        assert f.validate() == []
        assert list(schema.order_fields(f.raw)) == list(f.raw)
        assert f.unknown_fields == {}
        assert f.time_ns is not None


def test_model_fields() -> None:
    flows = list(read_flows(SAMPLES))
    f = flows[5]  # frontend -> cart egress policy verdict
    assert f.verdict == "FORWARDED" and f.type == "L3_L4"
    assert f.uuid == "4d45779e-e0f5-4efc-ad65-adfa907c6345"
    assert f.emitter is not None and f.emitter.version == "1.19.4"
    assert f.ip is not None and f.ip.ip_version == "IPv4" and f.ip.source == "10.42.1.17"
    assert f.l4 is not None and f.l4.protocol == "TCP" and f.l4.ports() == (52344, 8080)
    assert f.l4.TCP is not None and f.l4.TCP.flags is not None and f.l4.TCP.flags.SYN
    assert f.source is not None and f.source.ID == 1834 and f.source.identity == 48213
    assert f.source.cluster_name == "prod-east" and f.source.namespace == "shop"
    assert f.source.workloads[0].kind == "Deployment"
    assert f.destination is not None and f.destination.ID == 0
    assert f.node_labels[0] == "kubernetes.io/arch=amd64"
    assert f.event_type is not None and (f.event_type.type, f.event_type.sub_type) == (5, 0)
    assert f.traffic_direction == "EGRESS" and f.policy_match_type == 2
    assert f.is_reply is False and f.reply is False
    (policy,) = f.egress_allowed_by
    assert (policy.name, policy.namespace, policy.kind, policy.revision) == (
        "frontend-egress",
        "shop",
        "CiliumNetworkPolicy",
        57,
    )
    assert f.summary == "TCP Flags: SYN"
    assert f.timestamp is not None and f.timestamp.microsecond == 334257
    assert f.time_ns == 1773479523334257258

    drop = flows[13]
    assert drop.is_reply is None and drop.drop_reason == 133
    assert drop.drop_reason_desc == "POLICY_DENIED" and drop.file is not None
    assert drop.file.line == 2081
    deny = flows[15]
    assert deny.egress_denied_by[0].kind == "CiliumClusterwideNetworkPolicy"
    assert deny.policy_log == ["smtp-blocked"]
    http = flows[21]
    assert http.l7 is not None and http.l7.type == "RESPONSE" and http.l7.record == "http"
    assert http.l7.latency_ns > 0 and http.l7.http is not None and http.l7.http.code == 200
    assert http.trace_context is not None
    assert http.trace_context.parent_trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    dns = flows[2]
    assert dns.l7 is not None and dns.l7.dns is not None
    assert dns.l7.dns.ips == ["198.51.100.17", "198.51.100.18"] and dns.l7.dns.ttl == 60
    kafka = flows[25]
    assert kafka.l7 is not None and kafka.l7.kafka is not None
    assert kafka.l7.kafka.correlation_id == 8841
    sock = flows[33]
    assert sock.sock_xlate_point == "SOCK_XLATE_POINT_PRE_DIRECTION_FWD"
    assert sock.socket_cookie == 40961 and sock.cgroup_id == 11843
    assert sock.destination_service is not None and sock.destination_service.name == "cart"
    assert flows[19].proxy_port == 14327
    assert flows[6].interface is not None and flows[6].interface.name == "cilium_vxlan"
    assert flows[28].trace_reason == "NEW"
    assert flows[11].l4 is not None and flows[11].l4.ICMPv4 is not None
    assert flows[11].l4.ICMPv4.type == 8
    # absent fields read as their proto defaults
    assert f.auth_type == "DISABLED" and f.debug_capture_point == "DBG_CAPTURE_POINT_UNKNOWN"
    assert f.tunnel is None and f.aggregate is None and f.ip_trace_id is None


def test_old_hubble_capture_has_reply_but_no_is_reply() -> None:
    f = next(read_flows(DATA / "hubble-otel" / "basic-sample-10-flows.json"))
    assert f.reply is True and f.is_reply is None
    assert f.trace_observation_point == "TO_STACK" and f.uuid == ""


def _line(obj: object) -> bytes:
    return orjson.dumps(obj) + b"\n"


def test_envelopes_bare_flows_and_non_flow_lines(tmp_path: Path) -> None:
    lines = SAMPLES.read_bytes().splitlines(keepends=True)
    first = orjson.loads(lines[0])
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf"  # a BOM is tolerated
        + lines[0]
        + b"\n"  # blank line
        + _line({"lost_events": {"source": "PERF_EVENT_RING_BUFFER", "num_events_lost": "3"}})
        + _line({"node_status": {"state_change": "NODE_CONNECTED"}, "node_name": "n"})
        + _line({"agent_event": {"type": "AGENT_STARTED"}})
        + _line(first["flow"])  # bare flow (HUBBLE_COMPAT=legacy-json-output)
        + _line({"time": "2026-03-14T09:12:03Z"})  # an empty response
        + lines[1]
    )
    stats = ReadStats()
    flows = list(read_flows(path, stats=stats))
    assert len(flows) == 3 and stats.flows == 3 and stats.bad == 0
    assert stats.non_flow == 4 and stats.blank == 1 and stats.lines == 7
    assert stats.non_flow_kinds == {
        "lost_events": 1,
        "node_status": 1,
        "agent_event": 1,
        "empty": 1,
    }
    assert flows[0] == flows[1]  # enveloped and bare forms hold the same flow
    assert flows[0].has_envelope and not flows[1].has_envelope
    assert flow_line(flows[1]) == go_json(first["flow"]) + b"\n"  # bare stays bare
    assert flow_line(flows[1], "envelope") == lines[0]  # the envelope hubble writes


def test_bad_lines_are_counted_and_reported(tmp_path: Path) -> None:
    good = SAMPLES.read_bytes().splitlines(keepends=True)[:2]
    path = tmp_path / "bad.jsonl"
    path.write_bytes(good[0] + b"{not json\n" + b"[1, 2]\n" + b'{"flow": "x"}\n' + good[1])
    seen = []
    stats = ReadStats()
    flows = list(read_flows(path, stats=stats, on_bad=seen.append))
    assert len(flows) == 2
    assert stats.bad == 3 and stats.flows == 2 and stats.lines == 5
    assert [(b.path, b.line) for b in stats.bad_lines] == [
        (str(path), 2),
        (str(path), 3),
        (str(path), 4),
    ]
    assert seen == stats.bad_lines
    assert str(stats.bad_lines[0]).startswith(f"{path}:2: invalid JSON")
    with pytest.raises(FlowReadError) as err:
        list(read_flows(path, strict=True))
    assert err.value.line == 2 and str(err.value).startswith(f"{path}:2: ")


def test_validate_checks_field_types(tmp_path: Path) -> None:
    good = orjson.loads(SAMPLES.read_bytes().splitlines()[0])
    broken = orjson.loads(orjson.dumps(good))
    broken["flow"]["source"] = "frontend"
    broken["flow"]["verdict"] = {"x": 1}
    path = tmp_path / "typed.jsonl"
    path.write_bytes(_line(good) + _line(broken))
    assert len(list(read_flows(path))) == 2  # lenient by default: types checked lazily
    stats = ReadStats()
    assert len(list(read_flows(path, validate=True, stats=stats))) == 1
    assert stats.bad == 1 and "source" in stats.bad_lines[0].reason
    with pytest.raises(FlowReadError, match=r":2: .*source"):
        list(read_flows(path, strict=True))


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    data = SAMPLES.read_bytes()

    class FakeStdin:
        buffer = io.BytesIO(data)

    monkeypatch.setattr(sys, "stdin", FakeStdin())
    stats = ReadStats()
    flows = list(read_flows("-", stats=stats))
    assert len(flows) == 41 and stats.flows == 41


def test_stdin_bad_line_named_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeStdin:
        buffer = io.BytesIO(b"nope\n")

    monkeypatch.setattr(sys, "stdin", FakeStdin())
    with pytest.raises(FlowReadError, match=r"^<stdin>:1: "):
        list(read_flows("-", strict=True))


def test_gzip_files(tmp_path: Path) -> None:
    flows = list(read_flows(SAMPLES))
    out = tmp_path / "events.log.gz"
    write_flows(flows, out)
    assert gzip.decompress(out.read_bytes()) == SAMPLES.read_bytes()
    assert list(read_flows(out)) == flows


def test_streams_and_several_files(tmp_path: Path) -> None:
    buf = io.BytesIO()
    write_flows(read_flows([SAMPLES, SAMPLES]), buf)
    assert buf.getvalue() == SAMPLES.read_bytes() * 2
    buf.seek(0)
    assert len(list(read_flows(buf))) == 82


def test_camel_case_and_enum_numbers_are_canonicalized(tmp_path: Path) -> None:
    line = SAMPLES.read_bytes().splitlines()[13]  # a drop event
    canonical = Flow.from_dict(orjson.loads(line))

    def camel(obj: object) -> object:
        if isinstance(obj, dict):
            return {schema.json_name(k): camel(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [camel(v) for v in obj]
        return obj

    env = camel(orjson.loads(line))
    assert isinstance(env, dict)
    env["flow"]["verdict"] = 2
    env["flow"]["Type"] = 1
    env["flow"]["dropReasonDesc"] = 133
    env["flow"]["trafficDirection"] = 1
    env["flow"]["IP"]["ipVersion"] = 1
    path = tmp_path / "camel.jsonl"
    path.write_bytes(_line(env))
    (flow,) = read_flows(path, strict=True)
    assert flow == canonical
    assert flow.verdict == "DROPPED" and flow.drop_reason_desc == "POLICY_DENIED"
    assert flow.envelope["node_name"] == "prod-east/worker-a1"
    # written back in the canonical spelling: re-reading gives the same flows
    out = tmp_path / "out.jsonl"
    write_flows([flow], out)
    assert out.read_bytes() == line + b"\n"


def test_legacy_go_struct_json() -> None:
    legacy = {
        "time": {"seconds": 1623862333, "nanos": 136834446},
        "verdict": 1,
        "IP": {"source": "10.0.2.16", "destination": "10.0.2.1", "ipVersion": 1},
        "l4": {"Protocol": {"TCP": {"source_port": 15020, "destination_port": 42044}}},
        "l7": {"type": 2, "latency_ns": 1200, "Record": {"Http": {"code": 200}}},
        "Type": 2,
        "is_reply": {"value": True},
        "event_type": {"type": 129},
        "socket_cookie": 7,
    }
    f = Flow.from_dict(legacy)
    assert f.time == "2021-06-16T16:52:13.136834446Z"
    assert f.verdict == "FORWARDED" and f.type == "L7" and f.is_reply is True
    assert f.l4 is not None and f.l4.ports() == (15020, 42044)
    assert f.l7 is not None and f.l7.type == "RESPONSE" and f.l7.http is not None
    assert f.raw["l7"]["latency_ns"] == "1200" and f.socket_cookie == 7
    assert f.validate() == []


def test_unknown_fields_survive(tmp_path: Path) -> None:
    obj = orjson.loads(SAMPLES.read_bytes().splitlines()[0])
    obj["flow"]["future_field"] = {"a": [1, 2]}
    obj["flow"]["source"]["new_endpoint_field"] = "x"
    obj["extra_top"] = True
    line = go_json(obj) + b"\n"
    path = tmp_path / "future.jsonl"
    path.write_bytes(line)
    (flow,) = read_flows(path, strict=True)
    assert flow.unknown_fields == {"future_field": {"a": [1, 2]}}
    out = tmp_path / "out.jsonl"
    write_flows([flow], out)
    assert out.read_bytes() == line


def test_build_writes_what_hubble_writes() -> None:
    line = SAMPLES.read_bytes().splitlines()[0]
    env = orjson.loads(line)
    shuffled = dict(reversed(list(env["flow"].items())))
    f = Flow.build(shuffled)
    assert go_json(f.envelope) == line


def test_go_escaping() -> None:
    assert go_json({"u": "a&b<c>d\u2028"}) == b'{"u":"a\\u0026b\\u003cc\\u003ed\\u2028"}'
    assert orjson.loads(go_json({"u": "a&b<c>"})) == {"u": "a&b<c>"}


def test_parse_flow_line() -> None:
    line = SAMPLES.read_bytes().splitlines()[0]
    assert parse_flow_line(line).uuid == "ae4bff34-cbb1-4618-8f4e-6ca45622ec1a"
    with pytest.raises(ValueError, match="not a flow"):
        parse_flow_line('{"lost_events": {}}')
    with pytest.raises(ValueError, match="invalid JSON"):
        parse_flow_line("{")
