"""L7 matcher benchmark: HTTP rule sets, DNS patterns, Kafka rules.

Run with `.venv/bin/python bench/l7.py` (`--quick` for fewer iterations). Not a test: it prints
figures next to the targets and asserts nothing.

* cold: every check uses a request never seen before (the memo never hits), so each check
  pays the full evaluation (one RE2 call for HTTP rule sets without header conditions;
  string operations or one RE2 call for DNS names).
* warm: a small set of requests repeated (the common case: clients repeat requests), served
  by the bounded memo.

Targets: >= 500k HTTP rule-set checks/s for a port with 100 rules; >= 1M DNS pattern
matches/s.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from ciliary.identity.fqdn import FQDNSelectorIndex
from ciliary.l7 import DNSMatcher, HTTPPolicy, HTTPRequest, KafkaPolicy, kafka_request
from ciliary.model.cilium import FQDNSelector, PortRuleHTTP, PortRuleKafka

HTTP_TARGET = 500_000
DNS_TARGET = 1_000_000


def rate(fn: Callable[[Any], object], items: Sequence[Any], repeat: int) -> float:
    """Best-of-`repeat` calls per second of `fn` over `items`."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for x in items:
            fn(x)
        best = min(best, time.perf_counter() - t0)
    return len(items) / best


def fmt(r: float, target: int | None = None) -> str:
    s = f"{r / 1000:9.0f}k/s"
    if target:
        s += f"   ({r / target:4.2f}x target {target // 1000}k/s)"
    return s


def http_rules(n: int) -> list[PortRuleHTTP]:
    rules = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            rules.append(PortRuleHTTP(method="GET", path=f"/api/v{i % 3}/svc{i}/[0-9a-f-]+"))
        elif kind == 1:
            rules.append(PortRuleHTTP(method="POST|PUT", path=f"/api/v1/svc{i}(/.*)?"))
        elif kind == 2:
            rules.append(
                PortRuleHTTP(
                    method="GET",
                    path=f"/svc{i}/items/[0-9]+",
                    host=f"svc{i}\\.example\\.com(:[0-9]+)?",
                )
            )
        else:
            rules.append(
                PortRuleHTTP(path=f"/inventory.Service{i}/(Check|Reserve)Stock", method="POST")
            )
    return rules


def http_requests(n: int, seed: int) -> list[HTTPRequest]:
    rnd = random.Random(seed)
    out = []
    for j in range(n):
        i = rnd.randrange(100)
        r = rnd.random()
        if r < 0.25:  # allowed by a GET rule (i % 4 == 0), distinct ids
            i -= i % 4
            out.append(HTTPRequest("GET", f"/api/v{i % 3}/svc{i}/{j:x}-ab", "svc.example.com"))
        elif r < 0.5:  # allowed by a POST|PUT rule (i % 4 == 1)
            i = i - i % 4 + 1
            out.append(HTTPRequest("PUT", f"/api/v1/svc{i}/items/{j}", "svc.example.com"))
        else:  # denied
            out.append(HTTPRequest("DELETE", f"/api/v1/svc{i}/{j}", "svc.example.com"))
    return out


