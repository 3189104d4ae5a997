"""Benchmark: `ciliary replay` (and `observe`) over generated Hubble flow files vs. plain orjson parsing.

Run by `make bench` (`.venv/bin/python bench/replay.py`); `--small` scales everything down 10x
(100-pod / 20-policy cluster, 100k + 20k flows) for a quick check. Not a test: nothing here
asserts on timings, it prints figures next to the targets.

Generated deterministically (fixed seed) in a temp dir (deleted unless `--keep DIR`; a kept dir
with the same parameters is reused):

* the 1k-pod / 200-policy cluster of bench/engine.py (cluster.yaml, policies.yaml);
* flows-l4.jsonl, 1,000,000 `hubble observe -o json` lines of L3/L4 traffic between the
  cluster's pods, hosts and world addresses: TCP connections (SYN, SYN/ACK reply, ACK, a few
  PSH/ACK exchanges, FIN) seen at the receiving node (and sometimes the sending node too),
  policy-verdict events, SYN drops with retransmits, UDP DNS to kube-dns, kubelet probes,
  Prometheus scrapes, the apiserver, ICMP, egress to and ingress from world; ports are the
  pods' container ports (plus some stray ones); connections interleave in time order;
* flows-l7.jsonl, 200,000 lines: the same mix plus DNS request/response L7 flows (answers
  with IPs and TTLs, NXDOMAIN search-path lookups, names that the policies' toFQDNs select,
  cluster service names and other external names) followed by the connection to the answer,
  and HTTP request/response L7 flows (to backends with and without HTTP rules).

Recorded verdicts are what the same policies decide (`decide` on a separate engine, cached
per identity pair and port), with 3% of the connections flipped to model a policy change, so
that `replay` finds a realistic few changed verdicts.

Each measurement runs in a fresh child process (its ru_maxrss is the peak of that one
measurement, from wait4):

* plain: `for line in file: orjson.loads(line)` (the baseline);
* replay: `build_engine` once (timed and reported separately), then
  `for rf in replay(engine, [file], report=rep)` consuming every ReplayedFlow, as the
  `ciliary replay` summary does (a ReplayedFlow's output flow dict is made only when
  `.flow` is read: the -o json row below pays for it), with the cyclic GC set up as the
  command sets it (`ciliary.process`: `tune_gc_for_batch` at start and after the build,
  `streaming` around the loop);
* replay CLI: `ciliary replay FILE --cluster .. --policies ..` (the text summary) and the same
  with `-o json > /dev/null`, wall time (process start, engine build and output included);
* observe: `observe([file], --namespace NS --verdict DROPPED, -o compact)` written to /dev/null.

plain, replay and observe run `--repeat` times (default 3), interleaved; the fastest run counts
(the machine's other load only ever slows a run down). The CLI runs once.

Targets: replay loop time <= 2x the plain parse time; observe <= 1.5x; streaming: the memory the
replay loop adds to the process (peak RSS minus RSS after the engine build) at most a quarter of
the file size (the absolute peaks are printed too).

`--profile replay|observe` runs one file (`--file l4|l7`) in-process under cProfile and prints
the top `--top` functions (`--sort` cumulative, tottime or both).
"""

from __future__ import annotations

import argparse
import cProfile
import heapq
import io
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, for benchkit (see its docstring)
from benchkit import (
    GCTimer,
    Target,
    cli,
    fmt_b,
    fmt_s,
    import_bench,
    maxrss,
    plain_parse,
    print_profile,
    print_targets,
    run_measured,
    run_worker,
    workdir,
)

N_L4 = 1_000_000
N_L7 = 200_000
TARGET_REPLAY_X = 2.0  # replay loop time / plain parse time
TARGET_OBSERVE_X = 1.5  # observe time / plain parse time
TARGET_RSS_SHARE = 0.25  # RSS the replay loop adds (peak - after engine build) / file size
DRIFT = 0.03  # share of connections whose recorded verdict differs from the policies'
KEEP_DENIED = 0.15  # share of denied draws kept as they are (see FlowGen.pick)
GEN_VERSION = 1  # bump when the generated files change (invalidates reuse of --keep dirs)


# ----------------------------------------------------------------------------------------
# Flow generation

EMITTER = {"name": "Hubble", "version": "1.17.3+g4c5d7e1"}
WORLD_EP = {"identity": 2, "labels": ["reserved:world"]}
HOST_EP = {"identity": 1, "labels": ["reserved:host"]}
REMOTE_NODE_EP = {"identity": 6, "labels": ["reserved:remote-node"]}
APISERVER_EP = {"identity": 7, "labels": ["reserved:kube-apiserver", "reserved:remote-node"]}
T0_NS = 1_775_030_400 * 1_000_000_000  # 2026-04-01T08:00:00Z

F_SYN = {"SYN": True}
F_SYNACK = {"SYN": True, "ACK": True}
F_ACK = {"ACK": True}
F_PSHACK = {"PSH": True, "ACK": True}
F_FINACK = {"FIN": True, "ACK": True}
FLAG_SUMMARY = {id(f): "TCP Flags: " + ", ".join(k for k in ("FIN", "SYN", "RST", "PSH", "ACK") if k in f)
                for f in (F_SYN, F_SYNACK, F_ACK, F_PSHACK, F_FINACK)}
DROP_CODES = {"POLICY_DENIED": 133, "POLICY_DENY": 181, "AUTH_REQUIRED": 189}
MATCH_TYPES = {"L3_ONLY": 1, "L3_L4": 2, "L4_ONLY": 3, "ALL": 4, "L3_PROTO": 5, "PROTO_ONLY": 6}
OBS_POINT = {"TO_ENDPOINT": 0, "TO_STACK": 3, "TO_OVERLAY": 4, "FROM_ENDPOINT": 5}

EXTERNAL_NAMES = [
    "api.github.com", "objects.githubusercontent.com", "pypi.org", "files.pythonhosted.org",
    "registry.npmjs.org", "s3.eu-west-1.amazonaws.com", "sts.amazonaws.com", "www.googleapis.com",
    "oauth2.googleapis.com", "hooks.slack.com", "api.stripe.com", "api.sendgrid.com",
    "o123456.ingest.sentry.io", "api.datadoghq.eu", "login.microsoftonline.com", "cdn.example.net",
]
METRICS_PORTS = frozenset((9090, 9100, 9121, 9153, 9187))
HTTP_AGENTS = ["Go-http-client/1.1", "python-requests/2.32.3", "okhttp/4.12.0", "axios/1.7.7"]


@dataclass
class Peer:
    """One end of generated flows: a pod, a node (host), or a world address."""

    ip: str
    node: str | None  # node the address lives on (None: world)
    local: dict[str, Any]  # the flow's Endpoint when observed on its own node
    remote: dict[str, Any]  # ... when observed elsewhere
    fp: Any  # FlowPeer for decide()
    cache_key: tuple[Any, ...]
    ns: str | None = None
    app: str = ""
    tier: str = ""
    ports: list[tuple[int, int]] = field(default_factory=list)  # (proto number, port)
    iface: dict[str, Any] | None = None
    mac: str = ""

    @property
    def is_pod(self) -> bool:
        return self.ns is not None


