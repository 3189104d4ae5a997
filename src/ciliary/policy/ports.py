"""Protocols, ports, port ranges as aligned prefixes, ICMP types (pkg/policy/api/l4.go, icmp.go).

Constants and pure functions. A `PortPrefix` (frozen, ordered) is the port part of Cilium's
policy key: protocol 0 is every protocol, prefix length 0 every port, 16 one port.
"""

from __future__ import annotations

from dataclasses import dataclass

from ciliary.model.values import ICMP_TYPES

PROTO_ANY = 0
PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58
PROTO_SCTP = 132

PROTO_NUMBERS = {"TCP": PROTO_TCP, "UDP": PROTO_UDP, "SCTP": PROTO_SCTP, "ICMP": PROTO_ICMP, "ICMPV6": PROTO_ICMPV6}
PROTO_NAMES = {v: k for k, v in PROTO_NUMBERS.items()} | {PROTO_ANY: "ANY"}


def port_max(proto: int) -> int:
    """The highest port of `proto` (for ICMP and ICMPv6 the "port" is the type)."""
    return 255 if proto in (PROTO_ICMP, PROTO_ICMPV6) else 65535


# `ANY` (or empty) in toPorts means the transport protocols with ports, never ICMP.
ANY_TRANSPORT = (PROTO_TCP, PROTO_UDP, PROTO_SCTP)

# CamelCase ICMP message names accepted by Cilium (pkg/policy/api/icmp.go), per family.
ICMPV4_TYPES: dict[str, int] = ICMP_TYPES["IPv4"]
ICMPV6_TYPES: dict[str, int] = ICMP_TYPES["IPv6"]


def icmp_type_number(family: str | None, value: int | str) -> int:
    if isinstance(value, int):
        return value
    if value.isdigit():
        return int(value)
    table = ICMPV6_TYPES if (family or "IPv4") == "IPv6" else ICMPV4_TYPES
    return table[value]


@dataclass(frozen=True, order=True)
class PortPrefix:
    """A port match as in Cilium's policy key: protocol, port, prefix length (0-16 bits)."""

    proto: int  # 0 = any protocol (then port and prefix are 0)
    port: int
    prefix: int  # 16 = exactly `port`; 0 = every port

    def covers(self, proto: int, port: int) -> bool:
        if self.proto != PROTO_ANY and self.proto != proto:
            return False
        if self.prefix == 0:
            return True
        shift = 16 - self.prefix
        return (port >> shift) == (self.port >> shift)

    @property
    def specificity(self) -> tuple[int, int]:
        return (0 if self.proto == PROTO_ANY else 1, self.prefix)

    @property
    def end(self) -> int:
        return self.port | ((1 << (16 - self.prefix)) - 1)

    def __str__(self) -> str:
        if self.proto == PROTO_ANY:
            return "ANY"
        name = PROTO_NAMES.get(self.proto, str(self.proto))
        if self.prefix == 0:
            return f"{name}/*" if self.proto not in (PROTO_ICMP, PROTO_ICMPV6) else f"{name}"
        if self.prefix == 16:
            return f"{self.port}/{name}"
        return f"{self.port}-{self.end}/{name}"


ALL_PORTS = PortPrefix(PROTO_ANY, 0, 0)


def range_to_prefixes(start: int, end: int) -> list[tuple[int, int]]:
    """[start, end] as power-of-two aligned (port, prefix length) blocks, like Cilium's map."""
    if start == 0 and end == 65535:
        return [(0, 0)]
    out: list[tuple[int, int]] = []
    port = start
    while port <= end:
        size = port & -port if port else 1 << 16
        while size > end - port + 1:
            size >>= 1
        out.append((port, 16 - (size.bit_length() - 1)))
        port += size
    return out


def port_prefixes(proto: int, start: int, end: int | None) -> list[PortPrefix]:
    """A port (0 = all) or range of one protocol as prefixes."""
    if start == 0:
        return [PortPrefix(proto, 0, 0)]
    if end is None or end <= start:
        # Cilium ignores an endPort below port (Open question 10: treated as the single port).
        return [PortPrefix(proto, start, 16)]
    return [PortPrefix(proto, p, plen) for p, plen in range_to_prefixes(start, end)]


def protocols_of(name: str | None) -> tuple[int, ...]:
    if not name or name.upper() == "ANY":
        return ANY_TRANSPORT
    return (PROTO_NUMBERS[name.upper()],)
