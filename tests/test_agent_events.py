"""The agent's event path at speed, against its plain versions (issue 14: 50k events/s).

`FlowMaker` against `events.flow_of`, `Agent.drain_events` against the per-event loop it
replaced (VerdictEvent, flow_of, export_line, json.dumps), `parse_ipv4` against the
straightforward decoder, the NFLOG layouts against the attribute walk, the flow file's
batched writes and rotation against one line at a time; then, with root and network
namespaces, the kernel's batching (`NflogReader.configure`) delivering every packet and
counting what it could not deliver, and `Agent.run` turning batching on and off.
"""

from __future__ import annotations

import gc
import json
import random
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import datapath_scenarios as scenarios
from ciliary.datapath import agent as agent_mod
from ciliary.datapath.agent import Agent, AgentOptions, FlowLog
from ciliary.datapath.compile import compile_node
from ciliary.datapath.events import (
    FlowMaker,
    VerdictEvent,
    export_line,
    flow_of,
    parse_prefix,
    uuid4_texts,
)
from ciliary.datapath.nflog import (
    NFULA_IFINDEX_INDEV,
    NFULA_IFINDEX_OUTDEV,
    NFULA_IFINDEX_PHYSINDEV,
    NFULA_MARK,
    NFULA_PACKET_HDR,
    NFULA_PAYLOAD,
    NFULA_PREFIX,
    NFULA_SEQ,
    NFULA_SEQ_GLOBAL,
    NFULA_TIMESTAMP,
    NflogPacket,
    NflogReader,
    PacketHead,
    parse_ipv4,
    tcp_flag_names,
    tcp_flags_text,
)
from ciliary.flows.gotime import format_rfc3339_proto
from ciliary.policy.engine import PolicyEngine
from ciliary.process import SERVING_YOUNG_THRESHOLD
from ciliary.verdict.decider import Decider
from ciliary.workflows.engine import build_engine, read_config
from datapath_helpers import requires_netns

NODE = "node-a"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return scenarios.write(tmp_path_factory.mktemp("events") / "in")


@pytest.fixture(scope="module")
def engine(inputs: tuple[Path, Path, Path]) -> PolicyEngine:
    c, p, a = inputs
    return build_engine(c, [p], read_config(a))


