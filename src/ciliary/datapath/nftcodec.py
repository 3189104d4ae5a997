"""nf_tables set elements as netlink bytes: encoding for NEWSETELEM/DELSETELEM, decoding of
GETSETELEM dumps.

Set shapes, encoded exactly as nft 1.0.6 encodes them (checked against ``nft -j list``):

- hash sets and maps: one element per key;
- single-field interval sets and maps (rbtree): a range [lo, hi] is a start element
  (with the data) and an end element ``hi + 1`` flagged NFT_SET_ELEM_INTERVAL_END; a range
  that ends at the field's maximum (e.g. 255.255.255.255) has no end element but the
  "interval open" user data nft writes;
- concatenated interval sets (pipapo): NFTA_SET_ELEM_KEY holds every field's low end,
  NFTA_SET_ELEM_KEY_END every field's high end;
- ``flags timeout`` sets: NFTA_SET_ELEM_TIMEOUT in milliseconds.

Two encoders, one contract. `_encode_elem` is the general path and the reference: it
encodes any element `SetSpec._parse` accepts (which reports bad values). `_Codec.encode`
is the fast path for the common shapes (plain str/int fields, no range, no prefix, no
timeout): it returns the very bytes the general path would, or None to hand the element
to it; it never raises and never accepts what the general path refuses.

Decoding goes straight from dumped bytes to canonical `Elem` (`_decode_elems`, `_assemble`).
These are `ciliary.datapath.nftnl`'s internals: the writer is the interface.
"""

from __future__ import annotations

import errno
import socket
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ciliary.datapath import netlink as nl
from ciliary.datapath.netlink import NetlinkError
from ciliary.datapath.nftspec import (
    _INFO,
    ICMP_TYPE_NAMES,
    PROTO_NAMES,
    Elem,
    Field,
    FieldValue,
    Key,
    SetSpec,
    Value,
    _Parsed,
)

NFTA_LIST_ELEM = 1
NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_DATA, NFTA_SET_ELEM_FLAGS = 1, 2, 3
NFTA_SET_ELEM_TIMEOUT, NFTA_SET_ELEM_EXPIRATION, NFTA_SET_ELEM_USERDATA = 4, 5, 6
NFTA_SET_ELEM_KEY_END = 10
NFTA_DATA_VALUE = 1
NFT_SET_ELEM_INTERVAL_END, NFT_SET_ELEM_CATCHALL = 0x1, 0x2

# libnftnl user data of an element: NFTNL_UDATA_SET_ELEM_FLAGS = NFTNL_SET_ELEM_F_INTERVAL_OPEN
_UDATA_INTERVAL_OPEN = bytes([1, 4]) + (1).to_bytes(4, sys.byteorder)

_BE16 = struct.Struct("!H")
_BE32 = struct.Struct("!I")
_BE64 = struct.Struct("!Q")
_HOST: Literal["little", "big"] = "little" if sys.byteorder == "little" else "big"


# -- the general path ---------------------------------------------------------------------


def _elem_nest(
    key: bytes,
    *,
    key_end: bytes | None = None,
    data: bytes | None = None,
    flags: int = 0,
    timeout_ms: int | None = None,
    userdata: bytes | None = None,
) -> bytes:
    parts = [nl.nest(NFTA_SET_ELEM_KEY, nl.nla(NFTA_DATA_VALUE, key))]
    if key_end is not None:
        parts.append(nl.nest(NFTA_SET_ELEM_KEY_END, nl.nla(NFTA_DATA_VALUE, key_end)))
    if flags:
        parts.append(nl.nla(NFTA_SET_ELEM_FLAGS, _BE32.pack(flags)))
    if timeout_ms is not None:
        parts.append(nl.nla(NFTA_SET_ELEM_TIMEOUT, _BE64.pack(timeout_ms)))
    if data is not None:
        parts.append(nl.nest(NFTA_SET_ELEM_DATA, nl.nla(NFTA_DATA_VALUE, data)))
    if userdata is not None:
        parts.append(nl.nla(NFTA_SET_ELEM_USERDATA, userdata))
    return nl.nest(NFTA_LIST_ELEM, *parts)


