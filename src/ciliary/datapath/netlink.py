"""Raw NETLINK_NETFILTER plumbing, standard library only.

This module is the shared layer under the nf_tables set-element writer
(`ciliary.datapath.nftnl`) and the NFLOG and conntrack event readers
(`ciliary.datapath.nflog`): message and attribute packing, parsing, error
decoding and a socket wrapper.

A netlink socket acts on the network namespace its *creating thread* was in when
it was created. The caller enters a node namespace first, opens its sockets, and
may leave again: the sockets keep working on the namespace they were born in.

Byte order: netlink headers and attribute headers are in host order; netfilter
attribute payloads (u16, u32, u64) are big-endian unless documented otherwise.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
from collections.abc import Iterator
from typing import NamedTuple

__all__ = [
    "NETLINK_NETFILTER",
    "NetfilterSocket",
    "NetlinkError",
    "NlMessage",
    "attr_dict",
    "iter_attrs",
    "iter_messages",
    "nest",
    "nfgenmsg",
    "nla",
    "nlmsg",
    "parse_error",
]

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33

NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4

NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
# flags of an NLMSG_ERROR message
NLM_F_CAPPED = 0x100
NLM_F_ACK_TLVS = 0x200

NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF
NLMSGERR_ATTR_MSG = 1
NLMSGERR_ATTR_OFFS = 2

NFNETLINK_V0 = 0

_NLMSGHDR = struct.Struct("=IHHII")
_NLA = struct.Struct("=HH")
_NFGEN = struct.Struct("=BBH")
_I32 = struct.Struct("=i")
_U32 = struct.Struct("=I")


class NetlinkError(OSError):
    """A netlink request was refused by the kernel (or its answer made no sense).

    `errno` is the kernel's errno; `str(err)` reads like
    ``[Errno 17] set in_allow: add element ('10.0.0.1', 1001, 6, 8080): File exists``.
    `context` says what was being done, `detail` is the kernel's extended-ack
    message when it sent one, `set_name` and `element` locate a failing set element.
    """

    def __init__(
        self,
        err: int,
        context: str,
        *,
        detail: str | None = None,
        set_name: str | None = None,
        element: object = None,
    ) -> None:
        text = f"{context}: {os.strerror(err)}"
        if detail:
            text += f" ({detail})"
        super().__init__(err, text)
        self.context = context
        self.detail = detail
        self.set_name = set_name
        self.element = element

    def __str__(self) -> str:
        return f"[Errno {self.errno}] {self.strerror}"


class NlMessage(NamedTuple):
    """One netlink message: header fields and the payload after the 16-byte header."""

    type: int
    flags: int
    seq: int
    pid: int
    payload: bytes


def nla(attr_type: int, payload: bytes) -> bytes:
    """One attribute: length, type, payload, padded to 4 bytes."""
    length = 4 + len(payload)
    return _NLA.pack(length, attr_type) + payload + b"\0" * (-length % 4)


def nest(attr_type: int, *parts: bytes) -> bytes:
    """A nested attribute holding the already-packed attributes `parts`."""
    return nla(attr_type | NLA_F_NESTED, b"".join(parts))


def nfgenmsg(family: int, res_id: int = 0) -> bytes:
    """The netfilter generic header: family, version, resource id (big-endian)."""
    return _NFGEN.pack(family, NFNETLINK_V0, socket.htons(res_id))


def nlmsg(msg_type: int, flags: int, seq: int, payload: bytes) -> bytes:
    """A netlink message (payload is padded to 4 bytes)."""
    pad = b"\0" * (-len(payload) % 4)
    return _NLMSGHDR.pack(16 + len(payload), msg_type, flags, seq, 0) + payload + pad


def iter_messages(data: bytes) -> Iterator[NlMessage]:
    """The messages of one datagram (a truncated tail is ignored)."""
    off, end = 0, len(data)
    while off + 16 <= end:
        length, mtype, flags, seq, pid = _NLMSGHDR.unpack_from(data, off)
        if length < 16 or off + length > end:
            return
        yield NlMessage(mtype, flags, seq, pid, data[off + 16 : off + length])
        off += (length + 3) & ~3


def iter_attrs(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(type without the nested/byte-order bits, payload) of each attribute in data[start:end]."""
    stop = len(data) if end is None else end
    off = start
    while off + 4 <= stop:
        length, atype = _NLA.unpack_from(data, off)
        if length < 4 or off + length > stop:
            return
        yield atype & NLA_TYPE_MASK, data[off + 4 : off + length]
        off += (length + 3) & ~3


