"""The head of a Hubble flow: the fields a policy decision reads, decoded on their own.

`replay` decides every flow of a file again but reads only a dozen of its fields; the rest
(node labels, endpoint labels, the summary) are carried through untouched. A msgspec decoder
of just these fields checks the whole line's JSON syntax while building only them, which
is about 2.4 times faster than decoding every field into dicts, and is the reason replay
keeps up with plain parsing. The full dict is decoded when it is needed: to write the
flow out, to read a pod's labels, or when the line is not in canonical form.

All of it is behind one function, `map_flow_lines` (`read_flow_lines` is its plain form),
and the `FlowLine`s it makes; this
module is the only one that knows about the fast decoder and the raw-line tricks.

Contracts:
* `read_flow_lines(..., fast=False)` is the plain path (every line through the full reader
  of `ciliary.flows.codec`) and the oracle of the fast one: both yield equal heads, and
  the tests compare them on every reference flow file.
* Lines the fast decoder cannot take (lowerCamel or Go-struct spellings, enum numbers, a
  field of an unexpected type, non-ASCII bytes, no `event_type`) go through the full
  reader, and `head_from_dict` builds the same head from the canonical dict.
* A `FlowLine` never changes: `flow()` returns a new dict each time it is asked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypedDict, TypeVar, Unpack

import msgspec
import orjson

from ciliary.cache import BoundedCache
from ciliary.flows.codec import OnBadLine, ReadStats, display_name, numbered_lines, read_flow
from ciliary.policy.ports import PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP

JSON = dict[str, Any]
T = TypeVar("T")
_EMPTY = msgspec.Raw(b"")


# The structs below are untracked by the cyclic GC (gc=False, cheaper to allocate): they hold
# only values decoded from one JSON line, which can never refer back to them.
class Ports(msgspec.Struct, gc=False):
    source_port: int = 0
    destination_port: int = 0


class ICMP(msgspec.Struct, gc=False):
    type: int = 0
    code: int = 0


class Layer4Head(msgspec.Struct, gc=False):
    TCP: Ports | None = None
    UDP: Ports | None = None
    SCTP: Ports | None = None
    ICMPv4: ICMP | None = None
    ICMPv6: ICMP | None = None


def layer4_of(l4: Layer4Head | None) -> tuple[int, int, int] | None:
    """(protocol number, source port, destination port or ICMP type) of a flow's L4."""
    if l4 is None:
        return None
    for num, p in ((PROTO_TCP, l4.TCP), (PROTO_UDP, l4.UDP), (PROTO_SCTP, l4.SCTP)):
        if p is not None:
            return num, p.source_port, p.destination_port
    for num, icmp in ((PROTO_ICMP, l4.ICMPv4), (PROTO_ICMPV6, l4.ICMPv6)):
        if icmp is not None:
            return num, 0, icmp.type
    return None


class IPHead(msgspec.Struct, gc=False):
    source: str = ""
    destination: str = ""


class EventTypeHead(msgspec.Struct, gc=False):
    """The monitor event a flow came from: 1 drop, 4 trace, 5 policy verdict, 129 L7, ..."""

    type: int = 0
    sub_type: int = 0


class EndpointHead(msgspec.Struct, gc=False):
    """A flow side; its labels and workloads stay raw JSON until something reads them."""

    identity: int = 0
    namespace: str = ""
    pod_name: str = ""
    labels: msgspec.Raw = _EMPTY
    workloads: msgspec.Raw = _EMPTY

    def label_list(self) -> list[Any]:
        return _raw_list(self.labels)

    def workload_list(self) -> list[Any]:
        return _raw_list(self.workloads)

    def as_dict(self) -> JSON:
        """The fields `workload_of_flow_side` and the like read, as in the flow's dict."""
        return {"namespace": self.namespace, "pod_name": self.pod_name,
                "labels": self.label_list(), "workloads": self.workload_list()}


class FlowHead(msgspec.Struct, gc=False):
    verdict: str = ""
    drop_reason_desc: str = ""
    time: str = ""
    IP: IPHead | None = None
    l4: Layer4Head | None = None
    source: EndpointHead | None = None
    destination: EndpointHead | None = None
    is_reply: bool | None = None
    reply: bool | None = None  # deprecated; what captures of older Hubble say instead
    l7: JSON | None = None
    traffic_direction: str = ""
    destination_names: msgspec.Raw = _EMPTY  # names the destination IP resolved from (DNS)
    # Present in every canonical flow; its absence sends the line to the full reader.
    event_type: EventTypeHead | None = None

    @property
    def replying(self) -> bool | None:
        """Whether the flow says it is a reply: `is_reply`, else the deprecated `reply`
        older Hubble wrote (absent there means no); None when it does not say."""
        if self.is_reply is not None:
            return self.is_reply
        return True if self.reply else None

    def destination_name_list(self) -> list[str]:
        return [n for n in _raw_list(self.destination_names) if type(n) is str]


