"""`ciliary replay` of L7 flows: every HTTP request is judged by the proxy rules that apply to
it. Replay shares the verdict of requests that differ only in headers no rule reads (request
ids); when a rule reads a header, each request is judged on its own.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from ciliary.workflows.replay import replay
from engine_helpers import engine, l7_cnp

CLIENT_IP, SERVER_IP = "10.0.1.1", "10.0.2.1"  # app/client, app/server (engine_helpers.STD_PODS)

PUBLIC = "http:\n- {method: GET, path: /public}\n"
NO_HEADER_RULES = l7_cnp("server-http", "ingress", "8080/TCP", PUBLIC)
HEADER_RULES = l7_cnp("server-http", "ingress", "8080/TCP", PUBLIC + '- {method: GET, path: /private, headers: ["X-Token: abc"]}')


def _request(n: int, path: str, headers: dict[str, str]) -> dict[str, object]:
    return {"flow": {
        "time": f"2026-04-01T08:00:{n:02d}.000000000Z", "verdict": "FORWARDED", "event_type": {"type": 129},
        "IP": {"source": CLIENT_IP, "destination": SERVER_IP, "ipVersion": "IPv4"},
        "l4": {"TCP": {"source_port": 40000 + n, "destination_port": 8080}},
        "source": {"namespace": "app", "pod_name": "client"},
        "destination": {"namespace": "app", "pod_name": "server"},
        "Type": "L7", "is_reply": False, "traffic_direction": "INGRESS",
        "l7": {"type": "REQUEST", "http": {
            "method": "GET", "url": f"http://server:8080{path}", "protocol": "HTTP/1.1",
            "headers": [{"key": k, "value": v} for k, v in headers.items()],
        }},
    }}


def _replay(tmp_path: Path, policy: str, requests: list[tuple[str, dict[str, str]]]) -> list[str]:
    f = tmp_path / "flows.json"
    f.write_bytes(b"\n".join(orjson.dumps(_request(i, p, h)) for i, (p, h) in enumerate(requests)))
    return [rf.predicted for rf in replay(engine(policy), [f])]


def test_requests_differing_in_unread_headers_are_judged_alike(tmp_path: Path) -> None:
    got = _replay(tmp_path, NO_HEADER_RULES, [
        ("/public", {"X-Request-Id": "1"}),
        ("/public", {"X-Request-Id": "2"}),
        ("/admin", {"X-Request-Id": "3"}),
        ("/public", {"X-Request-Id": "4", "User-Agent": "curl"}),
        ("/admin", {"X-Request-Id": "5"}),
    ])
    assert got == ["REDIRECTED", "REDIRECTED", "DROPPED", "REDIRECTED", "DROPPED"]


def test_requests_are_judged_on_the_headers_a_rule_reads(tmp_path: Path) -> None:
    got = _replay(tmp_path, HEADER_RULES, [
        ("/private", {"X-Token": "abc", "X-Request-Id": "1"}),
        ("/private", {"X-Token": "nope", "X-Request-Id": "2"}),
        ("/private", {"X-Request-Id": "3"}),
        ("/private", {"X-Token": "abc", "X-Request-Id": "4"}),
        ("/public", {"X-Token": "nope"}),
    ])
    assert got == ["REDIRECTED", "DROPPED", "DROPPED", "REDIRECTED", "REDIRECTED"]