def _addresses(engine: PolicyEngine) -> list[str]:
    pods = sorted({ep.ips[0] for ep in engine.pod_endpoints if ep.ips})
    nodes = [ip for _, ip in scenarios.NODES]
    return [*pods[:10], *nodes, scenarios.WORLD_IN, scenarios.WORLD_EXCEPTED, "198.51.100.7"]


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Equal flows, key for key and in the same order, but for their random uuids."""
    assert uuid.UUID(a["uuid"]).version == 4 and uuid.UUID(b["uuid"]).version == 4
    a, b = {**a, "uuid": ""}, {**b, "uuid": ""}
    assert json.dumps(a) == json.dumps(b)


def _events(engine: PolicyEngine, n: int, seed: int = 14) -> list[tuple[VerdictEvent, bool]]:
    rng = random.Random(seed)
    ips = _addresses(engine)
    out = []
    for i in range(n):
        action = rng.choice(("DROP", "AUDIT", "ALLOW"))
        proto = rng.choice((6, 6, 17, 132, 1, 47))
        flags = tuple(tcp_flag_names(tcp_flags_text(rng.randrange(256)))) if proto == 6 else ()
        icmp = rng.choice((0, 3, 8, 11, 42)) if proto == 1 else 0
        ns = rng.choice((1_700_000_000 * 10**9, 1_700_000_000_123 * 10**6, 1_700_000_000_123_456 * 1000,
                         1_700_000_000_123_456_789 + i))  # fmt: skip
        e = VerdictEvent(action, rng.choice(("ingress", "egress")), rng.choice((133, 181, 189, 7)) if action != "ALLOW" else 0,
                         rng.choice([n for n, _ in scenarios.NODES]), rng.choice(ips), rng.choice(ips), proto,
                         rng.randrange(1, 65536), rng.choice((80, 5353, 8080, 8443, 9090, 12345)), icmp, rng.randrange(3),
                         flags, ns, rng.randrange(1 << 16))  # fmt: skip
        out.append((e, rng.random() < 0.5))
    return out


# -- FlowMaker ----------------------------------------------------------------------------


def test_the_flow_maker_makes_flow_ofs_flows(engine: PolicyEngine) -> None:
    decider = Decider(engine)
    maker = FlowMaker(engine, decider)
    for _ in range(2):  # the second time from the memos
        for e, enforced in _events(engine, 1500):
            _same(maker.flow_of(e, enforced=enforced), flow_of(e, engine, decider, enforced=enforced))
    # letters or names for the TCP flags; the memos' parts are copies
    e = _events(engine, 1)[0][0]
    syn = VerdictEvent("ALLOW", "ingress", 0, NODE, e.src, e.dst, 6, 1000, 8080, tcp_flags=("SYN", "ACK"), time_ns=5 * 10**17)
    a = maker.flow("ALLOW", "ingress", 0, NODE, e.src, e.dst, 6, 1000, 8080, tcp_flags="SA", time_ns=5 * 10**17)
    _same(a, flow_of(syn, engine, decider))
    a["source"]["labels"].append("mutated")
    a["l4"]["TCP"]["flags"]["FIN"] = True
    _same(maker.flow_of(syn), flow_of(syn, engine, decider))
    # no time: now
    t0 = time.time_ns()
    stamp = maker.flow("DROP", "egress", 133, NODE, e.src, e.dst, 17)["time"]
    assert format_rfc3339_proto(t0)[:16] <= stamp <= format_rfc3339_proto(time.time_ns())


def test_the_flow_maker_asks_the_engine_while_names_are_learned(engine: PolicyEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    decider = Decider(engine)
    maker = FlowMaker(engine, decider)
    monkeypatch.setattr(PolicyEngine, "has_learned_names", property(lambda self: True))
    for e, enforced in _events(engine, 200, seed=3):
        _same(maker.flow_of(e, enforced=enforced), flow_of(e, engine, decider, enforced=enforced))
    assert not maker._endpoints and not maker._allowed


def test_time_text_is_protojsons_and_uuids_are_version_4() -> None:
    maker = FlowMaker.__new__(FlowMaker)
    maker._second, maker._base = None, ""
    rng = random.Random(5)
    stamps = [0, 1, 999_999_999, 10**9, 1_700_000_000 * 10**9 - 1]
    for _ in range(3000):
        base = rng.randrange(-(10**18), 4 * 10**18)
        stamps += [base, base - base % 10**9, base - base % 10**6, base - base % 1000, base + 10**9]
    for ns in stamps:
        assert maker.time_text(ns) == format_rfc3339_proto(ns), ns
    texts = uuid4_texts(2000)
    assert len(set(texts)) == 2000
    for t in texts:
        u = uuid.UUID(t)
        assert str(u) == t and u.version == 4 and u.variant == uuid.RFC_4122


def test_prefixes_parse_the_same_from_the_memo() -> None:
    for text in ("DROP ingress 133 ", "AUDIT egress 181 ", "ALLOW ingress ", "ALLOW egress", "DROP sideways 1", "x", ""):
        assert parse_prefix(text) == parse_prefix.__wrapped__(text)


# -- IPv4 heads -------------------------------------------------------------------------


def _plain_parse_ipv4(payload: bytes) -> PacketHead | None:
    """parse_ipv4 as it was: the oracle."""
    if len(payload) < 20 or payload[0] >> 4 != 4:
        return None
    ihl = (payload[0] & 0x0F) * 4
    if ihl < 20 or len(payload) < ihl:
        return None
    proto = payload[9]
    src = socket.inet_ntop(socket.AF_INET, payload[12:16])
    dst = socket.inet_ntop(socket.AF_INET, payload[16:20])
    total = struct.unpack_from("!H", payload, 2)[0]
    first_fragment = struct.unpack_from("!H", payload, 6)[0] & 0x1FFF == 0
    l4 = payload[ihl:] if first_fragment else b""
    sport = dport = icmp_type = icmp_code = None
    flags = ""
    if proto in (6, 17, 33, 132, 136) and len(l4) >= 4:
        sport, dport = struct.unpack_from("!HH", l4)
        if proto == 6 and len(l4) >= 14:
            flags = tcp_flags_text(l4[13])
    elif proto == 1 and len(l4) >= 2:
        icmp_type, icmp_code = l4[0], l4[1]
    return PacketHead(src, dst, proto, sport, dport, icmp_type, icmp_code, flags, total)


def test_parse_ipv4_decodes_as_the_plain_decoder() -> None:
    rng = random.Random(9)
    for _ in range(20_000):
        ihl = rng.choice((5, 5, 5, 6, 15, 4))
        version = rng.choice((4, 4, 4, 6))
        head = bytes([version << 4 | ihl, 0]) + rng.randbytes(4) + rng.choice((b"\x40\x00", b"\x20\x01", b"\x00\x00", rng.randbytes(2)))
        head += bytes([64, rng.choice((1, 6, 17, 132, 33, 136, 47, 58))]) + rng.randbytes(2)
        head += rng.choice((b"\x0a\x4d\x00\x0a", rng.randbytes(4))) + rng.randbytes(4)
        payload = (head + rng.randbytes(max(0, ihl * 4 - 20)) + rng.randbytes(rng.randrange(40)))[: rng.randrange(0, 90)]
        assert parse_ipv4(payload) == _plain_parse_ipv4(payload), payload.hex()


# -- NFLOG layouts ------------------------------------------------------------------------


def _nla(atype: int, value: bytes) -> bytes:
    n = 4 + len(value)
    return struct.pack("=HH", n, atype) + value + bytes(-n % 4)


def _message(rng: random.Random, group: int, seq: int, prefix: str | None, *, payload: bytes | None = None,
             mark: int | None = None, stamp: bool = True, hw: bool = True, physdev: bool = False) -> bytes:  # fmt: skip
    """An NFLOG packet message, attributes in the kernel's order (__build_packet_message)."""
    attrs = _nla(NFULA_PACKET_HDR, struct.pack("!HBx", 0x0800, rng.choice((1, 3))))
    if prefix is not None:
        attrs += _nla(NFULA_PREFIX, prefix.encode() + b"\0")
    attrs += _nla(NFULA_IFINDEX_INDEV, struct.pack("!I", rng.randrange(1, 9)))
    if physdev:
        attrs += _nla(NFULA_IFINDEX_PHYSINDEV, struct.pack("!I", 4))
        attrs += _nla(NFULA_IFINDEX_OUTDEV, struct.pack("!I", 5)) + _nla(7, struct.pack("!I", 6))
    if mark is not None:
        attrs += _nla(NFULA_MARK, struct.pack("!I", mark))
    if hw:
        attrs += _nla(8, struct.pack("!H2x", 6) + rng.randbytes(8)) + _nla(15, b"\x00\x01") + _nla(17, b"\x00\x0e")
        attrs += _nla(16, rng.randbytes(14))
    if stamp:
        attrs += _nla(NFULA_TIMESTAMP, struct.pack("!QQ", 1_700_000_000 + seq, rng.randrange(10**6)))
    attrs += _nla(NFULA_SEQ, struct.pack("!I", seq)) + _nla(NFULA_SEQ_GLOBAL, struct.pack("!I", seq + 7))
    attrs += _nla(NFULA_PAYLOAD, payload if payload is not None else rng.randbytes(rng.randrange(20, 61)))
    body = struct.pack("!BBH", 2, 0, group) + attrs
    return struct.pack("=IHHII", 16 + len(body), 4 << 8, 0, 0, 0) + body


