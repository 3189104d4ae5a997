"""Datapath events over raw netlink: NFLOG packets and conntrack NEW/UPDATE/DESTROY.

* `NflogReader` binds NFLOG groups (nft ``log group N prefix "..."``) and returns each
  logged packet with its prefix, mark, interfaces, timestamp and first bytes;
  `parse_ipv4` decodes those bytes into a 5-tuple, ICMP type/code and TCP flags.
* `ConntrackEvents` subscribes to ctnetlink's multicast groups and returns each event with
  its original and reply tuples, ct mark and id.

Both open their socket in the current network namespace (enter the node's namespace
first), expose `fileno()` for ``loop.add_reader`` or a selector, and have a non-blocking
`read()` returning everything queued. When the kernel could not queue an event because
the receive buffer was full, the next `recv` fails with ENOBUFS: the readers count those
(`overruns`) and, where the kernel numbers messages (NFLOG with sequence numbers on),
the exact number of events missed (`lost`), as Hubble counts lost events.

Kernel facts (datapath-findings §3): one NFLOG group has one reader per namespace, and
a second socket's bind fails (EPERM, reported with the owner's port id); NFLOG carries no
conntrack data here (no NETLINK_GLUE_CT), so identities travel in the packet mark; a
conntrack NEW event fires when the first packet is accepted (dropped flows have none).

Measured on the 2-core test VM (``python tests/test_netlink.py``, 4 MiB buffer, one packet
per message): a paced sender at 20k, 50k and 100k events/s was read without loss; an
unpaced burst (~320k/s) was read at ~200k/s, the rest lost and counted exactly by `lost`.

Cost (``bench/datapath.py``, 50k DROP events/s): a datagram is received into one
preallocated buffer (``recv(128 KiB)`` allocates and frees the 128 KiB each time, ~15 us);
a packet whose attributes sit where a recent packet's did (same rule, hook, interfaces) is
decoded by that `_Layout` in two struct calls (~2 us, against ~5.5 us one attribute at a
time); packets and heads are NamedTuples (a quarter of a frozen dataclass's cost).
`NflogReader.configure` turns on the kernel's batching (many packets per datagram) for a
reader that must keep up with a high rate; one packet per datagram (the default) delivers
each event at once.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntFlag, StrEnum
from pathlib import Path
from typing import NamedTuple

from ciliary.cache import BoundedCache
from ciliary.datapath import netlink as nl
from ciliary.datapath.netlink import NetfilterSocket, NetlinkError

__all__ = [
    "ConntrackEvents",
    "CtEvent",
    "CtEventType",
    "CtGroup",
    "CtTuple",
    "NflogPacket",
    "NflogReader",
    "PacketHead",
    "parse_ct_message",
    "parse_ipv4",
    "tcp_flag_names",
    "tcp_flags_text",
]

NFNL_SUBSYS_CTNETLINK = 1
NFNL_SUBSYS_ULOG = 4
NFULNL_MSG_PACKET = 0
NFULNL_MSG_CONFIG = 1
NFULA_CFG_CMD, NFULA_CFG_MODE, NFULA_CFG_NLBUFSIZ = 1, 2, 3
NFULA_CFG_TIMEOUT, NFULA_CFG_QTHRESH, NFULA_CFG_FLAGS = 4, 5, 6
NFULNL_CFG_CMD_BIND, NFULNL_CFG_CMD_UNBIND = 1, 2
NFULNL_COPY_PACKET = 2
NFULNL_CFG_F_SEQ, NFULNL_CFG_F_SEQ_GLOBAL = 0x1, 0x2

NFULA_PACKET_HDR, NFULA_MARK, NFULA_TIMESTAMP = 1, 2, 3
NFULA_IFINDEX_INDEV, NFULA_IFINDEX_OUTDEV = 4, 5
NFULA_IFINDEX_PHYSINDEV, NFULA_IFINDEX_PHYSOUTDEV = 6, 7
NFULA_PAYLOAD, NFULA_PREFIX, NFULA_UID, NFULA_SEQ, NFULA_SEQ_GLOBAL = 9, 10, 11, 12, 13

IPCTNL_MSG_CT_NEW, IPCTNL_MSG_CT_DELETE = 0, 2
CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_STATUS, CTA_TIMEOUT, CTA_MARK = 1, 2, 3, 7, 8
CTA_COUNTERS_ORIG, CTA_COUNTERS_REPLY, CTA_ID, CTA_ZONE = 9, 10, 12, 18
CTA_TUPLE_IP, CTA_TUPLE_PROTO = 1, 2
CTA_IP_V4_SRC, CTA_IP_V4_DST, CTA_IP_V6_SRC, CTA_IP_V6_DST = 1, 2, 3, 4
CTA_PROTO_NUM, CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT = 1, 2, 3
CTA_PROTO_ICMP_ID, CTA_PROTO_ICMP_TYPE, CTA_PROTO_ICMP_CODE = 4, 5, 6
CTA_PROTO_ICMPV6_ID, CTA_PROTO_ICMPV6_TYPE, CTA_PROTO_ICMPV6_CODE = 7, 8, 9
CTA_COUNTERS_PACKETS, CTA_COUNTERS_BYTES = 1, 2

_NLA = struct.Struct("=HH")
_NLMSGHDR = struct.Struct("=IHHII")
_BE16 = struct.Struct("!H")
_BE32 = struct.Struct("!I")
_BE64 = struct.Struct("!Q")
_TS = struct.Struct("!QQ")
_NFLOG_PACKET = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET
_RECV_BUF = 1 << 18  # NFLOG batches: nlbufsiz (at most 128 KiB) rounded up to the allocation
NLBUFSIZ_MAX = 131072


class _Receiver:
    """Non-blocking receives of whole datagrams into one preallocated buffer."""

    __slots__ = ("_buf", "_recv_into", "_view")

    def __init__(self, sock: NetfilterSocket, size: int = _RECV_BUF) -> None:
        self._buf = bytearray(size)
        self._view = memoryview(self._buf)
        self._recv_into = sock.sock.recv_into

    def all(self, limit: int | None) -> tuple[list[bytes], int]:
        """Datagrams queued now (at most `limit`), and how many ENOBUFS overruns were seen."""
        out: list[bytes] = []
        overruns = 0
        buf, view, recv_into = self._buf, self._view, self._recv_into
        size = len(buf)
        while limit is None or len(out) < limit:
            try:
                n = recv_into(buf, size, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                overruns += 1
                continue
            out.append(bytes(view[:n]))
        return out, overruns


# -- NFLOG -------------------------------------------------------------------------------


class NflogPacket(NamedTuple):
    """One packet logged by an nft ``log group`` statement.

    `prefix` is the log prefix as written in the rule (nft keeps a trailing space);
    `mark` the packet mark when it was logged; interface indexes are None when absent;
    `timestamp` (seconds since the epoch) is the kernel's (NFULA_TIMESTAMP, prerouting,
    input and forward hooks) or else the time it was read; `payload` the first
    `copy_range` bytes of the packet from its IP header; `seq` the group's message number
    (NFULA_SEQ) and `hook` the netfilter hook number, when present.
    """

    group: int
    prefix: str
    mark: int
    indev: int | None
    outdev: int | None
    physindev: int | None
    physoutdev: int | None
    timestamp: float
    payload: bytes
    hook: int | None = None
    seq: int | None = None


def _nflog_owner(group: int) -> int | None:
    """The port id of the socket bound to `group` in this thread's namespace, if listed."""
    try:
        text = Path("/proc/thread-self/net/netfilter/nfnetlink_log").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0].isdigit() and int(fields[0]) == group:
            return int(fields[1])
    return None