def bench_http(quick: bool) -> None:
    n = 20_000 if quick else 100_000
    rep = 2 if quick else 3
    print("HTTP (one port, 100 rules, path/method/host regexes)")
    t0 = time.perf_counter()
    policy = HTTPPolicy(http_rules(100))
    print(f"  compile 100 rules            {1000 * (time.perf_counter() - t0):9.1f} ms")
    cold = http_requests(n, 1)
    distinct = HTTPPolicy(http_rules(100), memo_size=1)
    print(f"  cold (distinct requests)     {fmt(rate(distinct.check, cold, rep), HTTP_TARGET)}")
    warm = http_requests(256, 2) * (n // 256)
    policy.check(warm[0])
    print(f"  warm (256 repeated requests) {fmt(rate(policy.check, warm, rep), HTTP_TARGET)}")
    allowed = sum(policy.check(r).allowed for r in cold[:5000])
    print(f"  (cold mix: {allowed / 50:.0f}% allowed)")
    hdr = HTTPPolicy(
        [*http_rules(99), PortRuleHTTP(path="/x", headers=["X-Token: t"])], memo_size=1
    )
    print(f"  cold, 99 rules + 1 with headers {fmt(rate(hdr.check, cold, rep), HTTP_TARGET)}")
    log = HTTPPolicy(
        [
            *http_rules(99),
            PortRuleHTTP.model_validate(
                {
                    "path": "/x",
                    "headerMatches": [{"name": "X-Token", "value": "t", "mismatch": "LOG"}],
                }
            ),
        ],
        memo_size=1,
    )
    few = cold[: max(2000, n // 20)]
    r = rate(log.check, few, rep)
    print(f"  cold, 99 rules + 1 LOG headerMatch (no short-circuit) {fmt(r)}")


def dns_selectors() -> list[FQDNSelector]:
    sels = []
    for i in range(20):
        sels.append(FQDNSelector(match_name=f"api{i}.service{i}.com"))
        sels.append(FQDNSelector(match_pattern=f"*.svc{i}.cluster.local"))
    for i in range(8):
        sels.append(FQDNSelector(match_pattern=f"**.cdn{i}.example.net"))
    sels.append(FQDNSelector(match_pattern="*.*.svc.cluster.local"))  # general shape: RE2
    sels.append(FQDNSelector(match_pattern="s3-*.amazonaws.com"))
    return sels


def dns_names(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    out = []
    for j in range(n):
        i = rnd.randrange(20)
        r = rnd.random()
        if r < 0.25:
            out.append(f"api{i}.service{i}.com")
        elif r < 0.5:
            out.append(f"pod{j}.svc{i}.cluster.local")
        elif r < 0.65:
            out.append(f"a{j}.b.cdn{i % 8}.example.net")
        elif r < 0.75:
            out.append(f"web{j}.ns{i}.svc.cluster.local")
        else:
            out.append(f"host{j}.evil{i}.com")
    return out


def bench_dns(quick: bool) -> None:
    n = 20_000 if quick else 100_000
    rep = 2 if quick else 3
    sels = dns_selectors()
    print(f"DNS ({len(sels)} selectors: names, *.x, **.x, 2 general patterns)")
    cold = dns_names(n, 3)
    m, to_fqdns = DNSMatcher(sels, memo_size=1), FQDNSelectorIndex(sels, memo_size=1)
    print(f"  cold matches() (distinct)    {fmt(rate(m.matches, cold, rep), DNS_TARGET)}")
    print(f"  cold matching() (distinct)   {fmt(rate(to_fqdns.matching, cold, rep))}")
    warm_m, warm_to_fqdns = DNSMatcher(sels), FQDNSelectorIndex(sels)
    warm = dns_names(512, 4) * (n // 512)
    print(f"  warm matches() (512 names)   {fmt(rate(warm_m.matches, warm, rep), DNS_TARGET)}")
    print(f"  warm matching() (512 names)  {fmt(rate(warm_to_fqdns.matching, warm, rep))}")
    one = DNSMatcher([FQDNSelector(match_pattern="*.tosspayments.com")], memo_size=1)
    print(f"  cold, one '*.x' pattern      {fmt(rate(one.matches, cold, rep), DNS_TARGET)}")
    general = DNSMatcher(
        [FQDNSelector(match_pattern=f"a*b{i}.*.example.com") for i in range(40)], memo_size=1
    )
    rnd = random.Random(6)
    tail_names = [f"a{j}b{rnd.randrange(60)}.x{j}.example.com" for j in range(n)]
    r = rate(general.matches, tail_names, rep)
    print(f"  cold, 40 general patterns, RE2 on every name   {fmt(r, DNS_TARGET)}")
    r = rate(general.matches, cold, rep)
    print(f"  cold, same patterns, names skipped by tail check {fmt(r, DNS_TARGET)}")


def bench_kafka(quick: bool) -> None:
    n = 20_000 if quick else 100_000
    rules = [PortRuleKafka(role="produce", topic=f"t{i}") for i in range(20)] + [
        PortRuleKafka(role="consume", topic="orders")
    ]
    p = KafkaPolicy(rules)
    rnd = random.Random(5)
    reqs = [
        kafka_request(rnd.choice((0, 1, 3)), 5, "c", [f"t{rnd.randrange(25)}"]) for _ in range(n)
    ]
    print("Kafka (21 rules)")
    print(f"  check (no memo)              {fmt(rate(p.check, reqs, 2))}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    bench_http(args.quick)
    bench_dns(args.quick)
    bench_kafka(args.quick)


if __name__ == "__main__":
    main()