def _walked(datagrams: list[bytes], groups: tuple[int, ...]) -> list[NflogPacket]:
    """Every packet through `_walk` only: the oracle."""
    ref = NflogReader._decoder(groups)
    out = []
    for data in datagrams:
        off = 0
        while off + 20 <= len(data):
            length, mtype = struct.unpack_from("=IH", data, off)
            if length < 16 or off + length > len(data):
                break
            if mtype == 4 << 8:
                out.append(ref._walk(data, off + 16, off + length, 1.0))
            off += (length + 3) & ~3
    return out


def test_nflog_layouts_decode_as_the_attribute_walk() -> None:
    rng = random.Random(21)
    kinds = [dict(prefix="DROP ingress 133 ", mark=5), dict(prefix="ALLOW egress ", mark=None),
             dict(prefix=None, stamp=False, hw=False), dict(prefix="AUDIT ingress 181 ", mark=0x7FFFFFFF, physdev=True),
             dict(prefix="x" * 30, hw=False)]  # fmt: skip
    seqs = {1: 0, 2: 0}
    datagrams = []
    for _ in range(60):
        msgs = b""
        for _ in range(rng.randrange(1, 40)):
            group = rng.choice((1, 2))
            kind = rng.choice(kinds)
            msgs += _message(rng, group, seqs[group], **kind)  # type: ignore[arg-type]
            seqs[group] += rng.choice((1, 1, 1, 1, 3))  # some gaps: lost events
        done = struct.pack("=IHHII", 20, 3, 2, 0, 0) + bytes(4)  # NLMSG_DONE ends a batch
        datagrams.append(msgs + done)
    # a payload attribute that is not last, a malformed attribute, a truncated message
    odd = _message(rng, 1, seqs[1], "DROP ingress 133 ") + _nla(NFULA_SEQ_GLOBAL, bytes(4))
    odd = struct.pack("=I", len(odd)) + odd[4:]
    bad = _message(rng, 2, seqs[2], "ALLOW egress ")
    bad = bad[:28] + struct.pack("=HH", 2, NFULA_PREFIX) + bad[32:]  # an attribute shorter than its header
    datagrams += [odd, bad, _message(rng, 1, seqs[1] + 1, "DROP ingress 133 ")[:-10]]
    reader = NflogReader._decoder((1, 2))
    got: list[NflogPacket] = []
    for data in datagrams:
        reader._parse(data, 1.0, got)
    assert got == _walked(datagrams, (1, 2))
    assert len(reader._layouts) >= 4 and got[-2].prefix == "DROP ingress 133 " and got[-1].prefix == ""
    lost = 0
    for g in (1, 2):
        nxt = 0
        for pkt in got:
            if pkt.group == g and pkt.seq is not None:
                lost, nxt = lost + pkt.seq - nxt, pkt.seq + 1
    assert reader.seq_lost == lost > 0