class EnvelopeHead(msgspec.Struct, gc=False):
    flow: FlowHead | None = None


HEAD_DECODER: msgspec.json.Decoder[EnvelopeHead] = msgspec.json.Decoder(EnvelopeHead)


def _raw_list(raw: msgspec.Raw) -> list[Any]:
    if not len(raw):
        return []
    value = msgspec.json.decode(raw)
    return value if isinstance(value, list) else []


def _str(v: Any) -> str:
    return v if type(v) is str else ""


def _int(v: Any) -> int:
    return v if type(v) is int else 0


def _ports(d: Any) -> Ports | None:
    if type(d) is not dict:
        return None
    return Ports(_int(d.get("source_port")), _int(d.get("destination_port")))


def _icmp(d: Any) -> ICMP | None:
    if type(d) is not dict:
        return None
    return ICMP(_int(d.get("type")), _int(d.get("code")))


def _side(d: Any) -> EndpointHead | None:
    if type(d) is not dict:
        return None
    labels, workloads = d.get("labels"), d.get("workloads")
    return EndpointHead(
        _int(d.get("identity")), _str(d.get("namespace")), _str(d.get("pod_name")),
        msgspec.Raw(msgspec.json.encode(labels)) if isinstance(labels, list) else _EMPTY,
        msgspec.Raw(msgspec.json.encode(workloads)) if isinstance(workloads, list) else _EMPTY,
    )


def head_from_dict(flow: JSON) -> FlowHead:
    """The head of a flow dict of the full reader (canonical, if need be made so), read as the
    fast decoder would; a field of another type than Hubble writes reads as absent."""
    ips = flow.get("IP")
    l4 = flow.get("l4")
    l7 = flow.get("l7")
    verdict = flow.get("verdict")
    names = flow.get("destination_names")
    event = flow.get("event_type")
    return FlowHead(
        verdict=verdict if type(verdict) is str else ("" if verdict is None else str(verdict)),
        drop_reason_desc=_str(flow.get("drop_reason_desc")),
        time=_str(flow.get("time")),
        IP=IPHead(_str(ips.get("source")), _str(ips.get("destination"))) if type(ips) is dict else None,
        l4=Layer4Head(
            _ports(l4.get("TCP")), _ports(l4.get("UDP")), _ports(l4.get("SCTP")),
            _icmp(l4.get("ICMPv4")), _icmp(l4.get("ICMPv6")),
        ) if type(l4) is dict else None,
        source=_side(flow.get("source")),
        destination=_side(flow.get("destination")),
        is_reply=None if flow.get("is_reply") is None else bool(flow.get("is_reply")),
        reply=None if flow.get("reply") is None else bool(flow.get("reply")),
        l7=l7 if type(l7) is dict else None,
        traffic_direction=_str(flow.get("traffic_direction")),
        destination_names=msgspec.Raw(msgspec.json.encode(names)) if isinstance(names, list) else _EMPTY,
        # the full reader took it as a flow, with or without an event type
        event_type=EventTypeHead(_int(event.get("type")), _int(event.get("sub_type"))) if type(event) is dict else EventTypeHead(),
    )


# -- reading ------------------------------------------------------------------------------


class FlowLine(msgspec.Struct, gc=False):
    """One flow of a file: its head, its line number, and its text (the fast reader took
    the line) or its canonical dict (the full reader did)."""

    head: FlowHead
    lineno: int
    line: bytes | None = None
    full: JSON | None = None

    def flow(self) -> JSON:
        """The whole flow object, as a new dict (shallow: nested values are the input's)."""
        if self.full is not None:
            return dict(self.full)
        assert self.line is not None
        try:
            obj = orjson.loads(self.line)
        except orjson.JSONDecodeError:
            # A number beyond a double in a field the fast reader skips: orjson refuses it,
            # Python's json reads it as infinity (and the line is ASCII).
            obj = json.loads(self.line)
        flow: JSON = obj["flow"]
        return flow

    def with_field(self, key: str, value_json: bytes) -> bytes | None:
        """`{"flow": <this flow as written, with "key": value appended>}` and a newline,
        without decoding it; None when the flow was not read from a line, is empty, or
        has the key already."""
        if self.line is None:
            return None
        raw = _flow_object(self.line)
        if not raw.endswith(b"}") or raw == b"{}" or b'"' + key.encode() + b'"' in raw:
            return None
        return b'{"flow":' + raw[:-1] + b',"' + key.encode() + b'":' + value_json + b"}}\n"