def _encode_elem(spec: SetSpec, p: _Parsed, adding: bool) -> list[bytes]:
    """The NFTA_LIST_ELEM attributes of one element (two for a bounded rbtree range)."""
    data = spec._data_bytes(p.data) if adding and p.data is not None else None
    timeout = p.timeout_ms if adding else None
    lows = [lo for lo, _ in p.ranges]
    if not spec.interval:
        return [_elem_nest(spec._key_bytes(lows), data=data, timeout_ms=timeout)]
    if spec.concat:
        highs = [hi for _, hi in p.ranges]
        return [_elem_nest(spec._key_bytes(lows), key_end=spec._key_bytes(highs), data=data,
                           timeout_ms=timeout)]  # fmt: skip
    (lo, hi), = p.ranges
    if hi == _INFO[spec.key[0]].max:
        open_ud = _UDATA_INTERVAL_OPEN if adding else None
        return [_elem_nest(spec._key_bytes([lo]), data=data, timeout_ms=timeout, userdata=open_ud)]
    return [
        _elem_nest(spec._key_bytes([lo]), data=data, timeout_ms=timeout),
        _elem_nest(spec._key_bytes([hi + 1]), flags=NFT_SET_ELEM_INTERVAL_END),
    ]


# -- the fast path ------------------------------------------------------------------------
#
# Bulk loads are dominated by Python, not the kernel: the general path turns every field
# into integers and back. Here each field is encoded straight to its (padded) bytes, with
# repeated values memoised (an endpoint's address and the protocol recur across thousands
# of elements), and the constant attribute headers are cut once per spec from the general
# path's own output. Anything else returns None.

_FieldEnc = Callable[[object], bytes | None]
_KeyEnc = Callable[[object], bytes | None]
_FieldDec = Callable[[bytes, int], Value]

_MEMO_MAX = 1 << 16  # entries per memo; a full memo is emptied (values stay correct)
_IPS: dict[str, bytes] = {}  # "10.0.0.1" -> 4 bytes, network order (concat pads nothing)


def _enc_ip(v: object) -> bytes | None:
    if type(v) is not str:
        return None
    b = _IPS.get(v)
    if b is None:
        try:
            b = socket.inet_pton(socket.AF_INET, v)  # refuses prefixes and ranges too
        except (OSError, ValueError):
            return None
        if len(_IPS) >= _MEMO_MAX:
            _IPS.clear()
        _IPS[v] = b
    return b


def _field_encoder(fld: str, concat: bool, big: bool) -> _FieldEnc:
    """A field's value to its bytes (padded to 4 in a concatenation), None if not plain."""
    pad = b"\0" * (-_INFO[fld].size % 4) if concat else b""
    if fld == Field.IPV4_ADDR:
        return _enc_ip
    if fld == Field.MARK:
        pack = struct.Struct("!I" if big else "=I").pack

        def enc_mark(v: object) -> bytes | None:
            return pack(v) if type(v) is int and 0 <= v <= 0xFFFFFFFF else None

        return enc_mark
    if fld == Field.INET_SERVICE:
        pack16 = _BE16.pack
        ports: dict[int, bytes] = {}  # at most 65536 entries

        def enc_port(v: object) -> bytes | None:
            if type(v) is not int:
                return None
            b = ports.get(v)
            if b is None:
                if not 0 <= v <= 0xFFFF:
                    return None
                b = ports[v] = pack16(v) + pad
            return b

        return enc_port
    names = PROTO_NAMES if fld == Field.INET_PROTO else ICMP_TYPE_NAMES
    table = [bytes([i]) + pad for i in range(256)]
    by_name = {name: table[i] for name, i in names.items()}

    def enc_byte(v: object) -> bytes | None:
        if type(v) is int:
            return table[v] if 0 <= v <= 255 else None
        if type(v) is str:
            return by_name.get(v)
        return None

    return enc_byte