# -- the agent's drain ----------------------------------------------------------------------


class _Replay:
    """Stands for an NflogReader: `read()` returns the next batch."""

    lost = 0

    def __init__(self, batches: list[list[NflogPacket]]) -> None:
        self.batches = batches

    def read(self) -> list[NflogPacket]:
        return self.batches.pop(0) if self.batches else []

    def close(self) -> None:
        pass


def _agent(inputs: tuple[Path, Path, Path], tmp: Path, **kw: Any) -> Agent:
    c, p, a = inputs
    ag = Agent(AgentOptions(c, [p], a, "zz", tmp / "run", flows_out=tmp / "flows.jsonl", **kw), nodes={NODE: "unused"})
    ag.engine = ag.load()
    ag.decider = Decider(ag.engine)
    ag.nodes[NODE].state = Agent._canonical(compile_node(ag.engine, NODE))
    return ag


def _packets(engine: PolicyEngine, n: int) -> list[NflogPacket]:
    rng = random.Random(77)
    ips = _addresses(engine)
    prefixes = ("DROP ingress 133 ", "DROP egress 181 ", "AUDIT ingress 133 ", "AUDIT egress 181 ", "ALLOW ingress ",
                "ALLOW egress ", "something else ")  # fmt: skip
    out = []
    for i in range(n):
        proto = rng.choice((6, 17, 1, 132, 47))
        l4 = struct.pack("!HHIIBBH", rng.randrange(1024, 65536), rng.choice((80, 8080, 8443, 9090, 5353)), 0, 0, 0x50,
                         rng.randrange(256), 0) if proto != 1 else bytes([rng.choice((0, 8, 3)), 0, 0, 0])  # fmt: skip
        head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0x4000, 64, proto, 0,
                           socket.inet_aton(rng.choice(ips)), socket.inet_aton(rng.choice(ips)))  # fmt: skip
        payload = head + l4 if rng.random() > 0.02 else b"\x60" + bytes(39)
        out.append(NflogPacket(rng.choice((1, 2)), rng.choice(prefixes), rng.randrange(1 << 16), 3, None, None, None,
                               1_700_000_000 + i / 1000, payload, 1, i))  # fmt: skip
    return out


