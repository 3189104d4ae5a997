"""IP -> identity by longest-prefix match, as seen from one node (Cilium's ipcache).

What goes in (cilium: pkg/ipcache/metadata.go `resolveIdentity`):

* pod IPs -> the pod's identity;
* node IPs -> host (1) on the observing node, remote-node (6) elsewhere;
* kube-apiserver endpoint IPs -> 7 (reserved:kube-apiserver + reserved:remote-node) on a
  remote node, the host identity with `reserved:kube-apiserver` added on the observing
  node, or a node-local identity {kube-apiserver, world, cidr:<ip>} outside the cluster;
* CIDR prefixes referenced by policy -> CIDR identities;
* anything else -> world (2; 9/10 when dual-stack).

When several sources name the same prefix, pods win over nodes/apiserver, which win over
policy CIDRs: a pod or node IP never becomes a CIDR identity.

Lookups try an exact-address dict first, then one dict per prefix length present,
longest first; both keyed by the integer value of the (masked) address.

Contracts:
* One `IPCache` per observing node. It writes to the shared `IdentityAllocator` (CIDR
  identities, an apiserver outside the cluster) and to nothing else.
* Entries are frozen `IPCacheEntry`s; between sources of equal priority the later wins.
* Lookups are memoised per address text (bounded); every write clears the memos, so they
  never answer from an older state. Addresses are trusted to be valid (loaders and flow
  readers check them): a malformed one raises ValueError.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from ciliary.cache import BoundedCache
from ciliary.identity.allocator import Identity, IdentityAllocator
from ciliary.identity.labels import IPNetwork, Label, LabelSet
from ciliary.identity.reserved import (
    KUBE_APISERVER,
    NAME_KUBE_APISERVER,
    REMOTE_NODE,
    reserved_label,
    world_label,
)

PRIORITY_CIDR: Final = 0
PRIORITY_NODE: Final = 1
PRIORITY_POD: Final = 2

_TAG_HOST: Final = "host"
_TAG_REMOTE: Final = "remote-node"
_TAG_APISERVER: Final = "kube-apiserver"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=1 << 16)
def _parse_ip(ip: str) -> tuple[int, int]:
    a = ipaddress.ip_address(ip)
    return a.version, int(a)


def _to_network(prefix: str | IPNetwork | IPAddress) -> IPNetwork:
    if isinstance(prefix, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return prefix
    if isinstance(prefix, str):
        return _parse_network(prefix)
    return ipaddress.ip_network(prefix, strict=False)


@lru_cache(maxsize=1 << 17)
def _parse_network(prefix: str) -> IPNetwork:
    # Every node's ipcache holds every pod IP: parse each address once.
    return ipaddress.ip_network(prefix, strict=False)


@dataclass(frozen=True, slots=True)
class IPCacheEntry:
    prefix: IPNetwork
    identity: Identity
    priority: int


class _Family:
    __slots__ = ("bits", "by_len", "exact", "lengths", "masks")

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.exact: dict[int, IPCacheEntry] = {}  # host routes (/32, /128)
        self.by_len: dict[int, dict[int, IPCacheEntry]] = {}
        self.lengths: list[int] = []  # present shorter prefix lengths, longest first
        self.masks: list[tuple[int, int]] = []  # (length, mask) in the same order

    def table(self, plen: int) -> dict[int, IPCacheEntry]:
        if plen == self.bits:
            return self.exact
        t = self.by_len.get(plen)
        if t is None:
            t = self.by_len[plen] = {}
            self.lengths = sorted(self.by_len, reverse=True)
            full = (1 << self.bits) - 1
            self.masks = [(n, full ^ ((1 << (self.bits - n)) - 1)) for n in self.lengths]
        return t


class IPCache:
    """Longest-prefix-match map of addresses to identities for one observing node."""

    def __init__(self, allocator: IdentityAllocator) -> None:
        self.allocator = allocator
        self._families = {4: _Family(32), 6: _Family(128)}
        self._tags: dict[IPNetwork, set[str]] = {}
        self._host = allocator.host  # the observing node's view of identity 1
        # Address text -> its identity / entry: replay asks for the same addresses over and
        # over. Cleared on every write.
        self._memo: BoundedCache[str, Identity] = BoundedCache(100_000)
        self._entry_memo: BoundedCache[str, IPCacheEntry | None] = BoundedCache(100_000)

    # -- writing ------------------------------------------------------------
    def upsert(self, prefix: str | IPNetwork | IPAddress, identity: Identity, priority: int) -> bool:
        """Map `prefix` to `identity` unless a higher-priority source already owns it."""
        net = _to_network(prefix)
        fam = self._families[net.version]
        table = fam.table(net.prefixlen)
        key = int(net.network_address)
        old = table.get(key)
        if old is not None and old.priority > priority:
            return False
        table[key] = IPCacheEntry(net, identity, priority)
        self._memo.clear()
        self._entry_memo.clear()
        return True

    def add_pod_ip(self, ip: str, identity: Identity) -> None:
        self.upsert(ip, identity, PRIORITY_POD)

    def add_node_ip(self, ip: str, *, local: bool) -> None:
        self._tag(ip, _TAG_HOST if local else _TAG_REMOTE)

    def add_kube_apiserver_ip(self, ip: str) -> None:
        self._tag(ip, _TAG_APISERVER)

    def add_cidr(self, prefix: str | IPNetwork) -> Identity:
        """Give a policy CIDR its identity; pods/nodes inside keep theirs."""
        net = _to_network(prefix)
        ident = self.allocator.cidr_identity(net)
        if net.prefixlen:  # /0 is the world fallback already
            self.upsert(net, ident, PRIORITY_CIDR)
        return ident

    def _tag(self, ip: str, tag: str) -> None:
        net = _to_network(ip)
        tags = self._tags.setdefault(net, set())
        tags.add(tag)
        if _TAG_HOST in tags and _TAG_APISERVER in tags:
            self._set_host_labels([reserved_label(NAME_KUBE_APISERVER)])
        self.upsert(net, self._resolve(net, tags), PRIORITY_NODE)

    def _resolve(self, net: IPNetwork, tags: set[str]) -> Identity:
        apiserver = _TAG_APISERVER in tags
        if _TAG_HOST in tags:
            return self._host
        if _TAG_REMOTE in tags:
            return self.allocator.reserved(KUBE_APISERVER if apiserver else REMOTE_NODE)
        # An apiserver outside the cluster (managed control planes): kube-apiserver +
        # world + its CIDR label (cilium: labels.LabelKubeAPIServerExt, resolveIdentity).
        return self.allocator.allocate(
            LabelSet(
                [
                    reserved_label(NAME_KUBE_APISERVER),
                    world_label(net.version, self.allocator.dual_stack),
                    Label.cidr(net),
                ]
            )
        )

    def add_host_labels(self, extra: list[Label]) -> None:
        """Merge labels into the observing node's host identity (policy-cidr-match-mode=nodes
        gives it the `cidr:` labels of the node's addresses)."""
        self._set_host_labels(extra)

    def _set_host_labels(self, extra: list[Label]) -> None:
        new = self.allocator.host_with([*self._host.labels, *extra])
        if new == self._host:
            return
        self._host = new
        # Re-point the entries of the local node's addresses at the new host view.
        for net, tags in self._tags.items():
            if _TAG_HOST in tags:
                self.upsert(net, new, PRIORITY_NODE)

    # -- reading ------------------------------------------------------------
    @property
    def host_identity(self) -> Identity:
        """Identity 1 as the observing node sees it (may carry reserved:kube-apiserver)."""
        return self._host

    def lookup_entry(self, ip: str | IPAddress) -> IPCacheEntry | None:
        """The longest-prefix entry containing `ip`, or None (world)."""
        if isinstance(ip, str):
            memo = self._entry_memo
            if ip in memo:
                return memo[ip]
            return memo.put(ip, self._lookup_entry(ip))
        return self._lookup_entry(ip)

    def _lookup_entry(self, ip: str | IPAddress) -> IPCacheEntry | None:
        if isinstance(ip, str):
            version, value = _parse_ip(ip)
        else:
            version, value = ip.version, int(ip)
        fam = self._families[version]
        hit = fam.exact.get(value)
        if hit is not None:
            return hit
        by_len = fam.by_len
        for plen, mask in fam.masks:
            hit = by_len[plen].get(value & mask)
            if hit is not None:
                return hit
        return None

    def lookup(self, ip: str | IPAddress) -> Identity:
        """Identity of `ip`: its longest matching prefix, else world."""
        if isinstance(ip, str):
            hit = self._memo.get(ip)
            if hit is not None:
                return hit
        entry = self.lookup_entry(ip)
        if entry is not None:
            ident = entry.identity
        else:
            ident = self.allocator.world(_parse_ip(ip)[0] if isinstance(ip, str) else ip.version)
        if isinstance(ip, str):
            self._memo.put(ip, ident)
        return ident

    def entries(self) -> list[IPCacheEntry]:
        """All entries, sorted by family, address and prefix length."""
        out: list[IPCacheEntry] = []
        for fam in self._families.values():
            out.extend(fam.exact.values())
            for t in fam.by_len.values():
                out.extend(t.values())
        out.sort(key=lambda e: (e.prefix.version, int(e.prefix.network_address), e.prefix.prefixlen))
        return out

    def __len__(self) -> int:
        return sum(len(f.exact) + sum(len(t) for t in f.by_len.values()) for f in self._families.values())