def _key_encoder(encs: list[_FieldEnc]) -> _KeyEnc:
    """A whole key to its bytes: a tuple of one value per field (a single field may be
    bare). Unrolled for up to 4 fields: a loop per element costs more than the fields."""
    if len(encs) == 1:
        (e0,) = encs

        def key1(key: object) -> bytes | None:
            if type(key) is tuple:
                if len(key) != 1:
                    return None  # (lo, hi): a range
                key = key[0]
            return e0(key)

        return key1
    if len(encs) == 2:
        e0, e1 = encs

        def key2(key: object) -> bytes | None:
            if type(key) is not tuple or len(key) != 2:
                return None
            a, b = key
            a, b = e0(a), e1(b)
            return None if a is None or b is None else a + b

        return key2
    if len(encs) == 3:
        e0, e1, e2 = encs

        def key3(key: object) -> bytes | None:
            if type(key) is not tuple or len(key) != 3:
                return None
            a, b, c = key
            a, b, c = e0(a), e1(b), e2(c)
            return None if a is None or b is None or c is None else a + b + c

        return key3
    if len(encs) == 4:
        e0, e1, e2, e3 = encs

        def key4(key: object) -> bytes | None:
            if type(key) is not tuple or len(key) != 4:
                return None
            a, b, c, d = key
            a, b, c, d = e0(a), e1(b), e2(c), e3(d)
            if a is None or b is None or c is None or d is None:
                return None
            return a + b + c + d

        return key4
    n = len(encs)

    def key_n(key: object) -> bytes | None:
        if type(key) is not tuple or len(key) != n:
            return None
        parts = [enc(v) for enc, v in zip(encs, key, strict=True)]
        return None if None in parts else b"".join(parts)  # type: ignore[arg-type]

    return key_n


def _cut(template: bytes, *slots: tuple[int, int]) -> list[bytes]:
    """The constant pieces of `template` around its value slots, given as (offset, length)
    in order: len(slots) + 1 pieces."""
    pieces, pos = [], 0
    for off, size in slots:
        pieces.append(template[pos:off])
        pos = off + size
    pieces.append(template[pos:])
    return pieces


def _field_decoder(fld: str, big: bool) -> _FieldDec:
    if fld == Field.IPV4_ADDR:
        ntop, af = socket.inet_ntop, socket.AF_INET
        return lambda raw, off: ntop(af, raw[off : off + 4])
    size = _INFO[fld].size
    order: Literal["little", "big"] = "big" if big or not _INFO[fld].host_order else _HOST
    return lambda raw, off: int.from_bytes(raw[off : off + size], order)


