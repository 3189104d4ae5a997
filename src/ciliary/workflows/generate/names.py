"""Peers as few and as narrow as the user asks: DNS names under one parent as a pattern, and
world addresses as one covering prefix.

Rules: both are opt-in widenings. Without a threshold every name is a `matchName`; with
`threshold` N, N or more distinct names directly under one parent (`a.x.com`, `b.x.com`)
become `*.x.com` (one label, as Cilium's `*` matches), and names under no such parent stay.
Without aggregation every address is its own /32 (/128); with it, the addresses of one
family become the narrowest single prefix that covers them all.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


def fqdn_selectors(names: Iterable[str], threshold: int = 0) -> list[tuple[str, str]]:
    """(`matchName` or `matchPattern`, value) for the names, sorted."""
    names = sorted(set(names))
    if threshold < 2:
        return [("matchName", n) for n in names]
    by_parent: dict[str, list[str]] = {}
    for n in names:
        _, dot, parent = n.partition(".")
        if dot and "." in parent:  # never a pattern straight under a top-level domain
            by_parent.setdefault(parent, []).append(n)
    patterned = {p for p, ns in by_parent.items() if len(ns) >= threshold}
    out = {("matchPattern", f"*.{p}") for p in patterned}
    out |= {("matchName", n) for n in names if n.partition(".")[2] not in patterned}
    return sorted(out, key=lambda kv: kv[1])


def host_prefix(ip: str) -> str:
    addr = ipaddress.ip_address(ip)
    return f"{addr}/{addr.max_prefixlen}"


def cidrs(ips: Iterable[str], aggregate: bool = False) -> list[str]:
    """The prefixes for world addresses, sorted (see the module's rules)."""
    addrs = sorted({ipaddress.ip_address(ip) for ip in ips}, key=lambda a: (a.version, int(a)))
    if not aggregate:
        return [f"{a}/{a.max_prefixlen}" for a in addrs]
    out = []
    for version in (4, 6):
        family = [a for a in addrs if a.version == version]
        if not family:
            continue
        lo, hi = int(family[0]), int(family[-1])
        bits = family[0].max_prefixlen
        prefix = bits - (lo ^ hi).bit_length()
        net = ipaddress.ip_network((family[0], prefix), strict=False)
        out.append(str(net))
    return out