class FlowGen:
    """Writes Hubble JSON lines for generated sessions, interleaved in time order."""

    def __init__(self, engine: Any, policies_path: str, seed: int, out: io.BufferedWriter, limit: int) -> None:
        from ciliary.flows.schema import MESSAGES
        from ciliary.verdict.types import FlowPeer

        self.engine = engine
        self.rng = random.Random(f"{seed}/flows")
        self.out = out
        self.limit = limit
        self.written = 0
        self.sessions = 0
        self.heap: list[tuple[int, int, bytes]] = []
        self.seq = 0
        self.vcache: dict[tuple[Any, ...], tuple[str, str | None, str, str]] = {}
        self.pos = {name: i for i, name in enumerate(MESSAGES["Flow"])}
        self._sec = -1
        self._sec_text = ""
        rng = self.rng
        cluster = engine.cluster
        self.node_labels = {n.name: sorted(f"{k}={v}" for k, v in n.labels.items()) for n in cluster.nodes}
        self.node_ip = {n.name: n.ips[0] for n in cluster.nodes}
        self.hosts = {n.name: Peer(n.ips[0], n.name, HOST_EP, REMOTE_NODE_EP,
                                   FlowPeer(n.ips[0], engine.endpoint(f"node/{n.name}")), ("host", n.name),
                                   mac=self._mac()) for n in cluster.nodes}
        cp = cluster.nodes[0].name
        apiserver_ip = cluster.kube_apiserver_ips[0] if cluster.kube_apiserver_ips else self.node_ip[cp]
        self.apiserver = Peer(apiserver_ip, cp, HOST_EP, APISERVER_EP,
                              FlowPeer(apiserver_ip, engine.endpoint_by_ip(apiserver_ip)), ("apiserver",),
                              ports=[(6, 6443)], mac=self._mac())
        self.pods: list[Peer] = []
        proto_num = {"TCP": 6, "UDP": 17, "SCTP": 132}
        for i, ep in enumerate(sorted(engine.pod_endpoints, key=lambda e: e.key)):
            pod = ep.pod
            labels = sorted(str(lb) for lb in ep.identity.labels)
            app = pod.labels.get("app") or pod.labels.get("k8s-app") or pod.name
            remote = {"identity": ep.identity.id, "cluster_name": engine.config.cluster_name, "namespace": pod.namespace,
                      "labels": labels, "pod_name": pod.name, "workloads": [{"name": app, "kind": "Deployment"}]}
            local = {"ID": 100 + (i * 37) % 3900, **remote}
            ip = pod.ips[0]
            self.pods.append(Peer(
                ip, pod.node_name, local, remote, FlowPeer(ip, ep), (ep.identity.id, pod.node_name),
                ns=pod.namespace, app=app, tier=pod.labels.get("tier", ""),
                ports=[(proto_num.get(cp.protocol, 6), cp.port) for cp in pod.named_ports],
                iface={"index": rng.randint(8, 2000), "name": "lxc" + f"{rng.getrandbits(48):012x}"},
                mac=self._mac(),
            ))
        self.by_ns: dict[str, list[Peer]] = {}
        self.by_app: dict[tuple[str, str], list[Peer]] = {}
        self.by_ip = {p.ip: p for p in self.pods}
        for p in self.pods:
            assert p.ns is not None
            self.by_ns.setdefault(p.ns, []).append(p)
            self.by_app.setdefault((p.ns, p.app), []).append(p)
        self.with_ports = [p for p in self.pods if p.ports]
        self.app_namespaces = sorted(ns for ns in self.by_ns if ns not in ("kube-system", "monitoring", "ingress-nginx", "default"))
        self.coredns = [p for p in self.pods if p.app == "coredns"]
        self.prometheus = [p for p in self.pods if p.app == "prometheus"]
        self.ingress = [p for p in self.pods if p.ns == "ingress-nginx"]
        self.frontends = {ns: [p for p in ps if p.tier == "frontend"] for ns, ps in self.by_ns.items()}
        self.backends = {ns: [p for p in ps if p.tier == "backend"] for ns, ps in self.by_ns.items()}
        self.workers = [p for p in self.pods if p.tier == "worker"]
        # Services: name, namespace, cluster IP, backing pods, target ports.
        addrs: dict[tuple[str, str], list[str]] = {}
        for e in cluster.endpoints:
            addrs.setdefault((e.namespace, e.service_name), []).extend(e.addresses)
        self.services: list[tuple[str, str, str, list[Peer]]] = []
        for s in cluster.services:
            backing = [self.by_ip[a] for a in addrs.get((s.namespace, s.name), []) if a in self.by_ip]
            if s.cluster_ips and backing and any(p.ports for p in backing):
                self.services.append((s.name, s.namespace, s.cluster_ips[0], backing))
        # Policies: toFQDNs names (per namespace) and HTTP-rule backends.
        self.fqdn_names: dict[str, list[str]] = {}
        self.http_backends: list[tuple[str, str]] = []  # (namespace, app)
        with open(policies_path) as f:
            doc = yaml.load(f, Loader=yaml.CSafeLoader)
        for item in doc["items"]:
            ns = item["metadata"].get("namespace")
            for spec in [item.get("spec"), *(item.get("specs") or [])]:
                if not spec:
                    continue
                for rule in spec.get("egress") or []:
                    for sel in rule.get("toFQDNs") or []:
                        name = sel.get("matchName")
                        if name and ns:
                            self.fqdn_names.setdefault(ns, []).append(name)
                for rule in spec.get("ingress") or []:
                    if any((tp.get("rules") or {}).get("http") for tp in rule.get("toPorts") or []):
                        app = (spec.get("endpointSelector") or {}).get("matchLabels", {}).get("app")
                        if ns and app and (ns, app) in self.by_app:
                            self.http_backends.append((ns, app))
        self.fqdn_clients = [p for ns in sorted(self.fqdn_names) for p in self.backends.get(ns, [])]
        bench = import_bench("engine")
        self.partner_names = sorted({n for names in self.fqdn_names.values() for n in names}
                                    | {f"api.{t}-partner.example.com" for t in bench.TEAMS})
        self.name_ips: dict[str, list[str]] = {}
        for k, name in enumerate([*self.partner_names, *EXTERNAL_NAMES]):
            self.name_ips[name] = [f"{34 + k % 20}.{96 + k}.{rng.randint(0, 255)}.{rng.randint(1, 254)}" for _ in range(4)]
        self.world_https = [ip for ips in self.name_ips.values() for ip in ips]
        self.world_clients = [f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
                              for _ in range(400)]
        self.world_clients += [f"198.51.100.{rng.randint(1, 254)}" for _ in range(40)]  # the office range
        self._world_peers: dict[str, Peer] = {}

    # -- helpers -----------------------------------------------------------------------
    def _mac(self) -> str:
        return ":".join(f"{self.rng.getrandbits(8):02x}" for _ in range(6))

    def world(self, ip: str) -> Peer:
        from ciliary.verdict.types import FlowPeer

        p = self._world_peers.get(ip)
        if p is None:
            p = Peer(ip, None, WORLD_EP, WORLD_EP, FlowPeer(ip, None), ("world", ip), mac="")
            self._world_peers[ip] = p
        return p

    def ts(self, t: int) -> str:
        secs, nanos = divmod(t, 1_000_000_000)
        if secs != self._sec:
            self._sec = secs
            self._sec_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
        return f"{self._sec_text}.{nanos:09d}Z"

    def uuid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def policy(self, c: Peer, s: Peer, proto: int, port: int, request: Any = None) -> tuple[str, str | None, str, str]:
        """(verdict, drop reason, direction, match type) the policies give (cached)."""
        from ciliary.verdict.decide import decide
        from ciliary.verdict.types import DROPPED, Connection

        key = (c.cache_key, s.cache_key, proto, port, request)
        hit = self.vcache.get(key)
        if hit is None:
            v = decide(self.engine, Connection(c.fp, s.fp, proto, port, request))
            if v.l7 is not None and v.l7.verdict == DROPPED:
                hit = (DROPPED, None, v.traffic_direction, "L7")
            else:
                hit = (v.verdict, v.drop_reason_desc, v.traffic_direction, v.policy_match_type or "")
            if len(self.vcache) < 300_000:
                self.vcache[key] = hit
        return hit

    def judge(self, c: Peer, s: Peer, proto: int, port: int, request: Any = None) -> tuple[str, str | None, str, str]:
        """The recorded verdict: the policies', except for DRIFT of the connections."""
        hit = self.policy(c, s, proto, port, request)
        if self.rng.random() < DRIFT:
            if hit[0] == "DROPPED":
                return ("FORWARDED", None, "INGRESS" if s.is_pod else "EGRESS", "L3_L4")
            return ("DROPPED", "POLICY_DENIED", "INGRESS" if s.is_pod else "EGRESS", "")
        return hit

    def pick(self, make: Callable[[], tuple[Peer, Peer, int, int]]) -> tuple[Peer, Peer, int, int]:
        """A connection from `make`, mostly one the policies allow: applications mostly make
        connections that work, so a denied draw is kept only with probability KEEP_DENIED."""
        for _ in range(8):
            c, s, proto, port = make()
            if self.rng.random() < KEEP_DENIED or self.policy(c, s, proto, port)[0] != "DROPPED":
                break
        return c, s, proto, port

    def push(self, t: int, flow: dict[str, Any], node: str) -> None:
        flow["time"] = text = self.ts(t)
        flow["uuid"] = self.uuid()
        flow["emitter"] = EMITTER
        flow["node_name"] = node
        flow["node_labels"] = self.node_labels[node]
        pos = self.pos
        ordered = {k: flow[k] for k in sorted(flow, key=pos.__getitem__)}
        line = orjson.dumps({"flow": ordered, "node_name": node, "time": text})
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, line))

    def flush_until(self, t: int) -> None:
        heap, out = self.heap, self.out
        while heap and heap[0][0] <= t and self.written < self.limit:
            out.write(heapq.heappop(heap)[2])
            out.write(b"\n")
            self.written += 1

    def finish(self) -> None:
        self.flush_until(1 << 80)

    # -- events ------------------------------------------------------------------------
    def packet(self, t: int, a: Peer, b: Peer, proto: int, sport: int, dport: int, *, client: Peer,
               flags: dict[str, bool] | None = None, icmp: int | None = None, reply: bool = False,
               reason: str = "ESTABLISHED", both: bool = False) -> None:
        """One forwarded packet a -> b: trace events where Hubble sees it."""
        if proto == 6:
            l4: dict[str, Any] = {"TCP": {"source_port": sport, "destination_port": dport, "flags": flags}}
            summary = FLAG_SUMMARY[id(flags)]
        elif proto == 17:
            l4 = {"UDP": {"source_port": sport, "destination_port": dport}}
            summary = "UDP"
        else:
            l4 = {"ICMPv4": {"type": icmp}}
            summary = "ICMPv4 EchoReply" if icmp == 0 else "ICMPv4 EchoRequest"
        points: list[tuple[str, str, int]] = []  # (node, observation point, delay)
        if b.is_pod:
            assert b.node is not None
            points.append((b.node, "TO_ENDPOINT", 0))
        if a.node is not None and (not b.is_pod or (both and a.node != b.node)):
            points.append((a.node, "TO_OVERLAY" if b.node is not None and b.node != a.node and b.is_pod else "TO_STACK", -30_000))
        for node, point, delay in points:
            observer = b if point == "TO_ENDPOINT" else a
            flow: dict[str, Any] = {
                "verdict": "FORWARDED",
                "ethernet": {"source": a.mac or "0a:58:0a:f4:00:01", "destination": b.mac or "0a:58:0a:f4:00:01"},
                "IP": {"source": a.ip, "destination": b.ip, "ipVersion": "IPv4"},
                "l4": l4,
                "source": a.local if a.node == node else a.remote,
                "destination": b.local if b.node == node else b.remote,
                "Type": "L3_L4",
                "event_type": {"type": 4, "sub_type": OBS_POINT[point]} if OBS_POINT[point] else {"type": 4},
                "traffic_direction": "EGRESS" if observer is client else "INGRESS",
                "trace_observation_point": point,
                "trace_reason": "REPLY" if reply else reason,
                "is_reply": reply,
                "Summary": summary,
            }
            if reply:
                flow["reply"] = True
            if point == "TO_ENDPOINT" and b.iface is not None:
                flow["interface"] = b.iface
            self.push(t + delay, flow, node)

    def policy_verdict(self, t: int, c: Peer, s: Peer, proto: int, sport: int, dport: int, verdict: str,
                       direction: str, match: str, drop: str | None) -> None:
        side = s if direction == "INGRESS" else c
        if side.node is None:
            return
        l4: dict[str, Any] = ({"TCP": {"source_port": sport, "destination_port": dport, "flags": F_SYN}} if proto == 6
                              else {"UDP": {"source_port": sport, "destination_port": dport}} if proto == 17
                              else {"ICMPv4": {"type": dport}})
        flow: dict[str, Any] = {
            "verdict": verdict,
            "IP": {"source": c.ip, "destination": s.ip, "ipVersion": "IPv4"},
            "l4": l4,
            "source": c.local if c.node == side.node else c.remote,
            "destination": s.local if s.node == side.node else s.remote,
            "Type": "L3_L4",
            "event_type": {"type": 5},
            "traffic_direction": direction,
            "policy_match_type": MATCH_TYPES.get(match, 0),
            "Summary": FLAG_SUMMARY[id(F_SYN)] if proto == 6 else ("UDP" if proto == 17 else "ICMPv4 EchoRequest"),
        }
        if drop:
            flow["drop_reason"] = DROP_CODES.get(drop, 133)
            flow["drop_reason_desc"] = drop
        else:
            flow["is_reply"] = False
        self.push(t, flow, side.node)

    def drops(self, t: int, c: Peer, s: Peer, proto: int, sport: int, dport: int, direction: str, reason: str | None) -> None:
        """A dropped connection: the policy-verdict event and the drops of its retransmits."""
        desc = reason or "POLICY_DENIED"
        code = DROP_CODES.get(desc, 133)
        side = s if direction == "INGRESS" else c
        if side.node is None:  # world -> world cannot happen; drop at the other end
            side, direction = (c, "EGRESS") if side is s else (s, "INGRESS")
            if side.node is None:
                return
        self.policy_verdict(t, c, s, proto, sport, dport, "DROPPED", direction, "", desc)
        l4: dict[str, Any] = ({"TCP": {"source_port": sport, "destination_port": dport, "flags": F_SYN}} if proto == 6
                              else {"UDP": {"source_port": sport, "destination_port": dport}} if proto == 17
                              else {"ICMPv4": {"type": dport}})
        tries = 1 + (self.rng.random() < 0.6) + (self.rng.random() < 0.3) if proto == 6 else 1
        for k in range(tries):
            flow: dict[str, Any] = {
                "verdict": "DROPPED",
                "drop_reason": code,
                "ethernet": {"source": c.mac or "0a:58:0a:f4:00:01", "destination": s.mac or "0a:58:0a:f4:00:01"},
                "IP": {"source": c.ip, "destination": s.ip, "ipVersion": "IPv4"},
                "l4": l4,
                "source": c.local if c.node == side.node else c.remote,
                "destination": s.local if s.node == side.node else s.remote,
                "Type": "L3_L4",
                "event_type": {"type": 1, "sub_type": code},
                "traffic_direction": direction,
                "file": {"name": "bpf_lxc.c", "line": 2104 if direction == "EGRESS" else 1946},
                "drop_reason_desc": desc,
                "Summary": FLAG_SUMMARY[id(F_SYN)] if proto == 6 else ("UDP" if proto == 17 else "ICMPv4 EchoRequest"),
            }
            self.push(t + 1_000_000_000 * ((1 << k) - 1), flow, side.node)

    # -- sessions ----------------------------------------------------------------------
    def connection(self, t: int, c: Peer, s: Peer, proto: int, dport: int, *, rounds: int | None = None,
                   http: list[tuple[str, str]] | None = None) -> None:
        """One connection c -> s: recorded verdict, then its packets (and HTTP exchanges)."""
        rng = self.rng
        self.sessions += 1
        sport = rng.randint(32768, 60999) if proto != 1 else 0
        verdict, drop, direction, match = self.judge(c, s, proto, dport)
        if verdict == "DROPPED":
            self.drops(t, c, s, proto, sport, dport, direction, drop)
            return
        both = rng.random() < 0.25
        if s.is_pod:
            self.policy_verdict(t - 20_000, c, s, proto, sport, dport, verdict, "INGRESS", match, None)
        if c.is_pod and rng.random() < 0.5:
            self.policy_verdict(t - 40_000, c, s, proto, sport, dport, verdict, "EGRESS", match, None)
        rtt = rng.randint(80_000, 900_000) if s.is_pod and c.is_pod else rng.randint(2_000_000, 40_000_000)
        if proto == 1:
            for k in range(rng.randint(1, 3)):
                self.packet(t + k * 1_000_000_000, c, s, 1, 0, 0, client=c, icmp=8, reason="NEW" if k == 0 else "ESTABLISHED")
                self.packet(t + k * 1_000_000_000 + rtt, s, c, 1, 0, 0, client=c, icmp=0, reply=True)
            return
        if proto == 17:
            self.packet(t, c, s, 17, sport, dport, client=c, reason="NEW", both=both)
            self.packet(t + rtt, s, c, 17, dport, sport, client=c, reply=True, both=both)
            return
        self.packet(t, c, s, 6, sport, dport, client=c, flags=F_SYN, reason="NEW", both=both)
        self.packet(t + rtt, s, c, 6, dport, sport, client=c, flags=F_SYNACK, reply=True, both=both)
        t += 2 * rtt
        self.packet(t, c, s, 6, sport, dport, client=c, flags=F_ACK, both=both)
        if http:
            for method, path in http:
                t += rng.randint(100_000, 5_000_000)
                latency = self.http_exchange(t, c, s, sport, dport, method, path)
                t += latency + rng.randint(50_000, 2_000_000)
        else:
            n = rng.choice((0, 1, 1, 2, 2, 3, 5)) if rounds is None else rounds
            for _ in range(n):
                t += rng.randint(100_000, 50_000_000)
                self.packet(t, c, s, 6, sport, dport, client=c, flags=F_PSHACK, both=both)
                self.packet(t + rtt, s, c, 6, dport, sport, client=c, flags=F_PSHACK, reply=True, both=both)
                t += rtt
        if rng.random() < 0.6:
            t += rng.randint(1_000_000, 200_000_000)
            self.packet(t, c, s, 6, sport, dport, client=c, flags=F_FINACK, both=both)
            self.packet(t + rtt, s, c, 6, dport, sport, client=c, flags=F_FINACK, reply=True, both=both)

    def http_exchange(self, t: int, c: Peer, s: Peer, sport: int, dport: int, method: str, path: str) -> int:
        """An HTTP request (ingress proxy at the server's node) and its response; returns the latency."""
        from ciliary.l7.http import HTTPRequest

        rng = self.rng
        assert s.node is not None and s.ns is not None
        host = f"{s.app}.{s.ns}.svc.cluster.local:{dport}"
        url = f"http://{host}{path}"
        agent = rng.choice(HTTP_AGENTS)
        req_id = self.uuid()
        headers = [{"key": "User-Agent", "value": agent}, {"key": "X-Request-Id", "value": req_id}]
        verdict, _, _, _ = self.judge(c, s, 6, dport, HTTPRequest(method, path, host, (("user-agent", agent),)))
        denied = verdict == "DROPPED"
        latency = rng.randint(300_000, 40_000_000) if not denied else rng.randint(50_000, 400_000)
        l4 = {"TCP": {"source_port": sport, "destination_port": dport}}
        common = {"Type": "L7", "event_type": {"type": 129}, "traffic_direction": "INGRESS"}
        req: dict[str, Any] = {
            "verdict": "DROPPED" if denied else "FORWARDED",
            "IP": {"source": c.ip, "destination": s.ip, "ipVersion": "IPv4"},
            "l4": l4,
            "source": c.local if c.node == s.node else c.remote,
            "destination": s.local,
            **common,
            "l7": {"type": "REQUEST", "http": {"method": method, "url": url, "protocol": "HTTP/1.1", "headers": headers}},
            "is_reply": False,
            "Summary": f"HTTP/1.1 {method} {url}",
        }
        if denied:
            req["drop_reason_desc"] = "POLICY_DENIED"
            req["drop_reason"] = 133
        self.push(t, req, s.node)
        code = 403 if denied else rng.choices((200, 201, 204, 404, 500), (80, 6, 4, 8, 2))[0]
        resp: dict[str, Any] = {
            "verdict": "FORWARDED",
            "IP": {"source": s.ip, "destination": c.ip, "ipVersion": "IPv4"},
            "l4": {"TCP": {"source_port": dport, "destination_port": sport}},
            "source": s.local,
            "destination": c.local if c.node == s.node else c.remote,
            **common,
            "l7": {"type": "RESPONSE", "latency_ns": str(latency),
                   "http": {"code": code, "method": method, "url": url, "protocol": "HTTP/1.1", "headers": headers}},
            "is_reply": True,
            "Summary": f"HTTP/1.1 {code} {latency // 1_000_000}ms ({method} {url})",
        }
        self.push(t + latency, resp, s.node)
        return latency

    def dns_exchange(self, t: int, c: Peer, name: str, ips: list[str], ttl: int, rcode: int = 0) -> tuple[int, bool]:
        """A DNS query through the client's DNS proxy and its answer: (time after, allowed)."""
        from ciliary.verdict.types import DNSQuery

        rng = self.rng
        server = rng.choice(self.coredns)
        assert c.node is not None
        qname = name + "."
        verdict, drop, direction, match = self.judge(c, server, 17, 53, DNSQuery(qname))
        sport = rng.randint(32768, 60999)
        self.sessions += 1
        if verdict == "DROPPED" and match != "L7":  # no proxy: the query drops at L3/L4
            self.drops(t, c, server, 17, sport, 53, direction, drop)
            return t, False
        refused = verdict == "DROPPED"
        common = {"Type": "L7", "event_type": {"type": 129}, "traffic_direction": "EGRESS"}
        self.push(t, {
            "verdict": "DROPPED" if refused else "FORWARDED",
            "IP": {"source": c.ip, "destination": server.ip, "ipVersion": "IPv4"},
            "l4": {"UDP": {"source_port": sport, "destination_port": 53}},
            "source": c.local,
            "destination": server.local if server.node == c.node else server.remote,
            **common,
            "l7": {"type": "REQUEST", "dns": {"query": qname, "observation_source": "proxy", "qtypes": ["A"]}},
            "is_reply": False,
            "Summary": f"DNS Query {qname} A",
        }, c.node)
        latency = rng.randint(200_000, 3_000_000) if name.endswith(".cluster.local") else rng.randint(2_000_000, 30_000_000)
        if refused:
            dns: dict[str, Any] = {"query": qname, "observation_source": "proxy", "rcode": 5, "qtypes": ["A"]}
            summary = f"DNS Answer RCode: Refused TTL: 4294967295 (Proxy {qname} A)"
        elif rcode:
            dns = {"query": qname, "observation_source": "proxy", "rcode": rcode, "qtypes": ["A"]}
            summary = f"DNS Answer RCode: Non-Existent Domain TTL: 4294967295 (Proxy {qname} A)"
        else:
            dns = {"query": qname, "ips": ips, "ttl": ttl, "observation_source": "proxy", "qtypes": ["A"], "rrtypes": ["A"] * len(ips)}
            summary = f"DNS Answer \"{','.join(ips)}\" TTL: {ttl} (Proxy {qname} A)"
        self.push(t + latency, {
            "verdict": "FORWARDED",
            "IP": {"source": server.ip, "destination": c.ip, "ipVersion": "IPv4"},
            "l4": {"UDP": {"source_port": 53, "destination_port": sport}},
            "source": server.local if server.node == c.node else server.remote,
            "destination": c.local,
            **common,
            "l7": {"type": "RESPONSE", "latency_ns": str(latency), "dns": dns},
            "is_reply": True,
            "Summary": summary,
        }, c.node)
        return t + latency, not refused

    def l4_session(self, t: int) -> None:
        """One connection of the L3/L4 mix."""
        rng = self.rng
        r = rng.random()
        if r < 0.42:  # same namespace, to one of the destination's container ports
            def same_ns() -> tuple[Peer, Peer, int, int]:
                c = rng.choice(self.pods)
                assert c.ns is not None
                if c.tier == "frontend" and self.backends.get(c.ns) and rng.random() < 0.6:
                    s = rng.choice(self.backends[c.ns])  # frontends mostly call backends
                    return (c, s, *rng.choice([pp for pp in s.ports if pp[1] != 9090] or s.ports))
                s = rng.choice([p for p in self.by_ns[c.ns] if p.ports and p is not c] or self.with_ports)
                return (c, s, *rng.choice([pp for pp in s.ports if pp[1] not in METRICS_PORTS] or s.ports))
            c, s, proto, port = self.pick(same_ns)
            self.connection(t, c, s, proto, port)
        elif r < 0.52:  # cross-namespace
            def cross_ns() -> tuple[Peer, Peer, int, int]:
                s = rng.choice(self.with_ports)
                return (rng.choice(self.pods), s, *rng.choice(s.ports))
            self.connection(t, *self.pick(cross_ns))
        elif r < 0.60:  # Prometheus scrapes a metrics port
            def scrape() -> tuple[Peer, Peer, int, int]:
                s = rng.choice(self.with_ports)
                metrics = [pp for pp in s.ports if pp[1] in METRICS_PORTS] or s.ports
                return (rng.choice(self.prometheus), s, *rng.choice(metrics))
            self.connection(t, *self.pick(scrape), rounds=1)
        elif r < 0.70:  # UDP DNS to kube-dns (no L7 visibility)
            self.connection(t, *self.pick(lambda: (rng.choice(self.pods), rng.choice(self.coredns), 17, 53)))
        elif r < 0.78:  # egress to world
            c = rng.choice(self.pods)
            x = rng.random()
            if x < 0.7:
                self.connection(t, *self.pick(lambda: (rng.choice(self.pods), self.world(rng.choice(self.world_https)), 6, 443)))
            elif x < 0.8:
                self.connection(t, *self.pick(lambda: (rng.choice(self.pods), self.world(rng.choice(self.world_https)), 6, 80)))
            elif x < 0.85:  # the cloud metadata service (denied everywhere)
                self.connection(t, c, self.world("169.254.169.254"), 6, 80, rounds=1)
            elif x < 0.9:  # SMTP (denied everywhere)
                self.connection(t, c, self.world(rng.choice(self.world_https)), 6, rng.choice((25, 587)), rounds=1)
            elif x < 0.95:
                k = rng.randrange(40)
                self.connection(t, c, self.world(f"203.0.113.{4 * k + rng.randrange(4)}"), 6, rng.randint(8000, 8099))
            else:
                k = rng.randrange(40)
                self.connection(t, c, self.world(f"198.18.{k}.{rng.randint(1, 254)}"), 6, rng.randint(9000, 9010))
        elif r < 0.84:  # world -> ingress controller, ingress controller -> a frontend
            if rng.random() < 0.5 or not self.ingress:
                s = rng.choice(self.ingress) if self.ingress else rng.choice(self.with_ports)
                self.connection(t, self.world(rng.choice(self.world_clients)), s, 6, rng.choice((80, 443)))
            else:
                def to_frontend() -> tuple[Peer, Peer, int, int]:
                    ns = rng.choice(self.app_namespaces)
                    return (rng.choice(self.ingress), rng.choice(self.frontends.get(ns) or self.by_ns[ns]), 6, 8080)
                self.connection(t, *self.pick(to_frontend))
        elif r < 0.90:  # kubelet probes from the local host
            s = rng.choice(self.with_ports)
            assert s.node is not None
            proto, port = rng.choice(s.ports)
            self.connection(t, self.hosts[s.node], s, 6, port, rounds=1)
        elif r < 0.94:  # the kube-apiserver (service IP translated to the node)
            clients = self.workers + self.prometheus + self.ingress
            self.connection(t, *self.pick(lambda: (rng.choice(clients), self.apiserver, 6, 6443)), rounds=rng.randint(1, 4))
        elif r < 0.96:  # ICMP echo
            c, s = rng.choice(self.pods), rng.choice(self.pods)
            if s is not c:
                self.connection(t, c, s, 1, 8)
        else:  # stray ports: ssh, mysql, memcached, random high ports
            c, s = rng.choice(self.pods), rng.choice(self.pods)
            port = rng.choice((22, 3306, 11211, 27017, 8443, rng.randint(1024, 65535)))
            self.connection(t, c, s, 6, port, rounds=rng.choice((0, 1)))

    def dns_session(self, t: int) -> None:
        rng = self.rng
        r = rng.random()
        if r < 0.35:  # a partner API some toFQDNs policies name
            if self.fqdn_clients and rng.random() < 0.7:
                c = rng.choice(self.fqdn_clients)
                assert c.ns is not None
                name = rng.choice(self.fqdn_names[c.ns])
            else:
                c = rng.choice(self.pods)
                name = rng.choice(self.partner_names)
            external = True
        elif r < 0.70:  # a cluster service
            c = rng.choice(self.pods)
            svc, svc_ns, _, _ = rng.choice(self.services)
            name = f"{svc}.{svc_ns}.svc.cluster.local"
            external = False
        else:
            c = rng.choice(self.pods)
            name = rng.choice(EXTERNAL_NAMES)
            external = True
        assert c.ns is not None
        if external and rng.random() < 0.5:  # ndots:5 search path first
            t, ok = self.dns_exchange(t, c, f"{name}.{c.ns}.svc.cluster.local", [], 0, rcode=3)
            if not ok:
                return
            t += rng.randint(100_000, 1_000_000)
        if external:
            pool = self.name_ips[name]
            k = rng.randrange(4)
            ips = [pool[k], pool[(k + 1) % 4]] if rng.random() < 0.5 else [pool[k]]
            ttl = 60 if "partner" in name else rng.choice((30, 60, 300))
        else:
            svc_name, svc_ns = name.split(".")[:2]
            svc_entry = next(e for e in self.services if e[0] == svc_name and e[1] == svc_ns)
            ips, ttl = [svc_entry[2]], 30
        t, ok = self.dns_exchange(t, c, name, ips, ttl)
        if not ok or rng.random() < 0.15:
            return
        t += rng.randint(200_000, 20_000_000)
        if external:
            self.connection(t, c, self.world(rng.choice(ips)), 6, 443)
        else:
            backing = [p for p in svc_entry[3] if p.ports]
            s = rng.choice(backing)
            self.connection(t, c, s, *rng.choice(s.ports))

    def http_session(self, t: int) -> None:
        rng = self.rng

        def make() -> tuple[Peer, Peer, int, int]:
            if self.http_backends and rng.random() < 0.6:
                ns, app = rng.choice(self.http_backends)
            else:
                ns = rng.choice([n for n in self.app_namespaces if self.backends.get(n)])
                app = rng.choice(self.backends[ns]).app
            return (rng.choice(self.frontends.get(ns) or self.by_ns[ns]), rng.choice(self.by_app[(ns, app)]), 6, 8080)

        c, s, _, _ = self.pick(make)
        if self.policy(c, s, 6, 8080)[0] == "DROPPED":
            self.connection(t, c, s, 6, 8080)  # no proxy, no HTTP: the SYN drops
            return
        reqs = []
        for _ in range(rng.choice((1, 1, 2, 3))):
            x = rng.random()
            if x < 0.45:
                reqs.append(("GET", f"/api/v1/orders/{rng.randint(1000, 99999)}"))
            elif x < 0.65:
                reqs.append(("POST", "/api/v1/orders"))
            elif x < 0.75:
                reqs.append(("GET", f"/api/v1/items?page={rng.randint(1, 40)}&limit=50"))
            elif x < 0.85:
                reqs.append(("DELETE", f"/api/v1/orders/{rng.randint(1000, 99999)}"))
            elif x < 0.92:
                reqs.append(("GET", "/healthz"))
            else:
                reqs.append(("PUT", f"/api/v2/profile/{rng.randint(1, 5000)}"))
        self.connection(t, c, s, 6, 8080, http=reqs)

    def run(self, kind: str) -> None:
        rng = self.rng
        t = T0_NS
        # ~3.6 ms between lines: 1M lines is about an hour of a busy cluster's flows
        gap = 25_000_000
        while self.written < self.limit:
            t += int(rng.expovariate(1 / gap))
            self.flush_until(t - 5_000_000_000)  # everything older than 5 s is final
            if kind == "l4":
                self.l4_session(t)
            else:
                x = rng.random()
                if x < 0.35:
                    self.dns_session(t)
                elif x < 0.55:
                    self.http_session(t)
                else:
                    self.l4_session(t)
        self.heap.clear()


