"""Generates examples/seed/flows.json: a day of Hubble flows (`hubble observe -o json`) in the
seed example cluster, recorded before any default-deny policy. Deterministic.

    .venv/bin/python examples/seed/generate_flows.py > examples/seed/flows.json
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import orjson
import yaml

HERE = Path(__file__).parent
NODE_OF: dict[str, str] = {}
PODS: dict[str, dict[str, Any]] = {}
IDENT: dict[str, int] = {}


def _load() -> None:
    doc = yaml.safe_load((HERE / "cluster.yaml").read_text())
    ns_labels = {i["metadata"]["name"]: i["metadata"].get("labels", {}) for i in doc["items"] if i["kind"] == "Namespace"}
    next_id = 20000
    for it in doc["items"]:
        if it["kind"] != "Pod":
            continue
        m = it["metadata"]
        key = f"{m['namespace']}/{m['name']}"
        labels = {k: v for k, v in m.get("labels", {}).items() if k not in ("pod-template-hash", "controller-revision-hash", "statefulset.kubernetes.io/pod-name")}
        lbls = [f"k8s:{k}={v}" for k, v in labels.items()]
        lbls += [f"k8s:io.cilium.k8s.namespace.labels.{k}={v}" for k, v in ns_labels[m["namespace"]].items()]
        lbls += [
            "k8s:io.cilium.k8s.policy.cluster=default",
            f"k8s:io.cilium.k8s.policy.serviceaccount={it['spec']['serviceAccountName']}",
            f"k8s:io.kubernetes.pod.namespace={m['namespace']}",
        ]
        ident_key = (m["namespace"], tuple(sorted(labels.items())))
        if ident_key not in IDENT:
            next_id += 17
            IDENT[str(ident_key)] = next_id
        owner = labels.get("app") or labels.get("k8s-app") or m["name"]
        kind = "StatefulSet" if m["name"].endswith("-0") else "Deployment"
        PODS[key] = {
            "ip": it["status"]["podIP"],
            "ep": {
                "ID": 1000 + len(PODS),
                "identity": IDENT[str(ident_key)],
                "cluster_name": "default",
                "namespace": m["namespace"],
                "labels": sorted(lbls),
                "pod_name": m["name"],
                "workloads": [{"name": owner if kind == "Deployment" else m["name"][:-2], "kind": kind}],
            },
        }
        NODE_OF[key] = it["spec"]["nodeName"]


def pod(prefix: str) -> str:
    return next(k for k in PODS if k.startswith(prefix))


WORLD = {"identity": 2, "labels": ["reserved:world"]}
rng = random.Random(7)
T0 = 1_775_000_000  # 2026-04-01
out: list[bytes] = []


def ts(t: float) -> str:
    from datetime import UTC, datetime

    d = datetime.fromtimestamp(t, UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int((t % 1) * 1e9):09d}Z"


def emit(t: float, src: str | None, dst: str | None, proto: str, dport: int, *, sip: str | None = None,
         dip: str | None = None, reply: bool = False, l7: dict[str, Any] | None = None, sport: int | None = None,
         flags: dict[str, bool] | None = None, verdict: str = "FORWARDED", direction: str = "INGRESS") -> None:
    s = PODS[src] if src else None
    d = PODS[dst] if dst else None
    sport = sport or rng.randint(32768, 60999)
    l4: dict[str, Any] = {proto: {"source_port": sport, "destination_port": dport}}
    if proto == "TCP":
        l4[proto]["flags"] = flags or {"SYN": True}
    node = NODE_OF[src] if src else NODE_OF[dst or ""]
    f: dict[str, Any] = {
        "time": ts(t),
        "uuid": f"{rng.getrandbits(128):032x}",
        "verdict": "REDIRECTED" if l7 is None and verdict == "REDIRECTED" else verdict,
        "IP": {"source": s["ip"] if s else sip, "destination": d["ip"] if d else dip, "ipVersion": "IPv4"},
        "l4": l4,
        "source": s["ep"] if s else WORLD,
        "destination": d["ep"] if d else WORLD,
        "Type": "L7" if l7 else "L3_L4",
        "node_name": node,
        "event_type": {"type": 129} if l7 else {"type": 4},
        "traffic_direction": direction,
        "is_reply": reply,
    }
    if l7:
        f["l7"] = l7
        if "dns" in l7:
            q = l7["dns"]["query"]
            f["Summary"] = f"DNS Query {q} A" if l7["type"] == "REQUEST" else f"DNS Answer \"{','.join(l7['dns']['ips'])}\" TTL: 300 (Proxy {q} A)"
        else:
            h = l7["http"]
            f["Summary"] = f"{h['protocol']} {h['method']} {h['url']}"
    else:
        f["trace_observation_point"] = "TO_ENDPOINT"
        if proto == "TCP":
            f["Summary"] = "TCP Flags: " + ", ".join(k for k, v in l4[proto]["flags"].items() if v)
        else:
            f["Summary"] = proto
    out.append(orjson.dumps({"flow": f, "node_name": node, "time": f["time"]}))


def tcp(t: float, src: str, dst: str, port: int, **kw: Any) -> None:
    sport = rng.randint(32768, 60999)
    emit(t, src, dst, "TCP", port, sport=sport, **kw)
    emit(t + 0.0004, dst, src, "TCP", sport, sport=port, reply=True, flags={"SYN": True, "ACK": True})


def http(t: float, src: str, dst: str, port: int, method: str, path: str) -> None:
    tcp(t, src, dst, port, verdict="FORWARDED")
    emit(t + 0.001, src, dst, "TCP", port, flags={"ACK": True, "PSH": True}, l7={
        "type": "REQUEST", "http": {"method": method, "url": f"http://{dst.split('/')[1].split('-')[0]}:{port}{path}", "protocol": "HTTP/1.1"}})


def dns(t: float, src: str, name: str, ips: list[str]) -> None:
    server = pod("kube-system/coredns")
    sport = rng.randint(32768, 60999)
    emit(t, src, server, "UDP", 53, sport=sport, direction="EGRESS", l7={"type": "REQUEST", "dns": {"query": name + ".", "qtypes": ["A"], "observation_source": "proxy"}})
    emit(t + 0.002, server, src, "UDP", sport, sport=53, reply=True, direction="EGRESS", l7={
        "type": "RESPONSE", "dns": {"query": name + ".", "ips": ips, "ttl": 300, "rcode": 0, "qtypes": ["A"], "rrtypes": ["A"], "observation_source": "proxy"}})


def main() -> None:
    _load()
    fe, be, oa, inv = pod("shop/frontend"), pod("shop/backend"), pod("shop/order-api"), pod("shop/inventory")
    prom, kafka, osvc, ssvc = pod("monitoring/prometheus"), pod("streaming/kafka"), pod("streaming/order-service"), pod("streaming/settlement")
    pgw, papi, _wiki = pod("payments/pg-gateway"), pod("payments/payments-api"), pod("internal-tools/wiki")
    gw, card, ledger = pod("gateway/api-gateway"), pod("cde-payments/card-processor"), pod("cde-db/ledger-db")
    t = float(T0)
    for i in range(24):  # one day, hourly batches
        t = T0 + i * 3600 + rng.random()
        http(t, fe, be, 8080, "GET", "/api/cart")
        http(t + 1, fe, oa, 8080, "GET", f"/api/v1/orders/{100 + i}")
        tcp(t + 2, prom, be, 9090)
        tcp(t + 3, oa, inv, 50051)
        tcp(t + 4, osvc, kafka, 9092)
        tcp(t + 5, ssvc, kafka, 9092)
        dns(t + 6, pgw, "api.stripe.com", ["54.187.10.20"])
        emit(t + 6.01, pgw, None, "TCP", 443, dip="54.187.10.20", direction="EGRESS")
        tcp(t + 7, papi, pgw, 8443)          # payments-api -> pg-gateway: same namespace
        dns(t + 8, papi, "pg-gateway.payments.svc.cluster.local", [PODS[pgw]["ip"]])
        tcp(t + 9, gw, card, 8443)
        tcp(t + 10, card, ledger, 5432)
        tcp(t + 11, prom, papi, 9090)         # monitoring scrapes payments (cross-namespace)
    # The nightly batch: payments-api exports to the shop backend once.
    tcp(T0 + 2 * 3600 + 30, papi, be, 8080)
    sys.stdout.buffer.write(b"\n".join(out) + b"\n")


if __name__ == "__main__":
    main()
