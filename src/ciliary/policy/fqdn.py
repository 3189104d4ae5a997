"""The FQDN cache of the DNS proxy (semantics §7): name -> IPs with TTL, per endpoint.

Only answers that passed an allowed DNS rule reach it (the proxy only sees redirected DNS).
Time is passed in explicitly (seconds); `now=None` means "no time has passed", which is what
`ciliary trace --resolve` needs. Options keep Cilium's names:
`tofqdns-min-ttl` (default 0: honour the answer's TTL), `tofqdns-endpoint-max-ip-per-hostname`
(default 1000, newest Helm default; the oldest IPs are evicted first),
`tofqdns-idle-connection-grace-period` (default 0 s: an expired name stays usable this long
after the last connection to its IP; IPs never connected to expire with their TTL).

Contracts:
* State, not a memo: one cache per endpoint, owned by the engine
  (`PolicyEngine.fqdn_cache`). Only `update` (a DNS answer) and `mark_connection` (a live
  connection) write to it.
* `versions` is one dict shared by all the caches of an engine: any change that may change
  `names_until(ip, now)` other than by time passing raises the counts of (ip, this node)
  and (ip, None). The engine memoises FQDN identities against these counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class _Name:
    ips: dict[str, float] = field(default_factory=dict)  # ip -> expiry (insertion ordered)


@dataclass
class FQDNCache:
    """One endpoint's learned names."""

    min_ttl: int = 0
    max_ips_per_hostname: int = 1000
    grace_period: float = 0.0
    _names: dict[str, _Name] = field(default_factory=dict)
    # ip -> time of the last connection seen to it: only IPs with a connection are kept past
    # their TTL by the grace period (pkg/fqdn/cache.go isConnectionAlive; the conntrack GC
    # marks IPs alive until gcStart + tofqdns-idle-connection-grace-period).
    _connections: dict[str, float] = field(default_factory=dict)
    _by_ip: dict[str, dict[str, None]] = field(default_factory=dict)  # ip -> names (ordered)
    # (ip, node) and (ip, None) -> a count raised whenever what `names_for(ip, now)` gives may
    # change other than by time passing: shared by the engine's caches, whose FQDN
    # identities are memoised per observing node by it. `node` is this endpoint's node.
    versions: dict[tuple[str, str | None], int] = field(default_factory=dict)
    node: str | None = None

    def _bump(self, ip: str) -> None:
        versions = self.versions
        for key in ((ip, self.node), (ip, None)):
            versions[key] = versions.get(key, 0) + 1

    def mark_connection(self, ip: str, now: float | None) -> None:
        if now is not None:
            self._connections[ip] = max(now, self._connections.get(ip, now))
            if self.grace_period > 0:  # may keep an expired name valid again
                self._bump(ip)

    def _valid(self, ip: str, expires: float, now: float | None) -> bool:
        if now is None or expires > now:
            return True
        seen = self._connections.get(ip)
        return seen is not None and seen + self.grace_period > now

    def update(self, name: str, ips: list[str], ttl: int, now: float | None) -> None:
        entry = self._names.setdefault(name, _Name())
        expires = (now or 0.0) + max(ttl, self.min_ttl)
        for ip in ips:
            before = entry.ips.pop(ip, None)
            entry.ips[ip] = expires
            self._by_ip.setdefault(ip, {})[name] = None
            # A name valid now and kept valid at least as long changes no answer.
            if before is None or before <= (now or 0.0) or expires < before:
                self._bump(ip)
        while len(entry.ips) > self.max_ips_per_hostname:
            oldest = min(entry.ips, key=lambda i: entry.ips[i])
            del entry.ips[oldest]
            self._by_ip[oldest].pop(name, None)
            self._bump(oldest)

    def names_until(self, ip: str, now: float | None) -> tuple[list[str], float]:
        """`names_for`, and the time until which it stays so while its version does
        (a name that lapsed stays lapsed as time passes; one valid lapses at its expiry or
        at the end of its grace period)."""
        out = []
        until = math.inf
        names = self._names
        for name in self._by_ip.get(ip, ()):
            exp = names[name].ips.get(ip)
            if exp is None:
                continue
            if now is None or exp > now:
                out.append(name)
                until = min(until, exp)
            elif self._valid(ip, exp, now):  # kept by a connection within the grace period
                out.append(name)
                until = min(until, self._connections[ip] + self.grace_period)
        return out, until

    def lookup(self, name: str, now: float | None) -> list[str]:
        entry = self._names.get(name)
        if entry is None:
            return []
        return [ip for ip, exp in entry.ips.items() if self._valid(ip, exp, now)]

    def as_dict(self, now: float | None = None) -> dict[str, list[str]]:
        return {n: self.lookup(n, now) for n in sorted(self._names) if self.lookup(n, now)}