def _plain_drain(ag: Agent, packets: list[NflogPacket]) -> list[dict[str, Any]]:
    """Agent.drain_events as it was (one VerdictEvent and flow_of per packet): the oracle."""
    assert ag.engine is not None and ag.decider is not None
    rt = ag.nodes[NODE]
    out = []
    for pkt in packets:
        parsed = parse_prefix(pkt.prefix)
        head = _plain_parse_ipv4(pkt.payload)
        if parsed is None or head is None:
            continue
        action, direction, reason = parsed
        ev = VerdictEvent(action, direction, reason, rt.name, head.src, head.dst, head.proto, head.sport or 0, head.dport or 0,
                          head.icmp_type or 0, head.icmp_code or 0, tuple(tcp_flag_names(head.tcp_flags or "")),
                          int(pkt.timestamp * 1e9), pkt.mark)  # fmt: skip
        local = head.dst if direction == "ingress" else head.src
        st = rt.state
        enforced = st is not None and (local,) in st.elements[f"{'in' if direction == 'ingress' else 'eg'}_enforced"]
        out.append(export_line(flow_of(ev, ag.engine, ag.decider, enforced=enforced)))
    return out


def test_drain_events_publishes_the_plain_loops_flows(inputs: tuple[Path, Path, Path], engine: PolicyEngine, tmp_path: Path) -> None:
    ag = _agent(inputs, tmp_path)
    packets = _packets(engine, 3000)
    heard: list[dict[str, Any]] = []
    ag.subscribers.append(heard.append)
    ag.nodes[NODE].reader = _Replay([packets[i : i + 700] for i in range(0, len(packets), 700)])
    n = 0
    while got := ag.drain_events():
        n += got
    want = _plain_drain(ag, packets)
    assert n == ag.seen == len(want) == len(heard) and 2000 < n < 2900
    assert {ln["flow"]["event_type"]["type"] for ln in want} == {1, 4, 5}
    for a, b in zip(heard, want, strict=True):
        assert list(a) == ["flow", "node_name", "time"] and a["time"] == a["flow"]["time"]
        _same(a["flow"], b["flow"])
    assert list(ag.ring) == heard[-agent_mod.RING :]
    # the flow file: the ring's lines, as json.dumps writes them compactly
    lines = (tmp_path / "flows.jsonl").read_bytes().splitlines()
    assert lines == [json.dumps(ln, separators=(",", ":")).encode() for ln in heard]


def test_a_new_engine_gets_a_new_flow_maker(inputs: tuple[Path, Path, Path], engine: PolicyEngine, tmp_path: Path) -> None:
    ag = _agent(inputs, tmp_path)
    packets = _packets(engine, 50)
    ag.nodes[NODE].reader = _Replay([packets])
    ag.drain_events()
    first = ag._flows
    assert first is not None and first.engine is ag.engine
    ag.engine = ag.load()
    ag.decider = Decider(ag.engine)
    ag.nodes[NODE].reader = _Replay([packets])
    ag.drain_events()
    assert ag._flows is not first and ag._flows is not None and ag._flows.engine is ag.engine
    ag.close()


def test_the_flow_file_rotates_by_size_as_line_by_line(tmp_path: Path) -> None:
    lines = [{"flow": {"n": i, "text": "x" * (i % 50)}, "node_name": NODE, "time": str(i)} for i in range(500)]
    expected: list[list[bytes]] = [[]]  # the old FlowLog: rotate after the line reaching the limit
    size = 0
    for ln in lines:
        data = json.dumps(ln, separators=(",", ":")).encode() + b"\n"
        expected[-1].append(data)
        size += len(data)
        if size >= 3000:
            expected.append([])
            size = 0
    log = FlowLog(tmp_path / "f.jsonl", 3000, 100)
    log.write_many(lines[:7])
    log.write(lines[7])
    log.write_many(lines[8:])
    log.close()
    files = [tmp_path / "f.jsonl", *(tmp_path / f"f.jsonl.{i}" for i in range(1, 100))]
    got = [f.read_bytes() for f in files if f.exists()][::-1]  # oldest first
    assert got == [b"".join(chunk) for chunk in expected if chunk or chunk is expected[-1]]


# -- the kernel's batching ---------------------------------------------------------------

RULES = """
table inet ev {
  chain in {
    type filter hook input priority 0;
    udp dport 5571 meta mark set 99 log group 11 prefix "DROP ingress 133 " drop
  }
}
"""


@pytest.fixture
def netns() -> Iterator[str]:
    from ciliary.datapath import netns as nsmod
    from datapath_helpers import unique_prefix

    name = f"{unique_prefix('e')}-ev"
    nsmod.create(name)
    try:
        yield name
    finally:
        nsmod.delete(name)