_NLMSG_LEN_TYPE = struct.Struct("=IH")
_LAYOUTS = 8  # layouts remembered per reader (a rule, hook and interface each)
# Attributes a layout decodes: NFULA type -> (NflogPacket field, big-endian format).
_FIXED = {NFULA_PACKET_HDR: ("hook", "2xB1x"), NFULA_MARK: ("mark", "I"), NFULA_TIMESTAMP: ("timestamp", "QQ"),
          NFULA_IFINDEX_INDEV: ("indev", "I"), NFULA_IFINDEX_OUTDEV: ("outdev", "I"),
          NFULA_IFINDEX_PHYSINDEV: ("physindev", "I"), NFULA_IFINDEX_PHYSOUTDEV: ("physoutdev", "I"),
          NFULA_SEQ: ("seq", "I")}  # fmt: skip
_FIELDS = ("mark", "indev", "outdev", "physindev", "physoutdev", "timestamp", "hook", "seq")


class _Layout:
    """Where the attributes of a kind of NFLOG message are: a message matches when its
    attribute headers (lengths and types) are those, up to a payload that ends the message.

    `heads` reads every header at once (native order) and `values` every fixed-size value
    (network order, the group first); `index` says where each NflogPacket field is in
    `values`' tuple (-1: absent)."""

    __slots__ = ("expected", "heads", "index", "payload", "prefix", "ptype", "size", "values")

    def __init__(self, heads: str, expected: tuple[int, ...], ptype: int, values: str, index: tuple[int, ...],
                 prefix: tuple[int, int] | None, payload: int) -> None:  # fmt: skip
        self.heads = struct.Struct(heads).unpack_from
        self.expected = expected  # (length, type) of each attribute before the payload
        self.ptype = ptype
        self.values = struct.Struct(values).unpack_from
        self.index = index
        self.prefix = prefix
        self.payload = payload  # offset of the payload attribute from the message's start
        self.size = payload + 4

    @classmethod
    def of(cls, attrs: list[tuple[int, int, int]], size: int) -> _Layout | None:
        """The layout of a message of `size` bytes with these (offset, raw type, length)
        attributes; None unless a payload ends it."""
        off, ptype, plen = attrs[-1]
        if ptype & nl.NLA_TYPE_MASK != NFULA_PAYLOAD or off + ((plen + 3) & ~3) != size:
            return None
        heads: list[str] = ["=4x"]
        expected: list[int] = []
        prefix = None
        values, pos, index = ["!2xH"], 4, dict.fromkeys(_FIELDS, -1)
        n = 1  # values' tuple: the group first
        for o, raw, alen in attrs[:-1]:
            heads.append(f"HH{((alen + 3) & ~3) - 4}x")
            expected += (alen, raw)
            atype = raw & nl.NLA_TYPE_MASK
            if atype == NFULA_PREFIX:
                prefix = (o + 4, o + alen)
            fixed = _FIXED.get(atype)
            if fixed is not None and struct.calcsize("!" + fixed[1]) <= alen - 4:
                values.append(f"{o + 4 - pos}x{fixed[1]}")
                pos = o + 4 + struct.calcsize("!" + fixed[1])
                index[fixed[0]] = n
                n += 2 if fixed[0] == "timestamp" else 1
        heads.append("HH")  # the payload's length and type
        return cls("".join(heads), tuple(expected), ptype, "".join(values), tuple(index.values()), prefix, off)

    def packet(self, data: bytes, start: int, stop: int, now: float, prefixes: dict[bytes, str]) -> NflogPacket | None:
        """The packet of the message at data[start:stop] if it has this layout, else None."""
        if stop - start < self.size:
            return None
        h = self.heads(data, start)
        if h[-1] != self.ptype or h[:-2] != self.expected:
            return None
        plen = h[-2]
        p = start + self.payload
        if plen < 4 or p + ((plen + 3) & ~3) != stop:
            return None
        v = self.values(data, start)
        im, ii, io, ipi, ipo, its, ih, iq = self.index
        prefix = ""
        if self.prefix is not None:
            raw = data[start + self.prefix[0] : start + self.prefix[1]]
            prefix = prefixes.get(raw) or _prefix_text(raw, prefixes)
        stamp = now
        if its >= 0 and v[its]:
            stamp = v[its] + v[its + 1] / 1e6
        return NflogPacket(v[0], prefix, v[im] if im >= 0 else 0, v[ii] if ii >= 0 else None,
                           v[io] if io >= 0 else None, v[ipi] if ipi >= 0 else None,
                           v[ipo] if ipo >= 0 else None, stamp, data[p + 4 : p + plen],
                           v[ih] if ih >= 0 else None, v[iq] if iq >= 0 else None)  # fmt: skip


