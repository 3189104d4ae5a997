"""Benchmark: `observe` over 1M Hubble L3/L4 flow lines vs. plain orjson parsing.

Generates a realistic, varied flow file (hubble `-o json` envelopes: trace, policy-verdict and
drop events; TCP/UDP/ICMP; several namespaces, pods, nodes, verdicts) in a temp directory,
then, each in a fresh process so that peak memory (ru_maxrss) is per phase:

* plain: `for line in file: orjson.loads(line)`;
* observe: `observe([file], --namespace payments --verdict DROPPED, -o compact)` with every
  output line written to /dev/null.

Prints flows/s, the observe/plain time ratio (target <= 1.5) and ru_maxrss; no assertions.
Usage: python bench/observe.py [N]   (default 1_000_000)
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from ciliary.flows.codec import go_json
from ciliary.flows.schema import MESSAGES, order_fields

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, for benchkit (see its docstring)
from benchkit import MiB, maxrss, plain_parse

NAMESPACES = {
    "shop": ["frontend", "cart", "catalog", "inventory", "orders-api", "reporting"],
    "payments": ["payments-api", "ledger", "fraud-check"],
    "kube-system": ["coredns", "metrics-server"],
    "streaming": ["kafka", "zookeeper"],
    "monitoring": ["prometheus", "grafana"],
}
NODES = [f"prod-east/worker-{c}{i}" for c in "abc" for i in range(1, 5)]
TRACE_POINTS = [(0, "TO_ENDPOINT"), (3, "TO_STACK"), (4, "TO_OVERLAY"), (5, "FROM_ENDPOINT")]
# Declaration position of the Flow fields: sub-messages are built in order below, so only the
# top level needs sorting (`order_fields` checks that on the first flows).
FLOW_POS = {name: i for i, name in enumerate(MESSAGES["Flow"])}
DROPS = [(133, "POLICY_DENIED"), (181, "POLICY_DENY"), (139, "UNSUPPORTED_L3_PROTOCOL")]


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def _pods(rng: random.Random) -> list[dict[str, Any]]:
    pods = []
    ident = 10000
    for ns, apps in NAMESPACES.items():
        for app in apps:
            for _ in range(3):
                ident += rng.randint(7, 900)
                labels = sorted(
                    [
                        f"k8s:app.kubernetes.io/name={app}",
                        f"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name={ns}",
                        "k8s:io.cilium.k8s.policy.cluster=prod-east",
                        f"k8s:io.cilium.k8s.policy.serviceaccount={app}",
                        f"k8s:io.kubernetes.pod.namespace={ns}",
                    ]
                )
                pods.append(
                    {
                        "ns": ns,
                        "app": app,
                        "pod": f"{app}-{_hex(rng, 9)}-{_hex(rng, 5)}",
                        "identity": ident,
                        "labels": labels,
                        "ip": f"10.42.{rng.randint(0, 3)}.{rng.randint(2, 250)}",
                        "id": rng.randint(100, 4000),
                        "node": rng.choice(NODES),
                    }
                )
    return pods


def _endpoint(p: dict[str, Any], local: bool) -> dict[str, Any]:
    ep: dict[str, Any] = {}
    if local:
        ep["ID"] = p["id"]
    ep.update(
        identity=p["identity"],
        cluster_name="prod-east",
        namespace=p["ns"],
        labels=p["labels"],
        pod_name=p["pod"],
        workloads=[{"name": p["app"], "kind": "Deployment"}],
    )
    return ep


def generate(path: str, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    pods = _pods(rng)
    world = {"identity": 2, "labels": ["reserved:world"]}
    t0 = 1773479523_000000000  # 2026-03-14T09:12:03Z
    macs = [":".join(_hex(rng, 2) for _ in range(6)) for _ in range(64)]
    with open(path, "wb", buffering=1 << 20) as out:
        t = t0
        for i in range(n):
            t += rng.randint(5_000, 400_000)
            src = rng.choice(pods)
            dst = rng.choice(pods)
            to_world = rng.random() < 0.05
            proto = rng.choices(("TCP", "UDP", "ICMPv4"), (0.8, 0.15, 0.05))[0]
            sport, dport = rng.randint(32768, 60999), rng.choice((80, 443, 8080, 8443, 5432, 9092))
            if proto == "TCP":
                flags = rng.choice(({"SYN": True}, {"SYN": True, "ACK": True}, {"ACK": True}))
                l4: dict[str, Any] = {
                    "TCP": {"source_port": sport, "destination_port": dport, "flags": flags}
                }
                summary = "TCP Flags: " + ", ".join(
                    f for f in ("SYN", "ACK", "RST", "FIN") if f in flags
                )
            elif proto == "UDP":
                l4 = {"UDP": {"source_port": sport, "destination_port": 53}}
                summary = "UDP"
            else:
                l4 = {"ICMPv4": {"type": 8}}
                summary = "ICMPv4 EchoRequest"
            kind = rng.choices(("trace", "verdict", "drop"), (0.7, 0.2, 0.1))[0]
            secs, nanos = divmod(t, 1_000_000_000)
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{nanos:09d}Z"
            node = src["node"]
            flow: dict[str, Any] = {
                "time": ts,
                "uuid": f"{_hex(rng, 8)}-{_hex(rng, 4)}-4{_hex(rng, 3)}-a{_hex(rng, 3)}-{_hex(rng, 12)}",
                "emitter": {"name": "Hubble", "version": "1.19.4"},
                "verdict": "FORWARDED",
                "ethernet": {"source": rng.choice(macs), "destination": rng.choice(macs)},
                "IP": {
                    "source": src["ip"],
                    "destination": f"203.0.113.{i % 250}" if to_world else dst["ip"],
                    "ipVersion": "IPv4",
                },
                "l4": l4,
                "source": _endpoint(src, True),
                "destination": world if to_world else _endpoint(dst, False),
                "Type": "L3_L4",
                "node_name": node,
                "node_labels": [
                    "kubernetes.io/arch=amd64",
                    f"kubernetes.io/hostname={node.split('/')[1]}",
                    "kubernetes.io/os=linux",
                ],
                "Summary": summary,
            }
            if kind == "trace":
                sub, point = rng.choice(TRACE_POINTS)
                reply = rng.random() < 0.4
                flow["event_type"] = {"type": 4, "sub_type": sub} if sub else {"type": 4}
                flow["traffic_direction"] = rng.choice(("INGRESS", "EGRESS"))
                flow["trace_observation_point"] = point
                flow["trace_reason"] = "REPLY" if reply else "NEW"
                flow["is_reply"] = reply
                if reply:
                    flow["reply"] = True
                flow["interface"] = {"index": rng.randint(4, 40), "name": "lxc" + _hex(rng, 12)}
            elif kind == "verdict":
                v = rng.choices(("FORWARDED", "DROPPED", "AUDIT"), (0.8, 0.15, 0.05))[0]
                flow["verdict"] = v
                flow["event_type"] = {"type": 5}
                flow["traffic_direction"] = rng.choice(("INGRESS", "EGRESS"))
                flow["policy_match_type"] = 2 if v == "FORWARDED" else 0
                if v == "DROPPED":
                    flow["drop_reason"] = 133
                    flow["drop_reason_desc"] = "POLICY_DENIED"
                else:
                    flow["is_reply"] = False
            else:
                code, desc = rng.choices(DROPS, (0.8, 0.1, 0.1))[0]
                flow["verdict"] = "DROPPED"
                flow["drop_reason"] = code
                flow["event_type"] = {"type": 1, "sub_type": code}
                flow["traffic_direction"] = "INGRESS"
                flow["file"] = {"name": "bpf_lxc.c", "line": 2081}
                flow["drop_reason_desc"] = desc
            ordered = {k: flow[k] for k in sorted(flow, key=FLOW_POS.__getitem__)}
            if i < 100:
                assert orjson.dumps(ordered) == orjson.dumps(order_fields(flow))
            env = {"flow": ordered, "node_name": node, "time": ts}
            out.write(go_json(env) + b"\n")


def phase_plain(path: str) -> dict[str, float]:
    n, dt = plain_parse(path)
    return {"n": n, "seconds": dt, "maxrss_mib": maxrss() / MiB}


def phase_observe(path: str) -> dict[str, float]:
    from ciliary.flows.filter import FilterFlags
    from ciliary.workflows.observe import ObserveOptions, observe

    opts = ObserveOptions(filters=FilterFlags(namespace=["payments"], verdict=["DROPPED"]))
    t = time.perf_counter()
    run = observe([path], opts, "compact")
    with open(os.devnull, "w") as out:
        write = out.write
        for line in run:
            write(line)
            write("\n")
    dt = time.perf_counter() - t
    c = run.counts
    return {
        "n": c.flows_read,
        "matched": c.matched,
        "bad": c.bad_lines,
        "seconds": dt,
        "maxrss_mib": maxrss() / MiB,
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] in ("plain", "observe"):
        fn = phase_plain if sys.argv[1] == "plain" else phase_observe
        print(json.dumps(fn(sys.argv[2])))
        return
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print(__doc__)
        return
    try:
        n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    except ValueError:
        sys.exit(f"usage: python bench/observe.py [N]   (N flows, default 1_000_000), not {sys.argv[1]!r}")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "flows.jsonl")
        t = time.perf_counter()
        generate(path, n)
        size = os.path.getsize(path)
        print(
            f"generated {n:,} flows, {size / 2**20:.0f} MiB "
            f"({size / n:.0f} B/line) in {time.perf_counter() - t:.1f}s"
        )
        results = {}
        for phase in ("plain", "observe"):
            proc = subprocess.run(
                [sys.executable, __file__, phase, path], capture_output=True, text=True, check=True
            )
            results[phase] = json.loads(proc.stdout)
        plain, obs = results["plain"], results["observe"]
        print(
            f"plain orjson parse : {plain['n'] / plain['seconds']:>10,.0f} flows/s "
            f"({plain['seconds']:.2f}s, ru_maxrss {plain['maxrss_mib']:.0f} MiB)"
        )
        print(
            f"observe (--namespace payments --verdict DROPPED -o compact > /dev/null): "
            f"{obs['n'] / obs['seconds']:>10,.0f} flows/s ({obs['seconds']:.2f}s, "
            f"{obs['matched']:,.0f} matched, ru_maxrss {obs['maxrss_mib']:.0f} MiB)"
        )
        print(f"observe / plain time: {obs['seconds'] / plain['seconds']:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