def _sh(ns: str, *argv: str, input: str | None = None) -> None:
    import subprocess

    subprocess.run(["ip", "netns", "exec", ns, *argv], input=input, text=True, check=True, capture_output=True, timeout=20)


def _read_for(reader: NflogReader, want: int, seconds: float = 3.0) -> tuple[list[NflogPacket], int]:
    calls, got, deadline = 0, list[NflogPacket](), time.monotonic() + seconds
    while len(got) + reader.lost < want and time.monotonic() < deadline:
        got += reader.read()
        calls += 1
        time.sleep(0.01)
    return got, calls


@requires_netns
def test_batched_nflog_delivers_every_packet_in_few_datagrams(netns: str) -> None:
    from ciliary.datapath.netns import in_netns

    _sh(netns, "nft", "-f", "-", input=RULES)
    with in_netns(netns):
        reader = NflogReader(11)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with reader, udp:
        reader.configure(**agent_mod.EVENT_BATCH)
        datagrams: list[bytes] = []
        real = reader._receiver

        class Spy:
            def all(self, limit: int | None) -> tuple[list[bytes], int]:
                out = real.all(limit)
                datagrams.extend(out[0])
                return out

        reader._receiver = Spy()  # type: ignore[assignment]
        for i in range(2000):
            udp.sendto(b"z", ("127.0.0.1", 5571))
            if i % 500 == 499:
                time.sleep(0.02)
        got, _ = _read_for(reader, 2000)
        assert len(got) == 2000 and reader.lost == 0 and reader.overruns == 0
        assert [p.seq for p in got] == list(range(2000))
        assert all(p.prefix == "DROP ingress 133 " and p.mark == 99 for p in got)
        assert len(datagrams) < 200  # batches, not one datagram per packet
        assert got == _walked(datagrams, (11,))
        # back to one packet per datagram: each is readable at once
        reader.configure(**agent_mod.EVENT_UNBATCHED)
        time.sleep(0.05)
        reader.read()
        udp.sendto(b"z", ("127.0.0.1", 5571))
        t0 = time.monotonic()
        while not (last := reader.read()) and time.monotonic() - t0 < 1:
            pass
        assert [p.seq for p in last] == [2000]


@requires_netns
def test_batched_nflog_counts_what_it_could_not_deliver(netns: str) -> None:
    from ciliary.datapath.netns import in_netns

    _sh(netns, "nft", "-f", "-", input=RULES)
    with in_netns(netns):
        reader = NflogReader(11, rcvbuf=4096)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with reader, udp:
        reader.configure(qthresh=64, flush_timeout_cs=1, nlbufsiz=16 << 10)
        sent = 3000
        for _ in range(sent):
            udp.sendto(b"y", ("127.0.0.1", 5571))
        time.sleep(0.1)
        got = reader.read()
        assert got and reader.overruns >= 1 and reader.lost >= 1
        for _ in range(64):  # one more batch shows the gap
            udp.sendto(b"y", ("127.0.0.1", 5571))
        more, _ = _read_for(reader, sent + 64)
        got += more
        assert got[-1].seq == sent + 63
        assert reader.lost == sent + 64 - len(got)


# -- run() ---------------------------------------------------------------------------------


class _Configurable(_Replay):
    def __init__(self) -> None:
        super().__init__([])
        self.a, self.b = socket.socketpair()
        self.calls: list[dict[str, int]] = []

    def fileno(self) -> int:
        return self.a.fileno()

    def configure(self, **kw: int) -> None:
        self.calls.append(kw)


def test_run_batches_while_it_reads_and_restores_the_gc(inputs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    ag = _agent(inputs, tmp_path)
    ag._mtimes = ag._snapshot_mtimes()  # no reload
    reader = _Configurable()
    ag.nodes[NODE].reader = reader
    before = gc.get_threshold()
    th = threading.Thread(target=ag.run)
    th.start()
    try:
        deadline = time.monotonic() + 5
        while not reader.calls and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gc.get_threshold()[0] >= SERVING_YOUNG_THRESHOLD and gc.get_freeze_count() > 0
    finally:
        ag.stop()
        th.join(5)
    assert reader.calls == [agent_mod.EVENT_BATCH, agent_mod.EVENT_UNBATCHED]
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    reader.a.close()
    reader.b.close()