def _prefix_text(raw: bytes, prefixes: dict[bytes, str]) -> str:
    text = raw.split(b"\0", 1)[0].decode(errors="replace")
    if len(prefixes) < 256:  # the rules' prefixes: a handful
        prefixes[raw] = text
    return text


class NflogReader:
    """Reader of one or more NFLOG groups, on one socket.

    `copy_range`: bytes of each packet copied (from the IP header); `qthresh` and
    `flush_timeout_cs`: the kernel batches up to `qthresh` packets or 1/100 s units before
    sending (1, 1: every packet at once; 0 hundredths: at the next timer tick, 1/HZ), and
    at most `nlbufsiz` bytes (None: the kernel's default, one page) per datagram; see
    `configure`. Sequence numbers are on, so `lost` is exact, batched or not (the kernel
    numbers each packet, also those of a batch it could not deliver).
    Raises NetlinkError when a group cannot be bound (EPERM: another socket has it).
    """

    def __init__(
        self,
        groups: int | Iterable[int],
        copy_range: int = 128,
        rcvbuf: int = 4 << 20,
        *,
        qthresh: int = 1,
        flush_timeout_cs: int = 1,
        nlbufsiz: int | None = None,
    ) -> None:
        self._init_state(groups, copy_range)
        self.qthresh, self.flush_timeout_cs, self.nlbufsiz = qthresh, flush_timeout_cs, nlbufsiz
        self._sock = NetfilterSocket(rcvbuf=rcvbuf, sndbuf=1 << 16)
        self._receiver = _Receiver(self._sock, self._receiver_size())
        try:
            for g in self.groups:
                self._bind(g, copy_range)
        except BaseException:
            self.close()
            raise

    def _init_state(self, groups: int | Iterable[int], copy_range: int) -> None:
        self.groups: tuple[int, ...] = (groups,) if isinstance(groups, int) else tuple(groups)
        if not self.groups or any(not 0 <= g <= 0xFFFF for g in self.groups):
            raise ValueError(f"NFLOG groups are 0..65535, got {self.groups!r}")
        if len(set(self.groups)) != len(self.groups):
            raise ValueError(f"NFLOG group listed twice: {self.groups!r}")
        self.copy_range = copy_range
        self.received = 0
        self.overruns = 0
        self.seq_lost = 0
        self._unmeasured = 0
        self._next_seq: dict[int, int] = {}
        self._backlog: list[bytes] = []
        self._bound: list[int] = []
        self._prefixes: dict[bytes, str] = {}
        self._layouts: list[_Layout] = []

    @classmethod
    def _decoder(cls, groups: int | Iterable[int]) -> NflogReader:
        """A reader without a socket, as if `groups` were bound: its decoding alone (tests
        feed `_parse` datagrams)."""
        self = cls.__new__(cls)
        self._init_state(groups, 128)
        self._next_seq = dict.fromkeys(self.groups, 0)
        return self

    @property
    def lost(self) -> int:
        """Events known to be lost: the gaps in the groups' sequence numbers, plus one for
        an overrun no later event has measured yet (the kernel numbers the events it could
        not deliver too, so a gap shows when the next one arrives)."""
        return self.seq_lost + self._unmeasured

    def fileno(self) -> int:
        return self._sock.fileno()

    def _config(self, group: int, attrs: bytes, what: str) -> None:
        seq = self._sock.next_seq()
        msg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG
        payload = nl.nfgenmsg(socket.AF_UNSPEC, group) + attrs
        self._sock.send(nl.nlmsg(msg_type, nl.NLM_F_REQUEST | nl.NLM_F_ACK, seq, payload))
        self._sock.sock.settimeout(5.0)
        try:
            while True:
                try:
                    data = self._sock.recv(self._receiver_size())
                except TimeoutError:
                    raise NetlinkError(errno.ETIMEDOUT, f"NFLOG group {group}: {what}") from None
                except OSError as exc:
                    if exc.errno != errno.ENOBUFS:
                        raise
                    self.overruns += 1  # packets of groups bound earlier were lost
                    self._unmeasured = max(self._unmeasured, 1)
                    continue
                for m in nl.iter_messages(data):
                    if m.type == nl.NLMSG_ERROR and m.seq == seq:
                        err, _s, detail, _o = nl.parse_error(m.payload, m.flags)
                        if err:
                            raise self._config_error(group, what, err, detail)
                        return
                self._backlog.append(data)  # packets of groups bound earlier
        finally:
            self._sock.sock.settimeout(None)

    def _receiver_size(self) -> int:
        return max(_RECV_BUF, self.copy_range + 4096)

    def _config_error(self, group: int, what: str, err: int, detail: str | None) -> NetlinkError:
        if what == "bind" and err == errno.EPERM:
            owner = _nflog_owner(group)
            who = f" (netlink port id {owner})" if owner is not None else ""
            return NetlinkError(err, f"NFLOG group {group} is already bound by another socket{who}; "
                                "one reader per group and namespace", detail=detail)  # fmt: skip
        if what == "bind" and err == errno.EBUSY:
            return NetlinkError(err, f"NFLOG group {group} is already bound by this socket")
        return NetlinkError(err, f"NFLOG group {group}: {what}", detail=detail)

    def _batching_attrs(self) -> bytes:
        attrs = nl.nla(NFULA_CFG_QTHRESH, _BE32.pack(self.qthresh))
        attrs += nl.nla(NFULA_CFG_TIMEOUT, _BE32.pack(self.flush_timeout_cs))
        if self.nlbufsiz is not None:
            attrs += nl.nla(NFULA_CFG_NLBUFSIZ, _BE32.pack(self.nlbufsiz))
        return attrs

    def _bind(self, group: int, copy_range: int) -> None:
        self._config(group, nl.nla(NFULA_CFG_CMD, bytes([NFULNL_CFG_CMD_BIND])), "bind")
        self._bound.append(group)
        self._next_seq[group] = 0
        attrs = nl.nla(NFULA_CFG_MODE, struct.pack("!IBB", copy_range, NFULNL_COPY_PACKET, 0))
        attrs += self._batching_attrs()
        attrs += nl.nla(NFULA_CFG_FLAGS, _BE16.pack(NFULNL_CFG_F_SEQ | NFULNL_CFG_F_SEQ_GLOBAL))
        self._config(group, attrs, "configure")

    def configure(
        self,
        *,
        qthresh: int | None = None,
        flush_timeout_cs: int | None = None,
        nlbufsiz: int | None = None,
        rcvbuf: int | None = None,
    ) -> None:
        """Change the batching of every group (and the receive buffer) while reading.

        With `qthresh` > 1 the kernel keeps a group's packets in one datagram of up to
        `nlbufsiz` bytes (at most 128 KiB) until `qthresh` of them are queued, the datagram
        is full, or `flush_timeout_cs` hundredths of a second have passed (0: the next timer
        tick), so one receive returns many packets: far less work per event, and the receive
        buffer holds several times more of them. The price is latency: a packet may wait up
        to the flush timeout before it can be read. A packet already waiting keeps waiting
        for its batch (the kernel has no flush request). A kernel refusal raises NetlinkError
        (ERANGE: `nlbufsiz` below one page or above 128 KiB)."""
        if nlbufsiz is not None and not 0 < nlbufsiz <= NLBUFSIZ_MAX:
            raise ValueError(f"nlbufsiz is at most {NLBUFSIZ_MAX} bytes, got {nlbufsiz}")
        if qthresh is not None:
            self.qthresh = qthresh
        if flush_timeout_cs is not None:
            self.flush_timeout_cs = flush_timeout_cs
        if nlbufsiz is not None:
            self.nlbufsiz = nlbufsiz
        if rcvbuf is not None:  # beyond the sysctl maximum as root, else up to it
            try:
                self._sock.sock.setsockopt(socket.SOL_SOCKET, nl.SO_RCVBUFFORCE, rcvbuf)
            except PermissionError:
                self._sock.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        for g in self._bound:
            self._config(g, self._batching_attrs(), "configure")

    def read(self, max_datagrams: int | None = None) -> list[NflogPacket]:
        """Every packet queued now (never blocks); at most `max_datagrams` recv calls."""
        datagrams, self._backlog = self._backlog, []
        more, overruns = self._receiver.all(max_datagrams)
        if overruns:
            self.overruns += overruns
            self._unmeasured = max(self._unmeasured, 1)
        now = time.time()
        out: list[NflogPacket] = []
        for data in datagrams + more if datagrams else more:
            self._parse(data, now, out)
        self.received += len(out)
        return out

    def _parse(self, data: bytes, now: float, out: list[NflogPacket]) -> None:
        """Append the packets of one datagram to `out`.

        A packet whose attributes sit where those of a recent packet did (same types and
        lengths up to the payload: the same rule, hook and interfaces) is decoded by that
        packet's `_Layout`, in two struct calls; any other by `_walk`, which learns its
        layout. Both give the same packet (`_walk` is the tests' oracle)."""
        hdr, layouts, append = _NLMSG_LEN_TYPE.unpack_from, self._layouts, out.append
        off, end = 0, len(data)
        while off + 20 <= end:
            length, mtype = hdr(data, off)
            if length < 16 or off + length > end:
                return
            start, stop = off + 16, off + length
            off += (length + 3) & ~3
            if mtype != _NFLOG_PACKET:
                continue
            pkt = None
            for i, lay in enumerate(layouts):
                pkt = lay.packet(data, start, stop, now, self._prefixes)
                if pkt is not None:
                    if i:
                        layouts.insert(0, layouts.pop(i))
                    break
            else:
                pkt = self._walk(data, start, stop, now, learn=True)
            seq = pkt.seq
            if seq is not None:
                want = self._next_seq.get(pkt.group)
                if want is not None:
                    gap = (seq - want) & 0xFFFFFFFF
                    if gap < 1 << 31:
                        if gap:
                            self.seq_lost += gap
                            self._unmeasured = 0
                        self._next_seq[pkt.group] = (seq + 1) & 0xFFFFFFFF
            append(pkt)

    def _walk(self, data: bytes, start: int, stop: int, now: float, *, learn: bool = False) -> NflogPacket:
        """The packet of the message at data[start:stop] (after its netlink header), one
        attribute at a time; with `learn`, remember its layout for the next ones."""
        nla, be32 = _NLA.unpack_from, _BE32.unpack_from
        group = _BE16.unpack_from(data, start + 2)[0]
        prefix, mark, payload = "", 0, b""
        indev = outdev = physin = physout = hook = seq = None
        stamp = now
        seen: list[tuple[int, int, int]] = []  # (offset from start, raw type, length)
        a = start + 4
        while a + 4 <= stop:
            alen, raw_type = nla(data, a)
            if alen < 4:
                seen.clear()  # no layout for a malformed message
                learn = False
                break
            seen.append((a - start, raw_type, alen))
            v = a + 4
            atype = raw_type & nl.NLA_TYPE_MASK
            if atype == NFULA_PAYLOAD:
                payload = data[v : a + alen]
            elif atype == NFULA_SEQ:
                seq = be32(data, v)[0]
            elif atype == NFULA_PREFIX:
                prefix = self._prefix(data[v : a + alen])
            elif atype == NFULA_MARK:
                mark = be32(data, v)[0]
            elif atype == NFULA_TIMESTAMP:
                sec, usec = _TS.unpack_from(data, v)
                if sec:
                    stamp = sec + usec / 1e6
            elif atype == NFULA_PACKET_HDR:
                hook = data[v + 2]
            elif atype == NFULA_IFINDEX_INDEV:
                indev = be32(data, v)[0]
            elif atype == NFULA_IFINDEX_OUTDEV:
                outdev = be32(data, v)[0]
            elif atype == NFULA_IFINDEX_PHYSINDEV:
                physin = be32(data, v)[0]
            elif atype == NFULA_IFINDEX_PHYSOUTDEV:
                physout = be32(data, v)[0]
            a += (alen + 3) & ~3
        if learn and seen:
            lay = _Layout.of(seen, stop - start)
            if lay is not None:
                self._layouts.insert(0, lay)
                del self._layouts[_LAYOUTS:]
        return NflogPacket(group, prefix, mark, indev, outdev, physin, physout, stamp, payload,
                           hook, seq)  # fmt: skip

    def _prefix(self, raw: bytes) -> str:
        return self._prefixes.get(raw) or _prefix_text(raw, self._prefixes)

    def close(self) -> None:
        """Unbind the groups (so another reader may take them) and close the socket."""
        if self._sock.sock.fileno() < 0:
            return
        for g in self._bound:
            with contextlib.suppress(OSError):  # closing the socket releases it anyway
                self._config(g, nl.nla(NFULA_CFG_CMD, bytes([NFULNL_CFG_CMD_UNBIND])), "unbind")
        self._bound.clear()
        self._sock.close()

    def __enter__(self) -> NflogReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- packet heads -------------------------------------------------------------------------

