"""The agent's Hubble API: the `observer.Observer` gRPC service over the agent's flow ring.

    server = ObserverServer(agent).start()        # 127.0.0.1:4245, where hubble looks
    ...                                           # hubble observe --verdict DROPPED -f
    server.stop()

`hubble observe` (and any Hubble client: the messages are Hubble's, see `hubbleapi/`) reads
the agent's flows as it reads a Cilium agent's or Relay's:

* `GetFlows`: the ring's flows that pass the request's time window (`since`/`until` on each
  flow's time) and filters, then the first `number` of them (`first`) or the last `number`
  (`number` 0: all of them; with `follow` and no `since`: none, as Hubble does), then with
  `follow` every new flow that passes, until the client cancels or the server stops. A flow
  after `until` ends a following stream. With `since` and `number` Hubble returns the first
  `number` flows since; here, as `ciliary observe --since --last` does, the last.
  `field_mask` is honoured (paths of fields this API leaves out select nothing).
* `ServerStatus`: ring size and capacity, flows seen, uptime, the nodes (a node whose event
  reader is gone is unavailable), version and the flow rate of the last minute.
* The standard gRPC health service reports `hubble.server.Observer` SERVING (`hubble status`
  asks it first) until `stop()`.

Contracts:
* Filtering is `ciliary observe`'s: each FlowFilter message becomes the JSON dict that
  `ciliary.flows.FlowFilter` reads and one `FlowMatcher` decides, so a request and the
  equivalent `ciliary observe` flags select the same flows. A filter this server cannot apply
  (a CEL expression, a field it does not know) is refused with INVALID_ARGUMENT, never
  ignored.
* The agent is never blocked: the subscriber callback of a follower only puts the line into
  the follower's bounded queue; when the queue is full the line is dropped and counted, and
  the follower is sent a `lost_events` response (HUBBLE_RING_BUFFER, as for a Hubble reader
  the ring overtook) with the count. Events the agent itself lost (`agent.lost_events()`
  growing: NFLOG messages the kernel dropped, Hubble's PERF_EVENT_RING_BUFFER) are reported
  to followers as they grow.
* Each call runs on one thread of the server's pool; at most `max_workers` calls at once
  (the next gets RESOURCE_EXHAUSTED). Followers poll every 0.2 s, so `stop()` ends them
  within that, then waits at most `grace` seconds for the calls to finish.
* Only loopback addresses (`127.0.0.0/8`, `::1`, `localhost`) and `unix:` sockets are
  served, the API being plaintext and unauthenticated, unless `allow_remote=True`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import Any, Final, Protocol, cast

import grpc
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp
from google.protobuf.unknown_fields import UnknownFieldSet
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ciliary import __version__
from ciliary.datapath.hubbleapi import flow_pb2, observer_pb2, observer_pb2_grpc
from ciliary.flows.flowfilter import FilterError, FlowFilter
from ciliary.flows.gotime import NS, parse_rfc3339_ns
from ciliary.flows.matcher import FlowMatcher

JSON = dict[str, Any]

DEFAULT_ADDRESS: Final = "127.0.0.1:4245"  # the hubble CLI's default --server
HEALTH_SERVICE: Final = "hubble.server.Observer"  # the name `hubble status` checks
VERSION: Final = f"ciliary-{__version__}"
POLL_SECONDS: Final = 0.2
FOLLOW_QUEUE: Final = 4096  # lines a follower may lag behind before they are dropped
MAX_WORKERS: Final = 32

__all__ = [
    "DEFAULT_ADDRESS",
    "HEALTH_SERVICE",
    "FlowSource",
    "ObserverServer",
    "check_address",
    "flow_filter_of",
    "flow_message",
]

log = logging.getLogger(__name__)

# What a flow predicate may raise on a flow it cannot read (as observe treats them: the flow
# does not match).
_FLOW_ERRORS: Final = (TypeError, ValueError, AttributeError, KeyError, IndexError)


class FlowSource(Protocol):
    """What the server reads of the agent (`ciliary.datapath.agent.Agent` has it all).

    `ring` holds export lines (`{"flow": {...}, "node_name": ..., "time": ...}`), oldest
    first; every callable in `subscribers` is called with each new line, on the agent's
    thread; `seen` counts the flows observed; `nodes` maps node names to runtimes (one whose
    `reader` attribute is None is unavailable); `lost_events()` counts events lost before
    they became flows. An optional `started` (Unix seconds) dates the uptime."""

    @property
    def ring(self) -> deque[JSON]: ...

    @property
    def subscribers(self) -> list[Callable[[JSON], None]]: ...

    @property
    def seen(self) -> int: ...

    @property
    def nodes(self) -> Mapping[str, object]: ...

    def lost_events(self) -> int: ...


# ---- addresses ---------------------------------------------------------------------------------


def check_address(address: str, *, allow_remote: bool = False) -> str:
    """The address as gRPC binds it (`host:port`, `[v6]:port`, `unix:PATH`); ValueError when
    it is malformed, or not loopback without `allow_remote`."""
    if address.startswith(("unix:", "unix-abstract:")):
        return address
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"invalid address {address!r}: want HOST:PORT or unix:PATH")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if bare == "localhost":
        return address
    try:
        ip = ipaddress.ip_address(bare) if bare else None
    except ValueError:
        ip = None
        if not allow_remote:
            raise ValueError(
                f"refusing to serve the Hubble API on {address!r}: give a loopback address "
                "(127.0.0.1, [::1], localhost), or allow_remote=True"
            ) from None
    if ip is not None and ip.version == 6 and not host.startswith("["):
        raise ValueError(f"invalid address {address!r}: write an IPv6 address as [addr]:port")
    if (ip is None or not ip.is_loopback) and not allow_remote:
        raise ValueError(
            f"refusing to serve the Hubble API on {address!r}: it is plaintext and "
            "unauthenticated; give a loopback address (127.0.0.1, [::1], localhost), or "
            "allow_remote=True"
        )
    return address


# ---- messages ----------------------------------------------------------------------------------


def flow_message(flow: JSON) -> flow_pb2.Flow:
    """The `flow.Flow` of a protojson flow dict, as `json_format.ParseDict(flow, Flow(),
    ignore_unknown_fields=True)` makes it (fields this API leaves out are dropped). Raises
    json_format.ParseError on a flow of the wrong shape.

    ParseDict is generic and slow (about 0.3 ms for a flow with labels and policies, so a
    second for a full ring): the flows the agent writes take a direct path over the
    message's fields; anything it does not know how to read goes to ParseDict."""
    msg = flow_pb2.Flow()
    try:
        _fill(msg, flow, _FLOW_FIELDS)
    except (TypeError, ValueError, AttributeError, KeyError):
        msg.Clear()
        json_format.ParseDict(flow, msg, ignore_unknown_fields=True)
    return msg


