"""The FQDN cache of the DNS proxy (semantics §7): name -> IPs with TTL, per endpoint.

Only answers that passed an allowed DNS rule reach it (the proxy only sees redirected DNS).
Time is passed in explicitly (seconds); `now=None` means "no time has passed", which is what
`ciliary trace --resolve` needs. Options keep Cilium's names:
`tofqdns-min-ttl` (default 0: honour the answer's TTL), `tofqdns-endpoint-max-ip-per-hostname`
(default 1000, newest Helm default; the oldest IPs are evicted first),
`tofqdns-idle-connection-grace-period` (default 0 s: expired names stay usable this long).
"""

from __future__ import annotations

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

    def update(self, name: str, ips: list[str], ttl: int, now: float | None) -> None:
        entry = self._names.setdefault(name, _Name())
        expires = (now or 0.0) + max(ttl, self.min_ttl)
        for ip in ips:
            entry.ips.pop(ip, None)
            entry.ips[ip] = expires
        while len(entry.ips) > self.max_ips_per_hostname:
            oldest = min(entry.ips, key=lambda i: entry.ips[i])
            del entry.ips[oldest]

    def names_for(self, ip: str, now: float | None) -> list[str]:
        """Names that resolved to `ip` and are still valid at `now`."""
        out = []
        for name, entry in self._names.items():
            exp = entry.ips.get(ip)
            if exp is not None and (now is None or exp + self.grace_period > now):
                out.append(name)
        return out

    def lookup(self, name: str, now: float | None) -> list[str]:
        entry = self._names.get(name)
        if entry is None:
            return []
        return [ip for ip, exp in entry.ips.items() if now is None or exp + self.grace_period > now]

    def as_dict(self, now: float | None = None) -> dict[str, list[str]]:
        return {n: self.lookup(n, now) for n in sorted(self._names) if self.lookup(n, now)}