_TCP_FLAG_LETTERS = ((0x01, "F"), (0x02, "S"), (0x04, "R"), (0x08, "P"), (0x10, "A"),
                     (0x20, "U"), (0x40, "E"), (0x80, "C"))  # fmt: skip
_TCP_FLAG_NAMES = {"F": "FIN", "S": "SYN", "R": "RST", "P": "PSH", "A": "ACK", "U": "URG",
                   "E": "ECE", "C": "CWR"}  # fmt: skip
_PORT_PROTOS = frozenset((6, 17, 33, 132, 136))  # tcp, udp, dccp, sctp, udplite


def tcp_flags_text(flags: int) -> str:
    """TCP flags as letters in header order: 0x12 -> "SA" (SYN, ACK); see `tcp_flag_names`."""
    return "".join(letter for bit, letter in _TCP_FLAG_LETTERS if flags & bit)


def tcp_flag_names(text: str) -> list[str]:
    """ "SA" -> ["SYN", "ACK"] (Hubble's TCPFlags field names)."""
    return [_TCP_FLAG_NAMES[c] for c in text]


class PacketHead(NamedTuple):
    """What a verdict event needs from a packet's first bytes.

    Ports are None for protocols without ports (and for a non-first fragment); ICMP
    type/code only for ICMP; `tcp_flags` is `tcp_flags_text` ("S" for a SYN, "" if not TCP).
    """

    src: str
    dst: str
    proto: int
    sport: int | None
    dport: int | None
    icmp_type: int | None
    icmp_code: int | None
    tcp_flags: str
    length: int


