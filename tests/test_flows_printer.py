"""hubble observe output: the compact line (against the documented examples), dict, table, json."""

from __future__ import annotations

from pathlib import Path

import pytest

from ciliary.flows.codec import read_flows
from ciliary.flows.model import Flow
from ciliary.flows.printer import Printer, PrinterOptions, compact_line, tabwrite

DATA = Path(__file__).parent / "data" / "flows"
SAMPLES = DATA / "hand-written-samples.jsonl"
GOLDEN = (DATA / "hand-written-samples.compact.txt").read_text().splitlines()
FLOWS = list(read_flows(SAMPLES))


@pytest.mark.parametrize("n", range(1, len(GOLDEN) + 1))
def test_compact_line_matches_documented_example(n: int) -> None:
    assert compact_line(FLOWS[n - 1]) == GOLDEN[n - 1]


def test_print_node_name_example() -> None:
    line = compact_line(FLOWS[12], PrinterOptions(print_node_name=True))
    assert line == (
        "Mar 14 09:12:03.804 [prod-east/worker-a1]: shop/reporting-29184720-7xk2d:39412 "
        "(ID:19345) <> payments/payments-api-84c6d5b7f9-tz6vh:8443 (ID:57002) "
        "policy-verdict:none INGRESS DENIED (TCP Flags: SYN)"
    )


def test_numeric_shows_ips() -> None:
    assert compact_line(FLOWS[2], PrinterOptions(ip_translation=False)) == (
        "Mar 14 09:12:03.122: 10.42.1.17:41922 (ID:48213) <- 10.42.2.9:53 (ID:51874) "
        "dns-response proxy FORWARDED "
        '(DNS Answer "198.51.100.17,198.51.100.18" TTL: 60 (Proxy api.stripe.com. A))'
    )


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("StampMilli", "Mar 14 09:12:03.118"),
        ("RFC3339", "2026-03-14T09:12:03Z"),
        ("RFC3339Milli", "2026-03-14T09:12:03.118Z"),
        ("RFC3339Micro", "2026-03-14T09:12:03.118204Z"),
        ("RFC3339Nano", "2026-03-14T09:12:03.118204844Z"),
        ("YearMonthDay", "2026-03-14"),
        ("YearMonthDayHour", "2026-03-14T09Z"),
        ("YearMonthDayHourMinute", "2026-03-14T09:12Z"),
        ("RFC1123Z", "Sat, 14 Mar 2026 09:12:03 +0000"),
        ("nonsense", "Mar 14 09:12:03.118"),
    ],
)
def test_time_formats(fmt: str, text: str) -> None:
    assert compact_line(FLOWS[0], PrinterOptions(time_format=fmt)).startswith(text + ": ")


def _flow(**fields: object) -> Flow:
    base: dict[str, object] = {
        "time": "2026-01-05T07:08:09.000000001Z",
        "verdict": "FORWARDED",
        "IP": {"source": "10.0.0.1", "destination": "10.0.0.2", "ipVersion": "IPv4"},
        "l4": {"TCP": {"source_port": 1000, "destination_port": 80}},
        "source": {"identity": 300},
        "destination": {"identity": 2},
        "event_type": {"type": 4, "sub_type": 3},
        "is_reply": False,
        "Summary": "TCP Flags: SYN",
    }
    base.update(fields)
    return Flow.build({k: v for k, v in base.items() if v is not None})