# Field kinds of the direct path.
_SCALAR, _INT64, _ENUM, _MESSAGE, _TIMESTAMP, _WRAPPER = range(6)
_INT64_TYPES: Final = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    }
)
# The one Python type a field of this type takes on the direct path (others: ParseDict).
_PY_TYPES: Final[Mapping[int, type]] = {
    FieldDescriptor.TYPE_BOOL: bool,
    FieldDescriptor.TYPE_STRING: str,
    FieldDescriptor.TYPE_INT32: int,
    FieldDescriptor.TYPE_UINT32: int,
    FieldDescriptor.TYPE_SINT32: int,
    FieldDescriptor.TYPE_FIXED32: int,
    FieldDescriptor.TYPE_SFIXED32: int,
}
_WRAPPERS: Final[Mapping[str, type]] = {
    "google.protobuf.BoolValue": bool,
    "google.protobuf.Int32Value": int,
    "google.protobuf.UInt32Value": int,
}


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    kind: int
    repeated: bool
    py: type | None = None  # the Python type of a scalar or wrapper
    enum: Mapping[str, int] | None = None  # value numbers by name
    sub: Mapping[str, _Field] | None = None  # the fields of a message


_TABLES: dict[str, dict[str, _Field]] = {}


def _fields_of(desc: Any) -> dict[str, _Field]:
    """A message's fields by proto name and JSON name (what protojson accepts)."""
    table = _TABLES.get(desc.full_name)
    if table is not None:
        return table
    table = {}
    _TABLES[desc.full_name] = table  # before the fields: messages may nest themselves
    for fd in desc.fields:
        repeated = fd.is_repeated
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            full = fd.message_type.full_name
            if full == "google.protobuf.Timestamp":
                f = _Field(fd.name, _TIMESTAMP, repeated)
            elif full in _WRAPPERS:
                f = _Field(fd.name, _WRAPPER, repeated, py=_WRAPPERS[full])
            elif fd.message_type.GetOptions().map_entry or full.startswith("google.protobuf."):
                raise ValueError(f"no direct path for {full}")  # none in this API
            else:
                f = _Field(fd.name, _MESSAGE, repeated, sub=_fields_of(fd.message_type))
        elif fd.type == FieldDescriptor.TYPE_ENUM:
            values = {v.name: v.number for v in fd.enum_type.values}
            f = _Field(fd.name, _ENUM, repeated, enum=values)
        elif fd.type in _INT64_TYPES:
            f = _Field(fd.name, _INT64, repeated)
        elif fd.type in _PY_TYPES:
            f = _Field(fd.name, _SCALAR, repeated, py=_PY_TYPES[fd.type])
        else:
            raise ValueError(f"no direct path for {fd.full_name}")  # none in this API
        table[fd.name] = table[fd.json_name] = f
    return table