_IPV4 = struct.Struct("!BxHxxHxB2x4s4s")  # version+ihl, total length, fragment, proto, src, dst
_PORTS = struct.Struct("!HH")
_FLAGS_TEXT = tuple(tcp_flags_text(b) for b in range(256))
_ADDRS: BoundedCache[bytes, str] = BoundedCache(1 << 16)  # 4 address bytes -> dotted quad


def parse_ipv4(payload: bytes) -> PacketHead | None:
    """Decode an IPv4 header and the start of its L4 header; None if not IPv4 (or short)."""
    if len(payload) < 20:
        return None
    vihl, total, frag, proto, s4, d4 = _IPV4.unpack_from(payload)
    ihl = (vihl & 0x0F) * 4
    if vihl >> 4 != 4 or ihl < 20 or len(payload) < ihl:
        return None
    src = _ADDRS.get(s4) or _ADDRS.put(s4, socket.inet_ntop(socket.AF_INET, s4))
    dst = _ADDRS.get(d4) or _ADDRS.put(d4, socket.inet_ntop(socket.AF_INET, d4))
    l4 = len(payload) - ihl if frag & 0x1FFF == 0 else 0  # L4 bytes (none after a first fragment)
    sport = dport = icmp_type = icmp_code = None
    flags = ""
    if proto in _PORT_PROTOS and l4 >= 4:
        sport, dport = _PORTS.unpack_from(payload, ihl)
        if proto == 6 and l4 >= 14:
            flags = _FLAGS_TEXT[payload[ihl + 13]]
    elif proto == 1 and l4 >= 2:
        icmp_type, icmp_code = payload[ihl], payload[ihl + 1]
    return PacketHead(src, dst, proto, sport, dport, icmp_type, icmp_code, flags, total)