def attr_dict(data: bytes, start: int = 0) -> dict[int, bytes]:
    """Attributes by type (the last one wins if a type repeats)."""
    return dict(iter_attrs(data, start))


def parse_error(payload: bytes, flags: int) -> tuple[int, int, str | None, int | None]:
    """Decode an NLMSG_ERROR payload: (errno, seq of the acked message, ext-ack text, offset).

    errno is 0 for a plain ack. The offset is the position of the attribute the kernel
    blamed, counted from the start of the original message's header.
    """
    if len(payload) < 20:
        raise NetlinkError(errno.EPROTO, "truncated netlink error message")
    (code,) = _I32.unpack_from(payload, 0)
    orig_len, _t, _f, orig_seq, _p = _NLMSGHDR.unpack_from(payload, 4)
    detail: str | None = None
    offset: int | None = None
    if flags & NLM_F_ACK_TLVS:
        tlv_start = 20 if flags & NLM_F_CAPPED else 4 + ((orig_len + 3) & ~3)
        for atype, value in iter_attrs(payload, tlv_start):
            if atype == NLMSGERR_ATTR_MSG:
                detail = value.rstrip(b"\0").decode(errors="replace") or None
            elif atype == NLMSGERR_ATTR_OFFS and len(value) >= 4:
                (offset,) = _U32.unpack_from(value)
    return -code, orig_seq, detail, offset


def _set_buffer(sock: socket.socket, force: int, plain: int, size: int) -> None:
    """Set a socket buffer, beyond the sysctl maximum when allowed (root)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, force, size)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, plain, size)


class NetfilterSocket:
    """A NETLINK_NETFILTER socket in the current network namespace.

    `groups` is the legacy bind bitmask of multicast groups (bit g-1 for group g).
    Extended acks and capped acks are enabled, so an error carries the kernel's
    message and the offset of the blamed attribute, not a copy of the request.
    """

    def __init__(self, *, rcvbuf: int = 1 << 20, sndbuf: int = 1 << 20, groups: int = 0) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            _set_buffer(self.sock, SO_RCVBUFFORCE, socket.SO_RCVBUF, rcvbuf)
            _set_buffer(self.sock, SO_SNDBUFFORCE, socket.SO_SNDBUF, sndbuf)
            self._sndbuf = sndbuf
            for opt in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
                with contextlib.suppress(OSError):  # kernels before 4.12
                    self.sock.setsockopt(SOL_NETLINK, opt, 1)
            self.sock.bind((0, groups))
        except BaseException:
            self.sock.close()
            raise
        self._seq = int.from_bytes(os.urandom(2), "little") << 8

    @property
    def portid(self) -> int:
        """The netlink port id the kernel assigned to this socket."""
        pid: int = self.sock.getsockname()[0]
        return pid

    def fileno(self) -> int:
        return self.sock.fileno()

    def next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        return self._seq

    def ensure_sndbuf(self, size: int) -> None:
        """Make room for one datagram of `size` bytes (a batch must go in one send)."""
        if size + 4096 > self._sndbuf:
            want = max(size + 65536, self._sndbuf * 2)
            _set_buffer(self.sock, SO_SNDBUFFORCE, socket.SO_SNDBUF, want)
            self._sndbuf = want

    def send(self, data: bytes) -> None:
        self.ensure_sndbuf(len(data))
        sent = self.sock.send(data)
        if sent != len(data):  # pragma: no cover - netlink sends whole datagrams
            raise NetlinkError(errno.EMSGSIZE, f"short netlink send ({sent} of {len(data)} bytes)")

    def recv(self, bufsize: int = 1 << 16, *, block: bool = True) -> bytes:
        """One datagram; raises BlockingIOError when non-blocking and nothing is queued."""
        return self.sock.recv(bufsize, 0 if block else socket.MSG_DONTWAIT)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> NetfilterSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