class FlowReading(TypedDict, total=False):
    """How `read_flow_lines` and `map_flow_lines` read: `fast` decodes only the head of each
    line it can (default True); `strict` stops at the first bad line and type-checks every
    line, so it takes the full reader; `on_bad` hears of every bad line skipped."""

    fast: bool
    strict: bool
    on_bad: OnBadLine | None


def read_flow_lines(
    source: str | Path | IO[bytes], stats: ReadStats, **reading: Unpack[FlowReading],
) -> Iterator[FlowLine]:
    """Stream the flows of a file as `FlowLine`s, in order. Non-flow lines are counted in
    `stats`, bad ones reported as `codec` does."""
    return map_flow_lines(_itself, source, stats, **reading)


def _itself(fl: FlowLine) -> FlowLine:
    return fl


def map_flow_lines(
    fn: Callable[[FlowLine], T], source: str | Path | IO[bytes], stats: ReadStats,
    **reading: Unpack[FlowReading],
) -> Iterator[T]:
    """`map(fn, read_flow_lines(...))`, with `fn` called in the reading loop itself (a call
    from Python code is cheaper than one from `map`, which a stream pays once per flow)."""
    path = display_name(source)
    strict = reading.get("strict", False)
    on_bad = reading.get("on_bad")
    fast = reading.get("fast", True) and not strict
    decode = HEAD_DECODER.decode
    head_error = msgspec.DecodeError
    lineno = flows = 0
    blank0 = stats.blank
    with numbered_lines(source) as lines:
        try:
            for lineno, line in lines:
                # msgspec skips the fields it is not asked for without checking their
                # UTF-8; Hubble writes ASCII, and any other line takes the full reader.
                if fast and line.isascii():
                    try:
                        head = decode(line).flow
                    except head_error:
                        head = None
                    if head is not None and head.event_type is not None:
                        flows += 1
                        yield fn(FlowLine(head, lineno, line))
                        continue
                got = read_flow(line, lineno, path, stats, strict, strict, on_bad)
                if got is not None:
                    flows += 1
                    yield fn(FlowLine(head_from_dict(got[0]), lineno, None, got[0]))
        finally:
            stats.flows += flows
            stats.lines += lineno - (stats.blank - blank0)


class _EnvelopeRaw(msgspec.Struct, gc=False):
    flow: msgspec.Raw = msgspec.Raw(b"")


_FLOW_RAW = msgspec.json.Decoder(_EnvelopeRaw)  # a line's flow object, as it is written
# The envelope `hubble observe -o json` writes: the flow object, then node_name and time.
_ENVELOPE_TAIL = re.compile(rb'\},"node_name":"[^"\\]*","time":"[^"\\]*"\}\s*')


def _flow_object(line: bytes) -> bytes:
    """The text of a line's flow object: cut out of Hubble's envelope when the line has its
    exact shape (no escapes in node_name and time), else found by msgspec."""
    if line.startswith(b'{"flow":{'):
        i = line.rfind(b'},"node_name":"')
        if i > 0 and _ENVELOPE_TAIL.fullmatch(line, i):
            return line[8 : i + 1]
    return bytes(_FLOW_RAW.decode(line).flow)


_SECONDS: BoundedCache[str, float] = BoundedCache(4096)  # whole seconds of Hubble times


def flow_seconds(t: str) -> float | None:
    """A flow's `time` (RFC 3339, nanoseconds) in seconds since the epoch; None if absent or
    unreadable. Flows come in time order, so the whole-second part repeats: parsed once."""
    if not t:
        return None
    if len(t) == 30 and t[19] == "." and t[29] == "Z":  # as Hubble writes it: nanoseconds, UTC
        base = _SECONDS.get(t[:19])
        if base is not None:
            return base + float("0." + t[20:29])
    try:
        # Hubble writes nanoseconds; Python parses microseconds.
        head, _, frac = t.rstrip("Z").partition(".")
        base = _SECONDS.get(head)
        if base is None:
            base = _SECONDS.put(head, datetime.fromisoformat(head + "+00:00").timestamp())
        return base + (float("0." + frac) if frac else 0.0)
    except ValueError:
        return None