# -- conntrack ----------------------------------------------------------------------------


class CtGroup(IntFlag):
    """ctnetlink multicast groups, as the bind bitmask (NFNLGRP_CONNTRACK_* = bit + 1)."""

    NEW = 1 << 0  # NFNLGRP_CONNTRACK_NEW = 1
    UPDATE = 1 << 1  # NFNLGRP_CONNTRACK_UPDATE = 2
    DESTROY = 1 << 2  # NFNLGRP_CONNTRACK_DESTROY = 3


class CtEventType(StrEnum):
    NEW = "NEW"
    UPDATE = "UPDATE"
    DESTROY = "DESTROY"


@dataclass(frozen=True, slots=True)
class CtTuple:
    """One direction of a connection: addresses, protocol, ports or ICMP type/code/id."""

    src: str
    dst: str
    proto: int
    sport: int | None = None
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    icmp_id: int | None = None


@dataclass(frozen=True, slots=True)
class CtEvent:
    """One conntrack event. `orig` is the tuple of the first packet, `reply` the answer's.

    `mark` is the ct mark (0 when unset), `id` the kernel's entry id (the same in a
    flow's NEW and DESTROY), counters are set when ``nf_conntrack_acct`` is on.
    `timestamp` is when the event was read.
    """

    type: CtEventType
    id: int | None
    orig: CtTuple
    reply: CtTuple | None
    mark: int
    status: int | None
    zone: int | None
    timestamp: float
    packets: tuple[int, int] | None = None  # (original, reply) direction
    bytes: tuple[int, int] | None = None

    @property
    def src(self) -> str:
        return self.orig.src

    @property
    def dst(self) -> str:
        return self.orig.dst

    @property
    def proto(self) -> int:
        return self.orig.proto

    @property
    def sport(self) -> int | None:
        return self.orig.sport

    @property
    def dport(self) -> int | None:
        return self.orig.dport