def write_flows(engine: Any, policies_path: str, seed: int, path: Path, n: int, kind: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    with path.open("wb", buffering=1 << 20) as out:
        gen = FlowGen(engine, policies_path, seed if kind == "l4" else seed + 1, out, n)
        gen.run(kind)
    return {"flows": gen.written, "sessions": gen.sessions, "seconds": time.perf_counter() - t0,
            "bytes": path.stat().st_size, "fqdn_names": gen.fqdn_names, "http_backends": len(gen.http_backends)}


def check_lines(path: Path, k: int = 200) -> None:
    """The first lines are canonical Hubble flows (field order, schema)."""
    from ciliary.flows.schema import order_fields, validate

    with path.open("rb") as f:
        for _, line in zip(range(k), f, strict=False):
            env = orjson.loads(line)
            flow = env["flow"]
            if orjson.dumps(order_fields(flow)) != orjson.dumps(flow):
                raise RuntimeError(f"{path}: fields out of order: {line[:200]!r}")
            errors = validate(flow, "Flow")
            if errors:
                raise RuntimeError(f"{path}: invalid flow: {errors[:3]}")


def gen_params(small: bool, seed: int) -> dict[str, Any]:
    k = 10 if small else 1
    return {"version": GEN_VERSION, "seed": seed, "small": small, "n_l4": N_L4 // k, "n_l7": N_L7 // k}


def generate(tmp: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Write the cluster, the policies and both flow files to `tmp`, and meta.json."""
    from ciliary.policy.config import AgentConfig
    from ciliary.workflows.engine import build_engine

    be = import_bench("engine")
    # --small: a 100-pod / 20-policy cluster (bench/engine.py's generator, 10x smaller)
    size = be.Size("100", 100, 20, 5, 3, 4, None, 0, 0) if params["small"] else be.SMALL
    seed = params["seed"]
    t0 = time.perf_counter()
    info = be.write_cluster(size, seed, tmp)
    cluster_s = time.perf_counter() - t0
    engine = build_engine(info["cluster"], [info["policies"]], AgentConfig())
    meta: dict[str, Any] = {
        "params": params, "cluster": info["cluster"], "policies": info["policies"], "kinds": info["kinds"],
        "cluster_s": cluster_s, "pods": len(engine.cluster.pods), "namespaces": len(engine.cluster.namespaces),
    }
    for kind in ("l4", "l7"):
        n = params[f"n_{kind}"]
        path = tmp / f"flows-{kind}.jsonl"
        print(f"  generating {path.name} ({n:,} flows) ...", file=sys.stderr, flush=True)
        meta[kind] = str(path)
        meta[f"{kind}_gen"] = write_flows(engine, info["policies"], seed, path, n, kind)
        check_lines(path)
    # The namespace for the observe filter: the application namespace with the most pods.
    by_ns: dict[str, int] = {}
    for p in engine.cluster.pods:
        if p.namespace not in ("kube-system", "monitoring", "ingress-nginx", "default"):
            by_ns[p.namespace] = by_ns.get(p.namespace, 0) + 1
    meta["observe_ns"] = max(sorted(by_ns), key=by_ns.__getitem__)
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    return meta


def prepare(tmp: Path, params: dict[str, Any]) -> dict[str, Any]:
    """The generated files: reused from a kept dir made with the same parameters, else
    generated in a child process (so that this process, whose memory every measured child
    inherits in its ru_maxrss at fork, stays small)."""
    meta_path = tmp / "meta.json"
    if meta_path.exists():
        meta: dict[str, Any] = json.loads(meta_path.read_text())
        if meta.get("params") == params and all(Path(meta[k]).exists() for k in ("cluster", "policies", "l4", "l7")):
            meta["reused"] = True
            return meta
        meta_path.unlink()
    cmd = [sys.executable, __file__, "--worker", "generate", "--file", str(tmp), "--seed", str(params["seed"])]
    if params["small"]:
        cmd.append("--small")
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, check=False)
    if p.returncode != 0 or not meta_path.exists():
        raise RuntimeError(f"generating the files failed (exit {p.returncode})")
    meta = json.loads(meta_path.read_text())
    meta["reused"] = False
    return meta


# ----------------------------------------------------------------------------------------
# Measurements (each in a child process)


def worker_plain(args: argparse.Namespace) -> dict[str, Any]:
    n, seconds = plain_parse(args.file)
    return {"flows": n, "seconds": seconds, "maxrss": maxrss()}


def worker_replay(args: argparse.Namespace) -> dict[str, Any]:
    from ciliary.policy.config import AgentConfig
    from ciliary.process import streaming, tune_gc_for_batch
    from ciliary.workflows.engine import build_engine
    from ciliary.workflows.replay import ReplayReport, replay

    # GC as `ciliary replay` runs it (cli.main and after the engine build).
    tune_gc_for_batch()
    rss_start = maxrss()
    t0 = time.perf_counter()
    engine = build_engine(args.cluster, [args.policies], AgentConfig())
    build_s = time.perf_counter() - t0
    tune_gc_for_batch()
    rss_build = maxrss()
    gct = GCTimer()
    rep = ReplayReport()
    n = 0
    t0 = time.perf_counter()
    with streaming():  # as `ciliary replay` streams
        for _ in replay(engine, [args.file], report=rep):
            n += 1
    seconds = time.perf_counter() - t0
    s = rep.summary()
    return {"flows": n, "seconds": seconds, "build_s": build_s, "gc_s": gct.total, "rss_start": rss_start,
            "rss_build": rss_build, "maxrss": maxrss(), "by_verdict": s["by_predicted_verdict"],
            "changed": s["changed"], "unjudged": s["unjudged"], "bad": s["bad_lines"],
            "fqdn_caches": len(engine.fqdn_caches)}


def worker_observe(args: argparse.Namespace) -> dict[str, Any]:
    from ciliary.flows.filter import FilterFlags
    from ciliary.workflows.observe import ObserveOptions, observe

    opts = ObserveOptions(filters=FilterFlags(namespace=[args.namespace], verdict=["DROPPED"]))
    t0 = time.perf_counter()
    run = observe([args.file], opts, "compact", now=T0_NS)
    with open(os.devnull, "w") as out:
        write = out.write
        for line in run:
            write(line)
            write("\n")
    seconds = time.perf_counter() - t0
    c = run.counts
    return {"flows": c.flows_read, "matched": c.matched, "bad": c.bad_lines, "seconds": seconds, "maxrss": maxrss()}


def worker_generate(args: argparse.Namespace) -> dict[str, Any]:
    generate(Path(args.file), gen_params(args.small, args.seed))
    return {"ok": True}


WORKERS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "plain": worker_plain, "replay": worker_replay, "observe": worker_observe, "generate": worker_generate,
}


def child(mode: str, file: str, meta: dict[str, Any]) -> dict[str, Any]:
    res, wall, rss = run_worker(__file__, mode, ["--file", file, "--cluster", meta["cluster"],
                                                 "--policies", meta["policies"], "--namespace", meta["observe_ns"]])
    res["wall"], res["wait4_maxrss"] = wall, rss
    return res


def cli_replay(file: str, meta: dict[str, Any], output: str) -> dict[str, Any]:
    cmd = [cli(), "replay", file, "--cluster", meta["cluster"], "--policies", meta["policies"], "-o", output]
    with open(os.devnull, "wb") as devnull:
        _, err, wall, rc, rss = run_measured(cmd, stdout=devnull)
    res = {"wall": wall, "rc": rc, "maxrss": rss, "stderr": err.strip().splitlines()[-1:] if err.strip() else []}
    if rc != 0:
        res["error"] = err[-2000:]
    return res


# ----------------------------------------------------------------------------------------
# Report


def measure_file(kind: str, path: str, meta: dict[str, Any], repeat: int) -> list[Target]:
    size = os.path.getsize(path)
    runs: dict[str, list[dict[str, Any]]] = {"plain": [], "replay": [], "observe": []}
    for _ in range(repeat):  # interleaved, so that a slow spell of the machine hits all modes alike
        for mode, results in runs.items():
            results.append(child(mode, path, meta))
    best = {mode: min(results, key=lambda r: r["seconds"]) for mode, results in runs.items()}
    plain, rep, obs = best["plain"], best["replay"], best["observe"]
    n = plain["flows"]
    print(f"\n== {Path(path).name}: {n:,} flows, {fmt_b(size)} ({size / max(n, 1):.0f} B/line)", flush=True)

    def row(label: str, seconds: float, flows: int, rss: int, extra: str = "") -> None:
        print(f"  {label:<34} {fmt_s(seconds):>9}  {flows / seconds:>11,.0f} flows/s  maxrss {fmt_b(rss):>9}  {extra}",
              flush=True)

    def spread(mode: str) -> str:
        xs = [r["seconds"] for r in runs[mode]]
        return f"best of {len(xs)}: {', '.join(fmt_s(x) for x in xs)}" if len(xs) > 1 else ""

    row("plain orjson parse (baseline)", plain["seconds"], n, plain["wait4_maxrss"], spread("plain"))
    print(f"  {'engine build (once, not in loop)':<34} {fmt_s(rep['build_s']):>9}  "
          f"{'':>18}  maxrss {fmt_b(rep['rss_build']):>9}  (process before build: {fmt_b(rep['rss_start'])})", flush=True)
    rx = rep["seconds"] / plain["seconds"]
    row("replay in-process (loop)", rep["seconds"], rep["flows"], rep["wait4_maxrss"],
        f"{rx:.2f}x plain; {spread('replay')}")
    print(f"  {'':<34} gc {fmt_s(rep['gc_s'])}; the loop grew RSS by {fmt_b(rep['maxrss'] - rep['rss_build'])}", flush=True)
    verdicts = ", ".join(f"{k} {v:,}" for k, v in rep["by_verdict"].items())
    print(f"  {'':<34} predicted: {verdicts}; changed {rep['changed']:,}; unjudged {rep['unjudged']:,}; "
          f"bad lines {rep['bad']}", flush=True)
    for output, label in (("text", "replay CLI (summary)"), ("json", "replay CLI -o json > /dev/null")):
        cli = cli_replay(path, meta, output)
        if "error" in cli:
            print(f"  {label} failed (exit {cli['rc']}): {cli['error']}")
        else:
            row(label, cli["wall"], n, cli["maxrss"],
                f"{cli['wall'] / plain['seconds']:.2f}x plain (wall: start, build, output)")
    ox = obs["seconds"] / plain["seconds"]
    row(f"observe -n {meta['observe_ns']}", obs["seconds"], obs["flows"], obs["wait4_maxrss"],
        f"{ox:.2f}x plain; {spread('observe')}")
    print(f"  {'':<34} (--verdict DROPPED -o compact > /dev/null; {obs['matched']:,} matched)")
    growth = max(rep["maxrss"] - rep["rss_build"], 0)
    share = growth / size
    return [
        (f"{kind} replay loop / plain parse", f"<= {TARGET_REPLAY_X}x", f"{rx:.2f}x ({fmt_s(rep['seconds'])} vs {fmt_s(plain['seconds'])})",
         rx <= TARGET_REPLAY_X),
        (f"{kind} observe / plain parse", f"<= {TARGET_OBSERVE_X}x", f"{ox:.2f}x ({fmt_s(obs['seconds'])} vs {fmt_s(plain['seconds'])})",
         ox <= TARGET_OBSERVE_X),
        (f"{kind} replay loop RSS growth / file size", f"<= {TARGET_RSS_SHARE:.2f}",
         f"{share:.2f} (+{fmt_b(growth)} of {fmt_b(size)}; peak {fmt_b(rep['wait4_maxrss'])})", share <= TARGET_RSS_SHARE),
    ]


def profile(args: argparse.Namespace, meta: dict[str, Any]) -> None:
    from ciliary.flows.filter import FilterFlags
    from ciliary.policy.config import AgentConfig
    from ciliary.workflows.engine import build_engine
    from ciliary.workflows.observe import ObserveOptions, observe
    from ciliary.workflows.replay import ReplayReport, replay

    path = meta[args.profile_file]
    prof = cProfile.Profile()
    if args.profile == "replay":
        engine = build_engine(meta["cluster"], [meta["policies"]], AgentConfig())
        rep = ReplayReport()
        t0 = time.perf_counter()
        prof.enable()
        for _ in replay(engine, [path], report=rep):
            pass
        prof.disable()
    else:
        opts = ObserveOptions(filters=FilterFlags(namespace=[meta["observe_ns"]], verdict=["DROPPED"]))
        t0 = time.perf_counter()
        prof.enable()
        for _ in observe([path], opts, "compact", now=T0_NS):
            pass
        prof.disable()
    print(f"{args.profile} of {Path(path).name} under cProfile: {time.perf_counter() - t0:.2f} s")
    print_profile(prof, args.sort, args.top)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="everything 10x smaller (quick check)")
    ap.add_argument("--seed", type=int, default=None, help="generator seed (default: bench/engine.py's)")
    ap.add_argument("--keep", metavar="DIR", help="write the generated files to DIR and keep them (reused if unchanged)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each in-process measurement (the best counts)")
    ap.add_argument("--profile", choices=["replay", "observe"], help="cProfile one loop in-process instead")
    ap.add_argument("--file", dest="profile_file", default="l4", help="l4 | l7 (with --profile)")
    ap.add_argument("--sort", default="both", choices=["cumulative", "tottime", "both"], help="--profile order")
    ap.add_argument("--top", type=int, default=15, help="rows of the --profile listing")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--cluster", help=argparse.SUPPRESS)
    ap.add_argument("--policies", help=argparse.SUPPRESS)
    ap.add_argument("--namespace", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.seed is None:
        args.seed = import_bench("engine").SEED
    if args.worker:
        args.file = args.profile_file
        print(json.dumps(WORKERS[args.worker](args)))
        return 0

    seed = args.seed
    params = gen_params(args.small, seed)
    with workdir(args.keep, "ciliary-bench-replay-") as tmp:
        if args.profile:
            meta = prepare(tmp, params)
            profile(args, meta)
            return 0
        print(f"ciliary replay benchmark (python {sys.version.split()[0]}, seed {seed}, {os.cpu_count()} CPUs, "
              f"{'--small' if args.small else 'full'} size); files in {tmp}", flush=True)
        t0 = time.perf_counter()
        meta = prepare(tmp, params)
        if meta["reused"]:
            print("reused the generated files of a previous run (same parameters)")
        else:
            print(f"generated in {fmt_s(time.perf_counter() - t0)}")
        kinds = meta["kinds"]
        pols = sum(v for k, v in kinds.items() if "Policy" in k)
        print(f"cluster: {kinds.get('Pod', 0)} pods, {meta['namespaces']} namespaces, {pols} policies; "
              f"observe filter namespace: {meta['observe_ns']}")
        fq = meta["l4_gen"]["fqdn_names"]
        print(f"toFQDNs in the policies: {sum(len(v) for v in fq.values())} matchName(s) in {len(fq)} namespace(s): "
              f"{', '.join(sorted({n for v in fq.values() for n in v})) or '-'}; HTTP-rule backends: {meta['l4_gen']['http_backends']}")
        for kind in ("l4", "l7"):
            g = meta[f"{kind}_gen"]
            print(f"  flows-{kind}.jsonl: {g['flows']:,} flows from {g['sessions']:,} connections, "
                  f"{fmt_b(g['bytes'])}, generated in {fmt_s(g['seconds'])}")
        targets: list[Target] = []
        for kind in ("l4", "l7"):
            targets += measure_file(kind, meta[kind], meta, args.repeat)
        print_targets(targets, target_width=7, value_width=44)
        print("\n(replay loop: engine built beforehand; the CLI wall time includes process start, the engine "
              "build and writing JSON; peak RSS from wait4 of each child process)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