class _Codec:
    """Per-spec precomputed encoders, decoders and attribute headers."""

    def __init__(self, spec: SetSpec) -> None:
        self.spec = spec
        big = spec.interval  # nft stores interval keys in network order
        self.nkey = len(spec.key)
        self.single = not spec.concat
        self.is_map = spec.data is not None
        self.key_enc = _key_encoder([_field_encoder(f, spec.concat, big) for f in spec.key])
        self.decoders = [_field_decoder(f, big) for f in spec.key]
        self.offsets = [4 * i for i in range(len(spec.key))] if spec.concat else [0]
        self.key_len = klen = spec.key_len
        self.data_enc: _FieldEnc | None = None
        self.decode_data: _FieldDec | None = None
        dlen = 0
        if spec.data is not None:
            self.data_enc = _field_encoder(spec.data, False, False)
            self.decode_data = _field_decoder(spec.data, False)
            dlen = _INFO[spec.data].size
        self.rbtree = spec.interval and not spec.concat
        self.pipapo = spec.interval and spec.concat
        self.top = _INFO[spec.key[0]].max
        # Attribute headers and padding, cut from the general path's output around the
        # key (at 12: LIST_ELEM, KEY and DATA_VALUE headers), key end and data values.
        kb, db = b"\0" * klen, b"\0" * dlen
        kpad = -klen % 4
        data_at = 12 + klen + kpad + 8  # after the KEY nest: DATA nest and value headers
        if self.pipapo:
            end_at = data_at  # KEY_END sits where DATA would, DATA after it
            self.plain = _cut(_elem_nest(kb, key_end=kb), (12, klen), (end_at, klen))
            self.with_data = _cut(_elem_nest(kb, key_end=kb, data=db),
                                  (12, klen), (end_at, klen), (end_at + klen + kpad + 8, dlen))  # fmt: skip
        else:
            self.plain = _cut(_elem_nest(kb), (12, klen))
            self.with_data = _cut(_elem_nest(kb, data=db), (12, klen), (data_at, dlen))
        self.end = _cut(_elem_nest(kb, flags=NFT_SET_ELEM_INTERVAL_END), (12, klen))

    def encode(self, elem: object, adding: bool) -> bytes | None:
        """The NFTA_LIST_ELEM attribute(s) of `elem`, or None: not a shape for this path."""
        key: object
        data: object = None
        if type(elem) is Elem:
            if elem.timeout_ms is not None:
                return None
            key, data = elem.key, elem.data
        elif self.is_map:
            # as SetSpec._parse/_is_pair read it: (key, data), or when deleting the key alone
            if type(elem) is tuple and len(elem) == 2 and (
                self.single or (type(elem[0]) is tuple and len(elem[0]) == self.nkey)
            ):
                key, data = elem
            elif adding:
                return None
            else:
                key = elem
        elif type(elem) is tuple and len(elem) == 2 and elem[1] is None and type(elem[0]) is tuple:
            key = elem[0]  # a set's (key, None), as SetSpec._parse reads it
        else:
            key = elem
        kb = self.key_enc(key)
        if kb is None:
            return None
        db = None
        if data is not None:
            if self.data_enc is None:
                return None  # data in a set: the general path says so
            db = self.data_enc(data)  # checked when deleting too, as the general path does
            if db is None:
                return None
            if not adding:
                db = None
        elif adding and self.is_map:
            return None  # no data
        if self.pipapo:  # every field a single value: the key end is the key
            if db is None:
                p0, p1, p2 = self.plain
                return p0 + kb + p1 + kb + p2
            p0, p1, p2, p3 = self.with_data
            return p0 + kb + p1 + kb + p2 + db + p3
        if db is None:
            p0, p1 = self.plain
            first = p0 + kb + p1
        else:
            p0, p1, p2 = self.with_data
            first = p0 + kb + p1 + db + p2
        if not self.rbtree:
            return first
        value = int.from_bytes(kb, "big")
        if value == self.top:
            return None  # the open-ended case: user data, general path
        e0, e1 = self.end
        return first + e0 + (value + 1).to_bytes(self.key_len, "big") + e1

    def element(self, r: _RawElem, key_end: bytes | None) -> Elem:
        """The canonical element of a dumped one whose key runs to `key_end`."""
        key = self.decode_key(r.key, key_end)
        dec = self.decode_data
        data = dec(r.data, 0) if r.data is not None and dec is not None else None
        return Elem(key, data, r.timeout, r.expires)

    def decode_key(self, raw: bytes, raw_end: bytes | None) -> Key:
        if len(raw) != self.key_len or (raw_end is not None and len(raw_end) != self.key_len):
            raise NetlinkError(errno.EPROTO, f"set {self.spec.name}: key of {len(raw)} bytes")
        if raw_end is None or raw_end == raw:
            return tuple(dec(raw, off) for dec, off in zip(self.decoders, self.offsets, strict=True))
        out: list[FieldValue] = []
        for dec, off in zip(self.decoders, self.offsets, strict=True):
            lo, hi = dec(raw, off), dec(raw_end, off)
            out.append(lo if lo == hi else (lo, hi))
        return tuple(out)