def _ct_tuple(data: bytes) -> CtTuple | None:
    ip = proto = None
    for atype, value in nl.iter_attrs(data):
        if atype == CTA_TUPLE_IP:
            ip = nl.attr_dict(value)
        elif atype == CTA_TUPLE_PROTO:
            proto = nl.attr_dict(value)
    if ip is None or proto is None or CTA_PROTO_NUM not in proto:
        return None
    if CTA_IP_V4_SRC in ip and CTA_IP_V4_DST in ip:
        src = socket.inet_ntop(socket.AF_INET, ip[CTA_IP_V4_SRC])
        dst = socket.inet_ntop(socket.AF_INET, ip[CTA_IP_V4_DST])
    elif CTA_IP_V6_SRC in ip and CTA_IP_V6_DST in ip:
        src = socket.inet_ntop(socket.AF_INET6, ip[CTA_IP_V6_SRC])
        dst = socket.inet_ntop(socket.AF_INET6, ip[CTA_IP_V6_DST])
    else:
        return None

    def be16(attr: int) -> int | None:
        return _BE16.unpack(proto[attr][:2])[0] if attr in proto else None

    def u8(*attrs: int) -> int | None:
        for a in attrs:
            if a in proto:
                return proto[a][0]
        return None

    return CtTuple(
        src, dst, proto[CTA_PROTO_NUM][0], be16(CTA_PROTO_SRC_PORT), be16(CTA_PROTO_DST_PORT),
        u8(CTA_PROTO_ICMP_TYPE, CTA_PROTO_ICMPV6_TYPE), u8(CTA_PROTO_ICMP_CODE, CTA_PROTO_ICMPV6_CODE),
        be16(CTA_PROTO_ICMP_ID) if CTA_PROTO_ICMP_ID in proto else be16(CTA_PROTO_ICMPV6_ID),
    )  # fmt: skip