_FLOW_FIELDS: Final = _fields_of(flow_pb2.Flow.DESCRIPTOR)


def _enum_number(f: _Field, value: Any) -> int | None:
    if type(value) is int:
        return value
    assert f.enum is not None
    number = f.enum.get(value)
    if number is None and isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return number  # None: an unknown name, dropped as ParseDict drops it


def _int64(value: Any) -> int:
    if type(value) is int or (isinstance(value, str) and value.lstrip("-").isdigit()):
        return int(value)
    raise TypeError(f"not an integer: {value!r}")


def _fill(msg: Any, data: Mapping[str, Any], table: Mapping[str, _Field]) -> None:
    """Set `msg` from its protojson `data`; raises (TypeError, ValueError, ...) on anything
    off the common path, for the caller to hand over to ParseDict."""
    if type(data) is not dict:
        raise TypeError("not an object")
    for key, value in data.items():
        f = table.get(key)
        if f is None or value is None:
            continue  # an unknown field; null is the default
        kind, name = f.kind, f.name
        if f.repeated:
            if type(value) is not list:
                raise TypeError(f"{key} is not a list")
            target = getattr(msg, name)
            if kind == _MESSAGE:
                assert f.sub is not None
                for item in value:
                    _fill(target.add(), item, f.sub)
            elif kind == _ENUM:
                target.extend(n for v in value if (n := _enum_number(f, v)) is not None)
            elif kind == _INT64:
                target.extend(_int64(v) for v in value)
            elif kind == _SCALAR:
                if any(type(v) is not f.py for v in value):
                    raise TypeError(f"{key}: an item of another type")
                target.extend(value)
            else:
                raise TypeError(f"repeated {key}")
        elif kind == _SCALAR:
            if type(value) is not f.py:
                raise TypeError(f"{key} is of another type")
            setattr(msg, name, value)
        elif kind == _MESSAGE:
            assert f.sub is not None
            sub = getattr(msg, name)
            sub.SetInParent()  # `"source": {}` is present, though empty
            _fill(sub, value, f.sub)
        elif kind == _ENUM:
            number = _enum_number(f, value)
            if number is not None:
                setattr(msg, name, number)
        elif kind == _INT64:
            setattr(msg, name, _int64(value))
        elif kind == _TIMESTAMP:
            getattr(msg, name).FromJsonString(value)
        else:  # _WRAPPER
            if type(value) is not f.py:
                raise TypeError(f"{key} is of another type")
            getattr(msg, name).value = value