def test_compact_edge_cases() -> None:
    assert compact_line(_flow()) == (
        "Jan  5 07:08:09.000: 10.0.0.1:1000 (ID:300) -> 10.0.0.2:80 (world) to-stack "
        "FORWARDED (TCP Flags: SYN)"
    )
    # IPv6 with port is bracketed
    v6 = _flow(IP={"source": "fd00::1", "destination": "fd00::2", "ipVersion": "IPv6"})
    assert "[fd00::1]:1000 (ID:300) -> [fd00::2]:80" in compact_line(v6)
    # no IP: MAC addresses, no ports
    eth = _flow(IP=None, ethernet={"source": "aa:bb", "destination": "cc:dd"})
    assert ": aa:bb (ID:300) -> cc:dd (world)" in compact_line(eth)
    # no time, no event type, unknown drop/trace codes
    assert compact_line(_flow(time=None, event_type=None)).startswith("N/A: ")
    assert " UNKNOWN FORWARDED " in compact_line(_flow(event_type=None))
    assert " 77 FORWARDED " in compact_line(_flow(event_type={"type": 4, "sub_type": 77}))
    assert " 250 DROPPED " in compact_line(
        _flow(verdict="DROPPED", event_type={"type": 1, "sub_type": 250})
    )
    # IP trace id and auth decorate the summary
    line = compact_line(
        _flow(ip_trace_id={"trace_id": "99"}, auth_type="SPIRE", event_type={"type": 5})
    )
    assert line.endswith("(IP Trace ID: 99; TCP Flags: SYN; Auth: SPIRE)")
    assert " policy-verdict:none TRAFFIC_DIRECTION_UNKNOWN ALLOWED " in line
    # a service's namespace replaces the endpoint's; pod names win over services
    svc = _flow(
        source={"namespace": "a", "pod_name": "p", "identity": 300},
        source_service={"namespace": "b", "name": "s"},
    )
    assert ": b/p:1000 (ID:300)" in compact_line(svc)
    # DNS names when there is no pod or service; terminal escapes neutralised
    named = _flow(destination_names=["x.example", "y.example"], Summary="a\x1bb\rc")
    assert "-> x.example,y.example:80 (world)" in compact_line(named)
    assert compact_line(named).endswith("(a^[b\\rc)")
    # L7 without a record; capture events
    assert " l7-sample " in compact_line(_flow(l7={"type": "SAMPLE"}))
    cap = _flow(event_type={"type": 3}, debug_capture_point="DBG_CAPTURE_DELIVERY")
    assert " DBG_CAPTURE_DELIVERY " in compact_line(cap)


def test_invalid_time_raises() -> None:
    with pytest.raises(ValueError, match="invalid timestamp"):
        compact_line(_flow(time="yesterday"))


def test_dict_output() -> None:
    p = Printer("dict", PrinterOptions(print_node_name=True))
    first = p.format(FLOWS[0])
    second = p.format(FLOWS[1])
    assert first == [
        "  TIMESTAMP: Mar 14 09:12:03.118",
        "       NODE: prod-east/worker-a1",
        "     SOURCE: shop/frontend-6d9f7c8b5d-x2k8p:41922",
        "DESTINATION: kube-system/coredns-5d78c9869d-8fjwz:53",
        "       TYPE: policy-verdict:L3-L4 EGRESS",
        "    VERDICT: ALLOWED",
        "    SUMMARY: UDP",
    ]
    assert second[0] == "------------" and len(second) == 8


def test_table_output() -> None:
    p = Printer("table")
    assert p.format(FLOWS[0]) == [] and p.format(FLOWS[13]) == []
    lines = p.finish()
    assert lines[0].split() == ["TIMESTAMP", "SOURCE", "DESTINATION", "TYPE", "VERDICT", "SUMMARY"]
    assert lines[1] == (
        "Mar 14 09:12:03.118   shop/frontend-6d9f7c8b5d-x2k8p:41922   "
        "kube-system/coredns-5d78c9869d-8fjwz:53       policy-verdict:L3-L4 EGRESS   "
        "ALLOWED   UDP"
    )
    assert lines[2].startswith("Mar 14 09:12:03.804   shop/reporting-29184720-7xk2d:39412")
    # columns line up: each column is as wide as its widest cell plus 3
    starts = [lines[0].index(h) for h in ("SOURCE", "DESTINATION", "TYPE", "VERDICT")]
    assert starts == [22, 61, 107, 137]
    assert list(tabwrite([["a", "bb", "c"], ["dddd", "e", "f"]])) == [
        "a      bb   c",
        "dddd   e    f",
    ]


def test_json_output_is_the_input_line() -> None:
    lines = SAMPLES.read_text().splitlines()
    p = Printer("json")
    assert [p.format(f)[0] for f in FLOWS] == lines
    bare = Flow(dict(FLOWS[20].raw))  # a bare flow is printed in the -o json envelope
    assert Printer("jsonpb").format(bare) == [lines[20]]


@pytest.mark.parametrize(
    "path", sorted((DATA / "hubble-otel").glob("*.json")), ids=lambda p: p.name
)
@pytest.mark.parametrize("output", ["compact", "dict", "table", "json"])
def test_every_format_renders_real_captures(path: Path, output: str) -> None:
    p = Printer(output)
    lines = [line for f in read_flows(path, strict=True) for line in p.format(f)] + p.finish()
    assert lines
    if output == "compact":
        assert all(" -> " in x or " <- " in x or " <> " in x for x in lines)