def _counters(data: bytes | None) -> tuple[int, int] | None:
    if data is None:
        return None
    a = nl.attr_dict(data)
    if CTA_COUNTERS_PACKETS not in a or CTA_COUNTERS_BYTES not in a:
        return None
    return _BE64.unpack(a[CTA_COUNTERS_PACKETS])[0], _BE64.unpack(a[CTA_COUNTERS_BYTES])[0]


def parse_ct_message(msg: nl.NlMessage, now: float) -> CtEvent | None:
    """A ctnetlink event message as a CtEvent (None for anything else)."""
    if msg.type >> 8 != NFNL_SUBSYS_CTNETLINK:
        return None
    cmd = msg.type & 0xFF
    if cmd == IPCTNL_MSG_CT_DELETE:
        kind = CtEventType.DESTROY
    elif cmd == IPCTNL_MSG_CT_NEW:
        new = msg.flags & (nl.NLM_F_CREATE | nl.NLM_F_EXCL)
        kind = CtEventType.NEW if new else CtEventType.UPDATE
    else:
        return None
    a = nl.attr_dict(msg.payload, 4)
    orig = _ct_tuple(a[CTA_TUPLE_ORIG]) if CTA_TUPLE_ORIG in a else None
    if orig is None:
        return None
    reply = _ct_tuple(a[CTA_TUPLE_REPLY]) if CTA_TUPLE_REPLY in a else None

    def be32(attr: int) -> int | None:
        return _BE32.unpack(a[attr][:4])[0] if attr in a else None

    co, cr = _counters(a.get(CTA_COUNTERS_ORIG)), _counters(a.get(CTA_COUNTERS_REPLY))
    packets = (co[0], cr[0]) if co and cr else None
    nbytes = (co[1], cr[1]) if co and cr else None
    zone = _BE16.unpack(a[CTA_ZONE][:2])[0] if CTA_ZONE in a else None
    return CtEvent(kind, be32(CTA_ID), orig, reply, be32(CTA_MARK) or 0, be32(CTA_STATUS), zone,
                   now, packets, nbytes)  # fmt: skip


class ConntrackEvents:
    """Subscriber to conntrack events of the current namespace (`groups`: CtGroup flags).

    Events are delivered for namespaces where conntrack is in use (an nft rule with
    ``ct`` in it) and ``net.netfilter.nf_conntrack_events`` is not 0 (default: on).
    """

    def __init__(self, groups: CtGroup = CtGroup.NEW | CtGroup.DESTROY, rcvbuf: int = 4 << 20) -> None:
        if not groups:
            raise ValueError("no conntrack event group selected")
        self.groups = groups
        self.received = 0
        self.overruns = 0
        self._sock = NetfilterSocket(rcvbuf=rcvbuf, sndbuf=1 << 16, groups=int(groups))
        self._receiver = _Receiver(self._sock)

    @property
    def lost(self) -> int:
        """At least this many events were lost (one per receive-buffer overrun)."""
        return self.overruns

    def fileno(self) -> int:
        return self._sock.fileno()

    def read(self, max_datagrams: int | None = None) -> list[CtEvent]:
        """Every event queued now (never blocks)."""
        datagrams, overruns = self._receiver.all(max_datagrams)
        self.overruns += overruns
        now = time.time()
        out = []
        for data in datagrams:
            for m in nl.iter_messages(data):
                ev = parse_ct_message(m, now)
                if ev is not None:
                    out.append(ev)
        self.received += len(out)
        return out

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> ConntrackEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
