"""nf_tables set declarations and element values: parsing and canonical form.

A `SetSpec` is a set's declared type (``map ipcache { type ipv4_addr : mark; flags
interval; }``); it turns the Python values callers write into integers (`SetSpec._parse`,
which raises ValueError/TypeError on anything the set cannot hold) and back into the
canonical `Elem` (`SetSpec.normalize`). The bytes are `ciliary.datapath.nftcodec`'s job.

================  ===========================  ========================================
field             Python value                 in the kernel (each concat field padded
                                               to 4 bytes)
================  ===========================  ========================================
``ipv4_addr``     ``"10.0.0.1"``; a CIDR or    4 bytes, network order
                  ``(lo, hi)`` in interval
                  sets
``mark``          ``int`` (u32)                host order, as nft stores ``meta mark``;
                                               network order in the *key* of an
                                               interval set (nft converts it so ranges
                                               compare as bytes)
``inet_proto``    ``6`` or ``"tcp"``           1 byte
``inet_service``  ``8080`` or ``(8000, 8080)``  2 bytes, network order
``icmp_type``     ``8`` or ``"echo-request"``  1 byte
================  ===========================  ========================================

Element shapes (`ElemLike`): an `Elem`; for a set, its key (a bare value for a single
field) or ``(key, None)`` with the key a tuple; for a map, a ``(key, data)`` pair (when
deleting, the key alone too). A bare 2-tuple of a single-field set is a range.

Canonical values (what `NftWriter.list_elements` returns and `SetSpec.normalize` produces):
IPs as ``str``, everything else ``int``, a range as ``(lo, hi)`` and a one-value range as
the value. Two canonical `Elem` are equal when key and data are; timeouts do not count.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network

__all__ = ["Elem", "ElemLike", "Field", "FieldValue", "Key", "SetSpec", "Value", "spec_of"]


class Field(StrEnum):
    """An nft data type usable in a set key or as map data."""

    IPV4_ADDR = "ipv4_addr"
    MARK = "mark"
    INET_PROTO = "inet_proto"
    INET_SERVICE = "inet_service"
    ICMP_TYPE = "icmp_type"


@dataclass(frozen=True, slots=True)
class _FieldInfo:
    size: int  # bytes before padding
    type_id: int  # nft's datatype number (TYPE_IPADDR ...), as stored in NFTA_SET_KEY_TYPE
    host_order: bool

    @property
    def max(self) -> int:
        return (1 << (8 * self.size)) - 1


_INFO: dict[str, _FieldInfo] = {
    Field.IPV4_ADDR: _FieldInfo(4, 7, False),
    Field.MARK: _FieldInfo(4, 19, True),
    Field.INET_PROTO: _FieldInfo(1, 12, False),
    Field.INET_SERVICE: _FieldInfo(2, 13, False),
    Field.ICMP_TYPE: _FieldInfo(1, 14, False),
}
_BY_TYPE_ID = {info.type_id: f for f, info in _INFO.items()}
_TYPE_BITS = 6  # nft packs a concatenation's type ids 6 bits apiece, first field highest

PROTO_NAMES: dict[str, int] = {
    "icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51,
    "icmpv6": 58, "sctp": 132, "udplite": 136,
}  # fmt: skip
ICMP_TYPE_NAMES: dict[str, int] = {
    "echo-reply": 0, "destination-unreachable": 3, "source-quench": 4, "redirect": 5,
    "echo-request": 8, "router-advertisement": 9, "router-solicitation": 10,
    "time-exceeded": 11, "parameter-problem": 12, "timestamp-request": 13,
    "timestamp-reply": 14, "info-request": 15, "info-reply": 16,
    "address-mask-request": 17, "address-mask-reply": 18,
}  # fmt: skip

Value = str | int
FieldValue = Value | tuple[Value, Value]
Key = tuple[FieldValue, ...]


@dataclass(frozen=True, slots=True)
class Elem:
    """A set element: key (one value per field, ``(lo, hi)`` for a range), map data, timeout.

    `timeout_ms` is the element's timeout (``flags timeout`` sets); `expires_ms` is only
    filled by `NftWriter.list_elements`. Neither takes part in equality. Unpacks as
    ``key, data = elem``.
    """

    key: Key
    data: Value | None = None
    timeout_ms: int | None = field(default=None, compare=False)
    expires_ms: int | None = field(default=None, compare=False)

    def __iter__(self) -> Iterator[Key | Value | None]:
        """``key, data = elem``."""
        return iter((self.key, self.data))


ElemLike = Elem | Key | Value | tuple[Key | FieldValue, Value | None]
"""An element as callers may write it: an `Elem`; for a set, its key (a bare value for a
single field); for a map, a ``(key, data)`` pair."""


def _parse_int(fld: str, value: object) -> int:
    info = _INFO[fld]
    if fld == Field.IPV4_ADDR:
        if isinstance(value, str):
            try:
                return int.from_bytes(socket.inet_pton(socket.AF_INET, value), "big")
            except OSError:
                raise ValueError(f"not an IPv4 address: {value!r}") from None
        if isinstance(value, IPv4Address):
            return int(value)
        raise TypeError(f"ipv4_addr wants a str, got {value!r}")
    if isinstance(value, str):
        names = PROTO_NAMES if fld == Field.INET_PROTO else ICMP_TYPE_NAMES
        if fld in (Field.INET_PROTO, Field.ICMP_TYPE) and value in names:
            return names[value]
        raise ValueError(f"{fld} wants an int, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{fld} wants an int, got {value!r}")
    if not 0 <= value <= info.max:
        raise ValueError(f"{fld} value out of range: {value}")
    return value


def _parse_field(fld: str, value: object, ranged: bool) -> tuple[int, int]:
    """(lo, hi) of one key field; a range only where the set allows one."""
    if isinstance(value, tuple):
        if len(value) != 2:
            raise ValueError(f"a range is (lo, hi), got {value!r}")
        lo, hi = _parse_int(fld, value[0]), _parse_int(fld, value[1])
        if lo > hi:
            raise ValueError(f"empty range {value!r}")
    elif fld == Field.IPV4_ADDR and isinstance(value, str) and "/" in value:
        try:
            net = IPv4Network(value)
        except ValueError as exc:
            raise ValueError(f"bad prefix {value!r}: {exc}") from None
        lo, hi = int(net.network_address), int(net.broadcast_address)
    else:
        lo = hi = _parse_int(fld, value)
    if lo != hi and not ranged:
        raise ValueError(f"range {value!r} in a set without 'flags interval'")
    return lo, hi


def _canon(fld: str, value: int) -> Value:
    if fld == Field.IPV4_ADDR:
        return socket.inet_ntop(socket.AF_INET, value.to_bytes(4, "big"))
    return value


def _canon_field(fld: str, lo: int, hi: int) -> FieldValue:
    return _canon(fld, lo) if lo == hi else (_canon(fld, lo), _canon(fld, hi))


@dataclass(frozen=True, slots=True)
class _Parsed:
    """An element reduced to integers: per field (lo, hi), data, timeout."""

    ranges: tuple[tuple[int, int], ...]
    data: int | None
    timeout_ms: int | None


@dataclass(frozen=True)
class SetSpec:
    """How a set is declared: name, key field types, map data type, flags.

    ``SetSpec("ipcache", (Field.IPV4_ADDR,), Field.MARK, interval=True)`` is
    ``map ipcache { type ipv4_addr : mark; flags interval; }``; `SetSpec.parse` reads
    the nft spelling: ``SetSpec.parse("ipcache", "ipv4_addr : mark", interval=True)``.
    """

    name: str
    key: tuple[str, ...]  # `Field` values (a plain str is converted)
    data: str | None = None
    interval: bool = False
    timeout: bool = False

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError(f"set {self.name}: empty key")
        try:
            object.__setattr__(self, "key", tuple(Field(f) for f in self.key))
            if self.data is not None:
                object.__setattr__(self, "data", Field(self.data))
        except ValueError as exc:
            raise ValueError(f"set {self.name}: unsupported type: {exc}") from None

    @classmethod
    def parse(cls, name: str, decl: str, *, interval: bool = False, timeout: bool = False) -> SetSpec:
        """From nft's ``type`` clause: ``"ipv4_addr . mark . inet_proto . inet_service"``."""
        key_part, _, data_part = decl.partition(":")
        try:
            key = tuple(Field(t.strip()) for t in key_part.split("."))
            data = Field(data_part.strip()) if data_part.strip() else None
        except ValueError as exc:
            raise ValueError(f"set {name}: unsupported type in {decl!r}: {exc}") from None
        return cls(name, key, data, interval, timeout)

    @property
    def concat(self) -> bool:
        return len(self.key) > 1

    @property
    def key_len(self) -> int:
        return 4 * len(self.key) if self.concat else _INFO[self.key[0]].size

    def declaration(self) -> str:
        """The nft set statement this spec describes."""
        kind = "map" if self.data else "set"
        typ = " . ".join(self.key) + (f" : {self.data}" if self.data else "")
        flags = [f for f, on in (("interval", self.interval), ("timeout", self.timeout)) if on]
        tail = f" flags {', '.join(flags)};" if flags else ""
        return f"{kind} {self.name} {{ type {typ};{tail} }}"

    # -- values ------------------------------------------------------------------------

    def _parse(self, elem: ElemLike, *, need_data: bool = True) -> _Parsed:
        key: object
        data: object
        timeout: int | None
        if isinstance(elem, Elem):
            key, data, timeout = elem.key, elem.data, elem.timeout_ms
        elif self.data is not None and not need_data and not self._is_pair(elem):
            key, data, timeout = elem, None, None  # deleting from a map: the key alone
        elif self.data is not None or (
            isinstance(elem, tuple)
            and len(elem) == 2
            and isinstance(elem[0], tuple)
            and elem[1] is None
        ):
            # a map element is a (key, data) pair; a set also takes (key, None)
            if not isinstance(elem, tuple) or len(elem) != 2:
                raise ValueError(f"map {self.name}: element {elem!r} is not (key, data)")
            key, data, timeout = elem[0], elem[1], None
        else:
            key, data, timeout = elem, None, None
        if not self.concat and (not isinstance(key, tuple) or len(key) == 2):
            key = (key,)  # a single-field key may be bare: a value, a CIDR or (lo, hi)
        if not isinstance(key, tuple):
            raise ValueError(f"set {self.name}: key {key!r} needs {len(self.key)} fields")
        if len(key) != len(self.key):
            raise ValueError(f"set {self.name}: key {key!r} needs {len(self.key)} fields")
        ranges = tuple(
            _parse_field(f, v, self.interval) for f, v in zip(self.key, key, strict=True)
        )
        if self.data is None:
            if data is not None:
                raise ValueError(f"set {self.name} is not a map: element {elem!r} has data")
            data_int = None
        elif data is None:
            if need_data:
                raise ValueError(f"map {self.name}: element {elem!r} has no data")
            data_int = None
        else:
            data_int = _parse_int(self.data, data)
        if timeout is not None:
            if not self.timeout:
                raise ValueError(f"set {self.name} has no 'flags timeout': element {elem!r}")
            if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0:
                raise ValueError(f"set {self.name}: bad timeout {timeout!r}")
        return _Parsed(ranges, data_int, timeout)

    def _is_pair(self, elem: object) -> bool:
        """Whether a map element is written as (key, data) rather than as a bare key."""
        if not isinstance(elem, tuple) or len(elem) != 2:
            return False
        return not self.concat or (isinstance(elem[0], tuple) and len(elem[0]) == len(self.key))

    def normalize(self, elem: ElemLike) -> Elem:
        """The canonical `Elem` (raises ValueError/TypeError on a value the set cannot hold)."""
        p = self._parse(elem)
        return self._canonical(p.ranges, p.data, p.timeout_ms, None)

    def _canonical(
        self,
        ranges: Sequence[tuple[int, int]],
        data: int | None,
        timeout: int | None,
        expires: int | None,
    ) -> Elem:
        key = tuple(_canon_field(f, lo, hi) for f, (lo, hi) in zip(self.key, ranges, strict=True))
        value = None if data is None or self.data is None else _canon(self.data, data)
        return Elem(key, value, timeout, expires)

    # -- bytes -------------------------------------------------------------------------

    def _key_bytes(self, values: Iterable[int]) -> bytes:
        out = []
        for fld, v in zip(self.key, values, strict=True):
            info = _INFO[fld]
            order = sys.byteorder if info.host_order and not self.interval else "big"
            raw = v.to_bytes(info.size, order)
            out.append(raw + b"\0" * (-info.size % 4) if self.concat else raw)
        return b"".join(out)

    def _data_bytes(self, value: int) -> bytes:
        assert self.data is not None
        info = _INFO[self.data]
        return value.to_bytes(info.size, sys.byteorder if info.host_order else "big")


def spec_of(decl: object) -> SetSpec:
    """A SetSpec from any declaration object with the same attributes (name, key, data,
    interval, timeout), such as `ciliary.datapath.compile.SetDecl`."""
    if isinstance(decl, SetSpec):
        return decl
    try:
        return SetSpec(
            decl.name,  # type: ignore[attr-defined]
            tuple(decl.key),  # type: ignore[attr-defined]
            getattr(decl, "data", None),
            bool(getattr(decl, "interval", False)),
            bool(getattr(decl, "timeout", False)),
        )
    except AttributeError as exc:
        raise TypeError(f"not a set declaration: {decl!r} ({exc})") from None
