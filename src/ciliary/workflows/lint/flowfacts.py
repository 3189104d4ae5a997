"""What lint learns from recorded flows: DNS answers per name, and who used DNS.

Contracts:
* `read_facts` streams the flows once and keeps only small summaries: per name the
  addresses and the shortest TTL of its answers, per pod the names it looked up and
  whether any of its DNS traffic got through.
* Names are lower-case without the trailing dot. A DNS response flow's destination is the
  client (Hubble reverses the sides of replies).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ciliary.flows.codec import OnBadLine, ReadStats, read_flows
from ciliary.flows.model import Flow


def _name(q: str) -> str:
    return q.rstrip(".").lower()


@dataclass
class NameFacts:
    ips: set[str] = field(default_factory=set)
    min_ttl: int | None = None
    answers: int = 0


@dataclass
class FlowFacts:
    names: dict[str, NameFacts] = field(default_factory=dict)
    queried: dict[str, set[str]] = field(default_factory=dict)  # pod key -> names looked up
    dns_worked: set[str] = field(default_factory=set)  # pods with DNS traffic not dropped
    flows: int = 0
    files: tuple[str, ...] = ()

    def add(self, flow: Flow) -> None:
        self.flows += 1
        l7 = flow.l7
        dns = l7.dns if l7 is not None else None
        l4 = flow.l4
        pp = l4.ports() if l4 is not None and l4.protocol in ("UDP", "TCP") else None
        dport = pp[1] if pp is not None else None
        if dns is None and dport != 53:
            return
        response = dns is not None and str(l7.type if l7 is not None else "") == "RESPONSE"
        client = flow.destination if response else flow.source
        key = f"{client.namespace}/{client.pod_name}" if client is not None and client.pod_name else None
        dropped = str(flow.verdict) == "DROPPED"
        if key is not None and not dropped and not (response and dns is not None and dns.rcode not in (None, 0)):
            self.dns_worked.add(key)
        if dns is None or not dns.query:
            return
        name = _name(dns.query)
        if key is not None:
            self.queried.setdefault(key, set()).add(name)
        if response and dns.ips:
            nf = self.names.setdefault(name, NameFacts())
            nf.ips.update(dns.ips)
            nf.answers += 1
            ttl = dns.ttl
            if ttl is not None and (nf.min_ttl is None or ttl < nf.min_ttl):
                nf.min_ttl = ttl


def read_facts(
    sources: Iterable[str | Path], *, strict: bool = False, on_bad: OnBadLine | None = None,
    stats: ReadStats | None = None,
) -> FlowFacts:
    srcs = [str(s) for s in sources]
    facts = FlowFacts(files=tuple(srcs))
    for flow in read_flows(srcs, strict=strict, on_bad=on_bad, stats=stats):
        facts.add(flow)
    return facts
