"""Hubble's `flow.FlowFilter` message (api/v1/flow/flow.proto) and its JSON.

Rules and contracts:

* Field names, order and JSON are the proto's: `to_dict` is protojson of the set fields (what
  `hubble observe --print-raw-filters` shows), `from_dict` reads protojson (proto or lowerCamel
  names, enum names or numbers) and `from_json` reads one or more concatenated objects, as
  hubble's decoder reads `--allowlist/--denylist` and the flow exporter's allowList/denyList.
* Data only: nothing here knows flows or CLI flags. What a field matches is
  `flows.predicates`; how filters combine is `flows.matcher`; the flags are `flows.filter`.
* A `FlowFilter` is a plain mutable dataclass and owns its lists; message-valued items are
  plain dicts that may be shared between filters and must not be mutated.
* `FilterError` is the one error of the whole filter stack (flags, JSON, compiling), worded
  as hubble words it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final

import orjson

from ciliary.flows.enums import DropReason, FlowVerdict, IPVersion, TrafficDirection

JSON = dict[str, Any]


class FilterError(ValueError):
    """An invalid filter flag or FlowFilter (message as hubble words it)."""


@dataclass(eq=True, repr=False)
class FlowFilter:
    """`flow.FlowFilter`: every set field must match; any value of a field may match.

    Field names and JSON are the proto's. Enum-valued lists hold enum names; message-valued
    lists hold their JSON objects (`{"name", "kind"}` workloads, `{"type", "match_sub_type",
    "sub_type"}` event types, `{"key", "value"}` headers, `{"SYN": true, ...}` TCP flags,
    `{"name", "index"}` interfaces).
    """

    uuid: list[str] = field(default_factory=list)
    source_ip: list[str] = field(default_factory=list)
    source_ip_xlated: list[str] = field(default_factory=list)
    source_pod: list[str] = field(default_factory=list)
    source_fqdn: list[str] = field(default_factory=list)
    source_label: list[str] = field(default_factory=list)
    source_service: list[str] = field(default_factory=list)
    source_workload: list[JSON] = field(default_factory=list)
    source_cluster_name: list[str] = field(default_factory=list)
    destination_ip: list[str] = field(default_factory=list)
    destination_pod: list[str] = field(default_factory=list)
    destination_fqdn: list[str] = field(default_factory=list)
    destination_label: list[str] = field(default_factory=list)
    destination_service: list[str] = field(default_factory=list)
    destination_workload: list[JSON] = field(default_factory=list)
    destination_cluster_name: list[str] = field(default_factory=list)
    traffic_direction: list[str] = field(default_factory=list)
    verdict: list[str] = field(default_factory=list)
    drop_reason_desc: list[str] = field(default_factory=list)
    interface: list[JSON] = field(default_factory=list)
    event_type: list[JSON] = field(default_factory=list)
    http_status_code: list[str] = field(default_factory=list)
    protocol: list[str] = field(default_factory=list)
    source_port: list[str] = field(default_factory=list)
    destination_port: list[str] = field(default_factory=list)
    reply: list[bool] = field(default_factory=list)
    dns_query: list[str] = field(default_factory=list)
    source_identity: list[int] = field(default_factory=list)
    destination_identity: list[int] = field(default_factory=list)
    http_method: list[str] = field(default_factory=list)
    http_path: list[str] = field(default_factory=list)
    http_url: list[str] = field(default_factory=list)
    http_header: list[JSON] = field(default_factory=list)
    tcp_flags: list[JSON] = field(default_factory=list)
    node_name: list[str] = field(default_factory=list)
    node_labels: list[str] = field(default_factory=list)
    ip_version: list[str] = field(default_factory=list)
    trace_id: list[str] = field(default_factory=list)
    encrypted: list[bool] = field(default_factory=list)
    ip_trace_id: list[int] = field(default_factory=list)
    cel_expression: list[str] = field(default_factory=list)  # experimental.cel_expression

    def __repr__(self) -> str:
        return f"FlowFilter({self.to_json()})"

    def to_dict(self) -> JSON:
        """protojson of the filter (set fields only), as `--print-raw-filters` shows it."""
        out: JSON = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if not value:
                continue
            if f.name == "cel_expression":
                out["experimental"] = {"cel_expression": list(value)}
            elif f.name == "ip_trace_id":
                out[f.name] = [str(v) for v in value]
            else:
                out[f.name] = list(value)
        return out

    def to_json(self) -> str:
        return orjson.dumps(self.to_dict()).decode()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FlowFilter:
        """From protojson (proto or lowerCamel names; enum names or numbers)."""
        known = {f.name for f in fields(cls)}
        camel = {_camel(n): n for n in known}
        ff = cls()
        for key, value in data.items():
            if key == "experimental":
                if isinstance(value, Mapping):
                    cel = value.get("cel_expression", value.get("celExpression", []))
                    ff.cel_expression = _as_list(cel, key)
                continue
            name = key if key in known else camel.get(key)
            if name is None:
                raise FilterError(f"unknown FlowFilter field {key!r}")
            items = _as_list(value, key)
            enum = _ENUM_FIELDS.get(name)
            if enum is not None:
                items = [_enum_value_name(enum, v, name) for v in items]
            elif name in ("source_identity", "destination_identity", "ip_trace_id"):
                items = [_uint(v, name) for v in items]
            setattr(ff, name, items)
        return ff

    @classmethod
    def from_json(cls, text: str | bytes) -> list[FlowFilter]:
        """One or more FlowFilter JSON objects (concatenated, like hubble's decoder reads)."""
        out: list[FlowFilter] = []
        data = text.decode() if isinstance(text, bytes) else text
        dec_pos = 0
        decoder = json.JSONDecoder()
        while True:
            while dec_pos < len(data) and data[dec_pos].isspace():
                dec_pos += 1
            if dec_pos >= len(data):
                break
            try:
                obj, dec_pos = decoder.raw_decode(data, dec_pos)
            except json.JSONDecodeError as exc:
                raise FilterError(f"failed to decode {data!r}: {exc}") from None
            if not isinstance(obj, dict):
                raise FilterError(f"failed to decode {data!r}: not a JSON object")
            out.append(cls.from_dict(obj))
        return out


_ENUM_FIELDS: Final[dict[str, type[Any]]] = {
    "verdict": FlowVerdict,
    "traffic_direction": TrafficDirection,
    "drop_reason_desc": DropReason,
    "ip_version": IPVersion,
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _as_list(value: Any, key: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise FilterError(f"FlowFilter field {key!r} must be a list")
    return list(value)


def _enum_value_name(enum: type[Any], value: Any, key: str) -> str:
    if isinstance(value, str) and value in enum.__members__:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return str(enum(value).name)
        except ValueError:
            pass
    raise FilterError(f"invalid value {value!r} for FlowFilter field {key!r}")


def _uint(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise FilterError(f"invalid value {value!r} for FlowFilter field {key!r}")
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise FilterError(f"invalid value {value!r} for FlowFilter field {key!r}")