_CODECS: dict[SetSpec, _Codec] = {}


def _codec(spec: SetSpec) -> _Codec:
    codec = _CODECS.get(spec)
    if codec is None:
        codec = _CODECS[spec] = _Codec(spec)
    return codec


# -- decoding -----------------------------------------------------------------------------


@dataclass(slots=True)
class _RawElem:
    """One dumped element, its attributes as bytes."""

    key: bytes
    key_end: bytes | None
    data: bytes | None
    flags: int
    timeout: int | None
    expires: int | None


def _decode_elems(payload: bytes) -> list[_RawElem]:
    """The elements of one NFTA_SET_ELEM_LIST_ELEMENTS payload (catch-all elements skipped)."""
    out = []
    unpack, mask, stop = nl._NLA.unpack_from, nl.NLA_TYPE_MASK, len(payload)
    off = 0
    while off + 4 <= stop:
        elen, etype = unpack(payload, off)
        if elen < 4 or off + elen > stop:
            break
        if etype & mask == NFTA_LIST_ELEM:
            key = key_end = data = None
            flags = 0
            timeout = expires = None
            a, a_stop = off + 4, off + elen
            while a + 4 <= a_stop:
                alen, atype = unpack(payload, a)
                if alen < 4:
                    break
                atype &= mask
                if atype in (NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_KEY_END, NFTA_SET_ELEM_DATA):
                    vlen, vtype = unpack(payload, a + 4)  # the nested NFTA_DATA_VALUE
                    value = payload[a + 8 : a + 4 + vlen] if vtype & mask == NFTA_DATA_VALUE else None
                    if atype == NFTA_SET_ELEM_KEY:
                        key = value
                    elif atype == NFTA_SET_ELEM_KEY_END:
                        key_end = value
                    else:
                        data = value
                elif atype == NFTA_SET_ELEM_FLAGS:
                    flags = _BE32.unpack_from(payload, a + 4)[0]
                elif atype == NFTA_SET_ELEM_TIMEOUT:
                    timeout = _BE64.unpack_from(payload, a + 4)[0]
                elif atype == NFTA_SET_ELEM_EXPIRATION:
                    expires = _BE64.unpack_from(payload, a + 4)[0]
                a += (alen + 3) & ~3
            if key is not None and not flags & NFT_SET_ELEM_CATCHALL:
                out.append(_RawElem(key, key_end, data, flags, timeout, expires))
        off += (elen + 3) & ~3
    return out


def _assemble(spec: SetSpec, raw: list[_RawElem]) -> list[Elem]:
    """Canonical elements from the dumped ones (rbtree start/end pairs become ranges)."""
    out: list[Elem] = []
    codec = _codec(spec)
    if codec.rbtree:
        # In key order (an end sorts before a start at the same key): a start opens a
        # range, the next end closes it at end - 1, a start with no end runs to the max.
        # Interval keys are in network order, so bytes order like numbers.
        raw.sort(key=lambda r: (r.key, not r.flags & NFT_SET_ELEM_INTERVAL_END))
        pending: _RawElem | None = None
        for r in raw:
            if pending is not None:
                hi = (int.from_bytes(r.key, "big") - 1).to_bytes(len(r.key), "big")
                out.append(codec.element(pending, hi))
                pending = None
            if not r.flags & NFT_SET_ELEM_INTERVAL_END:
                pending = r
            # an end with no open start (nft's leading 0.0.0.0 end) closes nothing
        if pending is not None:
            out.append(codec.element(pending, b"\xff" * len(pending.key)))
        return out
    raw.sort(key=lambda r: r.key)
    return [codec.element(r, r.key_end) for r in raw]