def flow_filter_of(msg: flow_pb2.FlowFilter) -> FlowFilter:
    """The `ciliary.flows.FlowFilter` of a FlowFilter message (through its protojson, as
    `--allowlist` JSON is read). Raises FilterError on a field this server does not know."""
    fields = UnknownFieldSet(msg)
    unknown = sorted({int(fields[i].field_number) for i in range(len(fields))})
    if unknown:
        raise FilterError(
            f"FlowFilter field(s) {', '.join(map(str, unknown))} not supported by this server"
        )
    return FlowFilter.from_dict(json_format.MessageToDict(msg, preserving_proto_field_name=True))


def _timestamp(ns: int) -> Timestamp:
    return Timestamp(seconds=ns // NS, nanos=ns % NS)


def _ts_ns(ts: Timestamp) -> int:
    return int(ts.seconds) * NS + int(ts.nanos)


def _line_time_ns(line: JSON) -> int | None:
    """The response time of an export line (the envelope's, else the flow's), or None."""
    t = line.get("time")
    if not isinstance(t, str):
        flow = line.get("flow")
        t = flow.get("time") if isinstance(flow, dict) else None
    return parse_rfc3339_ns(t) if isinstance(t, str) else None


def _valid_mask(paths: Sequence[str]) -> FieldMask:
    """The mask's paths that name fields of `flow.Flow` here (others select nothing)."""
    desc = cast(Descriptor, flow_pb2.Flow.DESCRIPTOR)
    return FieldMask(paths=[p for p in paths if FieldMask(paths=[p]).IsValidForDescriptor(desc)])


# ---- one GetFlows request ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Query:
    """A GetFlows request, compiled: which lines it selects and how it renders them."""

    predicate: Callable[[JSON], bool] | None  # None: every flow
    since: int | None
    until: int | None
    number: int
    first: bool
    follow: bool
    mask: FieldMask | None

    @classmethod
    def of(cls, req: observer_pb2.GetFlowsRequest) -> _Query:
        """Raises FilterError (or ValueError) on a request that cannot be served."""
        if req.first and req.follow:
            raise ValueError("first cannot be specified with follow")
        allow = [flow_filter_of(f) for f in req.whitelist]
        deny = [flow_filter_of(f) for f in req.blacklist]
        matcher = FlowMatcher(allow, deny)
        mask = _valid_mask(list(req.field_mask.paths)) if req.field_mask.paths else None
        return cls(
            predicate=None if matcher.is_trivial else matcher.predicate,
            since=_ts_ns(req.since) if req.HasField("since") else None,
            until=_ts_ns(req.until) if req.HasField("until") else None,
            number=int(req.number),
            first=req.first,
            follow=req.follow,
            mask=mask,
        )

    def matches(self, line: JSON, t: int | None) -> bool:
        """The line is a flow in the window that passes the filters (`t`: its time)."""
        flow = line.get("flow")
        if not isinstance(flow, dict):
            return False
        ts = t if t is not None else 0  # no time counts as the epoch, as observe does
        if (self.since is not None and ts < self.since) or (
            self.until is not None and ts > self.until
        ):
            return False
        if self.predicate is None:
            return True
        try:
            return self.predicate(flow)
        except _FLOW_ERRORS:
            return False

    def history(self, lines: Iterable[JSON]) -> list[JSON]:
        """The ring's lines this request returns before following."""
        if self.follow and not self.number and self.since is None:
            return []  # `hubble observe -f`: new flows only, as Hubble does
        matched = [line for line in lines if self.matches(line, _line_time_ns(line))]
        n = self.number
        if not n:
            return matched
        return matched[:n] if self.first else matched[-n:]

    def response(self, line: JSON) -> observer_pb2.GetFlowsResponse | None:
        """The response of one selected line; None (logged) when the flow does not convert."""
        flow = line["flow"]
        try:
            msg = flow_message(flow)
        except (json_format.ParseError, TypeError, ValueError) as exc:
            log.warning("hubble: flow %s not served: %s", flow.get("uuid", "?"), exc)
            return None
        if self.mask is not None:
            masked = flow_pb2.Flow()
            self.mask.MergeMessage(msg, masked)
            msg = masked
        resp = observer_pb2.GetFlowsResponse(flow=msg)
        node = line.get("node_name")
        resp.node_name = node if isinstance(node, str) else msg.node_name
        t = _line_time_ns(line)
        if t is not None:
            resp.time.CopyFrom(_timestamp(t))
        elif msg.HasField("time"):
            resp.time.CopyFrom(msg.time)
        return resp


def _lost(source: flow_pb2.LostEventSource, count: int) -> observer_pb2.GetFlowsResponse:
    resp = observer_pb2.GetFlowsResponse(
        lost_events=flow_pb2.LostEvent(source=source, num_events_lost=count)
    )
    resp.time.CopyFrom(_timestamp(time.time_ns()))
    return resp


class _Follower:
    """One following call's bounded queue; `push` is the agent's subscriber callback."""

    def __init__(self, size: int) -> None:
        self.queue: queue.Queue[JSON] = queue.Queue(maxsize=size)
        self.dropped = 0  # written by the agent's thread only
        self.reported = 0  # written by the call's thread only

    def push(self, line: JSON) -> None:
        try:
            self.queue.put_nowait(line)
        except queue.Full:
            self.dropped += 1

    def take_dropped(self) -> int:
        dropped = self.dropped
        new, self.reported = dropped - self.reported, dropped
        return new


def _snapshot(ring: deque[JSON]) -> list[JSON]:
    # Copying a deque runs in C under the GIL; a concurrent append can only make it retry.
    for _ in range(10):
        with contextlib.suppress(RuntimeError):
            return list(ring)
    return list(ring)


# ---- the service -------------------------------------------------------------------------------

# The generated registration function, typed (the generated grpc module is not).
_add_observer: Callable[[observer_pb2_grpc.ObserverServicer, grpc.Server], None] = (
    observer_pb2_grpc.add_ObserverServicer_to_server
)


class _ObserverService(observer_pb2_grpc.ObserverServicer):
    def __init__(self, server: ObserverServer) -> None:
        self._server = server

    def GetFlows(
        self, request: observer_pb2.GetFlowsRequest, context: grpc.ServicerContext
    ) -> Iterator[observer_pb2.GetFlowsResponse]:
        try:
            query = _Query.of(request)
        except ValueError as exc:  # FilterError included
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        yield from self._server._stream(query, context)

    def ServerStatus(
        self, request: observer_pb2.ServerStatusRequest, context: grpc.ServicerContext
    ) -> observer_pb2.ServerStatusResponse:
        return self._server.status()


class ObserverServer:
    """The Hubble Observer API of one agent, on one address. `start()`, then `stop()`; or use
    it as a context manager. `address` is the bound address once started (port 0 in the
    given address picks a free port)."""

    def __init__(
        self,
        agent: FlowSource,
        address: str = DEFAULT_ADDRESS,
        *,
        allow_remote: bool = False,
        max_workers: int = MAX_WORKERS,
        follow_queue: int = FOLLOW_QUEUE,
        version: str = VERSION,
    ) -> None:
        self.agent = agent
        self.requested_address = check_address(address, allow_remote=allow_remote)
        self.address = self.requested_address
        self.port = 0
        self.version = version
        self._max_workers = max_workers
        self._follow_queue = follow_queue
        self._stopping = threading.Event()
        self._server: grpc.Server | None = None
        self._health = health.HealthServicer()
        self._created = time.time()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> ObserverServer:
        """Bind and serve (returns at once). Raises OSError when the address cannot be bound."""
        if self._server is not None or self._stopping.is_set():
            raise RuntimeError("an ObserverServer starts once")
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self._max_workers, thread_name_prefix="hubble"),
            maximum_concurrent_rpcs=self._max_workers,
            # Fail when the port is taken rather than share it with another server.
            options=[("grpc.so_reuseport", 0)],
        )
        _add_observer(_ObserverService(self), server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        try:
            port = server.add_insecure_port(self.requested_address)
        except RuntimeError as exc:
            raise OSError(
                f"cannot serve the Hubble API on {self.requested_address}: {exc}"
            ) from None
        if not port and not self.requested_address.startswith("unix"):
            raise OSError(f"cannot serve the Hubble API on {self.requested_address}")
        self.port = port
        if not self.requested_address.startswith("unix"):
            host = self.requested_address.rpartition(":")[0]
            self.address = f"{host}:{port}"
        for name in ("", HEALTH_SERVICE):
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        server.start()
        self._server = server
        return self

    def stop(self, grace: float | None = 1.0) -> None:
        """End every call (followers within a poll), then stop serving. Idempotent."""
        self._stopping.set()
        self._health.enter_graceful_shutdown()
        if self._server is not None:
            self._server.stop(grace).wait()

    def __enter__(self) -> ObserverServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- RPCs --------------------------------------------------------------------------------
    def status(self) -> observer_pb2.ServerStatusResponse:
        agent = self.agent
        ring = agent.ring
        unavailable = sorted(
            name for name, node in agent.nodes.items() if getattr(node, "reader", True) is None
        )
        started = getattr(agent, "started", None)
        since = started if isinstance(started, int | float) else self._created
        resp = observer_pb2.ServerStatusResponse(
            num_flows=len(ring),
            max_flows=ring.maxlen if ring.maxlen is not None else len(ring),
            seen_flows=max(int(agent.seen), 0),
            uptime_ns=max(int((time.time() - since) * NS), 0),
            unavailable_nodes=unavailable,
            version=self.version,
            flows_rate=_flows_rate(_snapshot(ring), time.time_ns()),
        )
        resp.num_connected_nodes.value = len(agent.nodes) - len(unavailable)
        resp.num_unavailable_nodes.value = len(unavailable)
        return resp

    def _stream(
        self, query: _Query, context: grpc.ServicerContext
    ) -> Iterator[observer_pb2.GetFlowsResponse]:
        follower = _Follower(self._follow_queue) if query.follow else None
        subscribers = self.agent.subscribers
        if follower is not None:
            subscribers.append(follower.push)  # before the snapshot: nothing falls between
        try:
            history = _snapshot(self.agent.ring)
            for line in query.history(history):
                if self._stopping.is_set() or not context.is_active():
                    return
                resp = query.response(line)
                if resp is not None:
                    yield resp
            if follower is not None:
                yield from self._follow(query, follower, {id(line) for line in history}, context)
        finally:
            if follower is not None:
                with contextlib.suppress(ValueError):
                    subscribers.remove(follower.push)

    def _follow(
        self,
        query: _Query,
        follower: _Follower,
        seen_ids: set[int],
        context: grpc.ServicerContext,
    ) -> Iterator[observer_pb2.GetFlowsResponse]:
        # `seen_ids`: lines of the snapshot; the queue may start with some of them (published
        # between subscribing and the snapshot), never after a new one.
        done = threading.Event()
        context.add_callback(done.set)
        lost_base = self.agent.lost_events()
        while not (done.is_set() or self._stopping.is_set()):
            try:
                line: JSON | None = follower.queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                line = None
            if line is not None and not (seen_ids and id(line) in seen_ids):
                seen_ids = set()
                t = _line_time_ns(line)
                if query.until is not None and t is not None and t > query.until:
                    return
                if query.matches(line, t) and (resp := query.response(line)) is not None:
                    yield resp
            # Losses are reported after the flows that came before them.
            dropped = follower.take_dropped()
            if dropped:
                yield _lost(flow_pb2.HUBBLE_RING_BUFFER, dropped)
            lost = self.agent.lost_events()
            if lost > lost_base:
                yield _lost(flow_pb2.PERF_EVENT_RING_BUFFER, lost - lost_base)
                lost_base = lost


def _flows_rate(lines: list[JSON], now_ns: int) -> float:
    """Flows per second over the last minute (by flow time), newest lines last."""
    start = now_ns - 60 * NS
    n = 0
    for line in reversed(lines):
        t = _line_time_ns(line)
        if t is None or t < start:
            break
        n += 1
    return n / 60.0
