"""The head of a Hubble flow: the fields a policy decision reads, decoded on their own.

`replay` decides every flow of a file again but reads only a dozen of its fields; the rest
(node labels, endpoint labels, the summary) are carried through untouched. A msgspec decoder
of just these fields checks the whole line's JSON syntax while building only them, which
is about 2.4 times faster than decoding every field into dicts, and is the reason replay
keeps up with plain parsing. The full dict is decoded when it is needed: to write the
flow out, to read a pod's labels, or when the line is not in canonical form.

Lines the fast decoder cannot take (lowerCamel or Go-struct spellings, enum numbers, a field
of an unexpected type, non-ASCII bytes) go through the full reader, and `head_from_dict`
builds the same head from the canonical dict, so both paths decide alike.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

JSON = dict[str, Any]
_EMPTY = msgspec.Raw(b"")
EVENT_TYPE_ABSENT: Final = _EMPTY  # FlowHead.event_type of a line without one
_PRESENT = msgspec.Raw(b"0")


# The structs below are untracked by the cyclic GC (gc=False, cheaper to allocate): they hold
# only values decoded from one JSON line, which can never refer back to them.
class Ports(msgspec.Struct, gc=False):
    source_port: int = 0
    destination_port: int = 0


class ICMP(msgspec.Struct, gc=False):
    type: int = 0
    code: int = 0


class Layer4(msgspec.Struct, gc=False):
    TCP: Ports | None = None
    UDP: Ports | None = None
    SCTP: Ports | None = None
    ICMPv4: ICMP | None = None
    ICMPv6: ICMP | None = None


class IPHead(msgspec.Struct, gc=False):
    source: str = ""
    destination: str = ""


class EndpointHead(msgspec.Struct, gc=False):
    """A flow side; its labels and workloads stay raw JSON until something reads them."""

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
    time: str = ""
    IP: IPHead | None = None
    l4: Layer4 | None = None
    source: EndpointHead | None = None
    destination: EndpointHead | None = None
    is_reply: bool | None = None
    l7: JSON | None = None
    # Present in every canonical flow; its absence (the default object itself) sends the
    # line to the full reader.
    event_type: msgspec.Raw = _EMPTY


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
        _str(d.get("namespace")), _str(d.get("pod_name")),
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
    return FlowHead(
        verdict=verdict if type(verdict) is str else ("" if verdict is None else str(verdict)),
        time=_str(flow.get("time")),
        IP=IPHead(_str(ips.get("source")), _str(ips.get("destination"))) if type(ips) is dict else None,
        l4=Layer4(
            _ports(l4.get("TCP")), _ports(l4.get("UDP")), _ports(l4.get("SCTP")),
            _icmp(l4.get("ICMPv4")), _icmp(l4.get("ICMPv6")),
        ) if type(l4) is dict else None,
        source=_side(flow.get("source")),
        destination=_side(flow.get("destination")),
        is_reply=None if flow.get("is_reply") is None else bool(flow.get("is_reply")),
        l7=l7 if type(l7) is dict else None,
        event_type=_PRESENT,  # the full reader took it as a flow
    )
