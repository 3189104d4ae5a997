"""The netlink side of the datapath against the real kernel: nf_tables set elements
written and dumped over raw netlink (checked against what `nft -j list` reads back), NFLOG
packets and conntrack events.

Every kernel test runs in its own network namespace, named with this run's prefix, created
and deleted by the `netns` fixture; the last test checks that none is left. They skip when
not root, when `nft` is missing or when `ip netns add` fails.

Run this file as a script (as root) for the measurements: bulk resyncs, single-element
latency, dump time and NFLOG throughput (``.venv/bin/python tests/test_netlink.py``).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import ipaddress
import json
import os
import random
import re
import secrets
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from ciliary.datapath import nftcodec, nftnl
from ciliary.datapath.netlink import NetlinkError
from ciliary.datapath.nflog import (
    ConntrackEvents,
    CtEventType,
    CtGroup,
    NflogPacket,
    NflogReader,
    parse_ipv4,
    tcp_flag_names,
    tcp_flags_text,
)
from ciliary.datapath.nftnl import (
    Add,
    Delete,
    Elem,
    Field,
    Flush,
    NftCommandError,
    NftWriter,
    SetSpec,
    delete_table,
    diff,
    load_ruleset,
    table_exists,
)

PREFIX = f"cnl{secrets.token_hex(3)}-"
CLONE_NEWNET = 0x40000000
_counter = iter(range(1, 1 << 30))


# -- namespaces ---------------------------------------------------------------------------


def _support_problem() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, nf_tables)"
    if shutil.which("nft") is None:
        return "nft (nftables) is not installed"
    if shutil.which("ip") is None:
        return "ip (iproute2) is not installed"
    return None


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Run the body with this thread in namespace `name` (sockets opened there stay there)."""
    target = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


def sh(ns: str, *argv: str, input: str | None = None, check: bool = True) -> str:
    """Run a command inside namespace `ns`; its stdout."""
    proc = subprocess.run(["ip", "netns", "exec", ns, *argv], input=input, capture_output=True,
                          text=True, timeout=20)  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def _make_netns(tag: str) -> str:
    name = f"{PREFIX}{next(_counter)}-{tag}"[:60]
    proc = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"ip netns add failed: {proc.stderr.strip()}")
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    return name


def _delete_netns(name: str) -> None:
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.fixture
def netns(request: pytest.FixtureRequest) -> Iterator[str]:
    problem = _support_problem()
    if problem:
        pytest.skip(problem)
    name = _make_netns(request.node.name.removeprefix("test_")[:20])
    try:
        yield name
    finally:
        _delete_netns(name)


# -- nft's view ---------------------------------------------------------------------------

_PROTO = {"tcp": 6, "udp": 17, "icmp": 1, "sctp": 132}
_ICMP = {"echo-reply": 0, "destination-unreachable": 3, "echo-request": 8, "time-exceeded": 11}


def _nft_field(v: Any) -> Any:
    """One field as nft -j prints it, in the canonical form (independent of the writer)."""
    if isinstance(v, dict) and "prefix" in v:
        net = ipaddress.ip_network(f"{v['prefix']['addr']}/{v['prefix']['len']}")
        return (str(net.network_address), str(net.broadcast_address))
    if isinstance(v, dict) and "range" in v:
        lo, hi = (_nft_field(x) for x in v["range"])
        return (lo, hi)
    if isinstance(v, str):
        return _PROTO.get(v, _ICMP.get(v, v))
    return v


def nft_elements(ns: str, table: str, kind: str, name: str) -> set[tuple[Any, Any]]:
    """{(key tuple, data)} of a set or map as `nft -j list` reads it back from the kernel."""
    doc = json.loads(sh(ns, "nft", "-j", "list", kind, "inet", table, name))
    body = next(obj[kind] for obj in doc["nftables"] if kind in obj)
    out = set()
    for item in body.get("elem", []):
        key, data = (item[0], item[1]) if kind == "map" else (item, None)
        if isinstance(key, dict) and "elem" in key:
            key = key["elem"]["val"]
        fields = key["concat"] if isinstance(key, dict) and "concat" in key else [key]
        out.add((tuple(_nft_field(f) for f in fields), data))
    return out


def as_pairs(elems: Sequence[Elem]) -> set[tuple[Any, Any]]:
    return {(e.key, e.data) for e in elems}


SKELETON = """
table inet {t} {{
  map ipcache  {{ type ipv4_addr : mark; flags interval; }}
  map ep       {{ type ipv4_addr : mark; }}
  set eps      {{ type ipv4_addr; }}
  set ports    {{ type inet_service; }}
  set allow    {{ type ipv4_addr . mark . inet_proto . inet_service; }}
  set l3       {{ type ipv4_addr . mark; }}
  set icmps    {{ type ipv4_addr . mark . icmp_type; }}
  map l7       {{ type ipv4_addr . mark . inet_proto . inet_service : inet_service; }}
  set prange   {{ type ipv4_addr . mark . inet_proto . inet_service; flags interval; }}
  set l4range  {{ type ipv4_addr . inet_proto . inet_service; flags interval; }}
  set fqdn     {{ type ipv4_addr . ipv4_addr; flags timeout; }}
}}
"""
SPECS = [
    SetSpec.parse("ipcache", "ipv4_addr : mark", interval=True),
    SetSpec.parse("ep", "ipv4_addr : mark"),
    SetSpec.parse("eps", "ipv4_addr"),
    SetSpec.parse("ports", "inet_service"),
    SetSpec.parse("allow", "ipv4_addr . mark . inet_proto . inet_service"),
    SetSpec.parse("l3", "ipv4_addr . mark"),
    SetSpec.parse("icmps", "ipv4_addr . mark . icmp_type"),
    SetSpec.parse("l7", "ipv4_addr . mark . inet_proto . inet_service : inet_service"),
    SetSpec.parse("prange", "ipv4_addr . mark . inet_proto . inet_service", interval=True),
    SetSpec.parse("l4range", "ipv4_addr . inet_proto . inet_service", interval=True),
    SetSpec.parse("fqdn", "ipv4_addr . ipv4_addr", timeout=True),
]
KIND = {s.name: ("map" if s.data else "set") for s in SPECS}


def load_skeleton(ns: str, table: str = "dp") -> None:
    sh(ns, "nft", "-f", "-", input=SKELETON.format(t=table))


@pytest.fixture
def dp(netns: str) -> Iterator[tuple[str, NftWriter]]:
    """A namespace with the skeleton loaded and a writer opened inside it."""
    load_skeleton(netns)
    with in_netns(netns):
        writer = NftWriter("dp", SPECS)
    try:
        yield netns, writer
    finally:
        writer.close()


# -- pure parts ---------------------------------------------------------------------------


def test_spec_parse_and_declaration() -> None:
    spec = SetSpec.parse("l7", "ipv4_addr . mark . inet_proto . inet_service : inet_service")
    assert spec.key == (Field.IPV4_ADDR, Field.MARK, Field.INET_PROTO, Field.INET_SERVICE)
    assert spec.data == Field.INET_SERVICE and spec.concat and spec.key_len == 16
    assert SetSpec.parse("p", "inet_service").key_len == 2
    ipcache = SetSpec("ipcache", ("ipv4_addr",), "mark", interval=True)
    assert ipcache == SetSpec.parse("ipcache", "ipv4_addr : mark", interval=True)
    assert ipcache.declaration() == "map ipcache { type ipv4_addr : mark; flags interval; }"
    with pytest.raises(ValueError, match="unsupported type"):
        SetSpec.parse("x", "ipv6_addr")


def test_normalize_canonical_forms() -> None:
    allow, ipcache, prange = SPECS[4], SPECS[0], SPECS[8]
    assert allow.normalize(("10.0.0.1", 7, "tcp", 80)) == Elem(("10.0.0.1", 7, 6, 80))
    assert ipcache.normalize(("10.1.0.0/16", 5)) == Elem((("10.1.0.0", "10.1.255.255"),), 5)
    assert ipcache.normalize(("10.1.0.9/32", 5)) == Elem(("10.1.0.9",), 5)
    assert ipcache.normalize(Elem((("10.0.0.1", "10.0.0.1"),), 5)) == Elem(("10.0.0.1",), 5)
    assert ipcache.normalize((("10.0.0.1", "10.0.0.3"), 3)).key == (("10.0.0.1", "10.0.0.3"),)
    assert prange.normalize(("1.2.3.4", 1, "udp", (53, 53))).key == ("1.2.3.4", 1, 17, 53)
    # timeouts do not take part in equality
    fqdn = SPECS[10]
    assert fqdn.normalize(Elem(("1.1.1.1", "2.2.2.2"), timeout_ms=5)) == Elem(("1.1.1.1", "2.2.2.2"))
    bad: list[tuple[SetSpec, Any, str]] = [
        (allow, ("10.0.0.1", 7, "tcp"), "needs 4 fields"),
        (allow, ("10.0.0.1", 7, "tcp", (80, 90)), "without 'flags interval'"),
        (allow, ("10.0.0.300", 7, 6, 80), "not an IPv4 address"),
        (allow, ("10.0.0.1", 7, 6, 70000), "out of range"),
        (allow, ("10.0.0.1", 7, "bogus", 80), "wants an int"),
        (ipcache, ("10.0.0.0/8",), "is not \\(key, data\\)"),
        (ipcache, ("10.0.0.1/8", 1), "bad prefix"),
        (prange, ("1.2.3.4", 1, 6, (90, 80)), "empty range"),
        (SPECS[2], Elem(("1.2.3.4",), timeout_ms=10), "no 'flags timeout'"),
        (SPECS[2], Elem(("1.2.3.4",), 5), "is not a map"),
    ]
    for spec, elem, message in bad:
        with pytest.raises((ValueError, TypeError), match=message):
            spec.normalize(elem)


def test_spec_of_a_declaration() -> None:
    @dataclasses.dataclass(frozen=True)
    class Decl:  # the shape of ciliary.datapath.compile.SetDecl
        name: str
        key: tuple[str, ...]
        data: str | None = None
        interval: bool = False
        timeout: bool = False

    spec = nftnl.spec_of(Decl("ipcache_cidr", ("ipv4_addr",), "mark", interval=True))
    assert spec == SetSpec("ipcache_cidr", (Field.IPV4_ADDR,), Field.MARK, interval=True)
    with pytest.raises(TypeError, match="not a set declaration"):
        nftnl.spec_of(object())


def test_diff_is_the_difference() -> None:
    ep = SPECS[1]
    current = [Elem(("10.0.0.1",), 1), Elem(("10.0.0.2",), 2), Elem(("10.0.0.3",), 3)]
    wanted = [("10.0.0.1", 1), ("10.0.0.2", 20), ("10.0.0.4", 4)]
    ops = diff(ep, current, wanted)
    assert ops == [
        Delete("ep", [Elem(("10.0.0.2",), 2), Elem(("10.0.0.3",), 3)]),
        Add("ep", [Elem(("10.0.0.2",), 20), Elem(("10.0.0.4",), 4)]),
    ]
    assert diff(ep, current, current) == []


def test_parse_ipv4_heads() -> None:
    def ip(proto: int, l4: bytes, frag: int = 0) -> bytes:
        return bytes([0x45, 0]) + (20 + len(l4)).to_bytes(2, "big") + b"\0\0" + frag.to_bytes(2, "big") \
            + bytes([64, proto]) + b"\0\0" + bytes([10, 0, 0, 1, 10, 0, 0, 2]) + l4  # fmt: skip

    syn_ack = (33000).to_bytes(2, "big") + (8080).to_bytes(2, "big") + bytes(9) + bytes([0x12]) + bytes(6)
    head = parse_ipv4(ip(6, syn_ack))
    assert head is not None
    assert (head.src, head.dst, head.proto, head.sport, head.dport) == ("10.0.0.1", "10.0.0.2", 6, 33000, 8080)
    assert head.tcp_flags == "SA" and tcp_flag_names(head.tcp_flags) == ["SYN", "ACK"]
    assert head.icmp_type is None and head.length == 40
    echo = parse_ipv4(ip(1, bytes([8, 0, 0, 0, 0, 1, 0, 1])))
    assert echo is not None and (echo.icmp_type, echo.icmp_code, echo.sport, echo.tcp_flags) == (8, 0, None, "")
    udp = parse_ipv4(ip(17, bytes([0, 53, 0x13, 0x88, 0, 8, 0, 0])))
    assert udp is not None and (udp.sport, udp.dport) == (53, 5000)
    later_fragment = parse_ipv4(ip(17, bytes(8), frag=0x2001))
    assert later_fragment is not None and later_fragment.sport is None
    assert parse_ipv4(b"\x60" + bytes(39)) is None  # IPv6
    assert parse_ipv4(bytes([0x45]) + bytes(10)) is None  # truncated
    assert tcp_flags_text(0x02) == "S" and tcp_flags_text(0x11) == "FA"


# -- nf_tables ----------------------------------------------------------------------------

WRITTEN: dict[str, list[Any]] = {
    "ipcache": [("10.0.0.0/8", 5), ("11.0.0.1", 1001), (("12.0.0.1", "12.0.0.9"), 3),
                ("255.255.255.0/24", 7), ("0.0.0.0/31", 8)],
    "ep": [("10.200.1.10", 1001), ("10.200.1.11", 0x01020304)],
    "eps": ["10.200.1.10", ("10.200.1.11",)],
    "ports": [80, 65535],
    "allow": [("10.200.1.11", 1001, "tcp", 8080), ("10.200.1.11", 0xFFFFFFFF, "udp", 53)],
    "l3": [("10.200.1.11", 1003)],
    "icmps": [("10.200.1.11", 1001, "echo-request")],
    "l7": [(("10.200.1.11", 1001, 6, 8080), 15002)],
    "prange": [("10.200.1.11", 1001, "tcp", (8000, 8080)), ("10.0.0.0/8", 0x01020304, "udp", 53),
               ("10.200.1.12", 7, "tcp", (0, 65535))],
    "l4range": [("10.200.1.11", "tcp", (1, 1023)), ("10.200.1.11", "udp", 5353)],
    "fqdn": [Elem(("10.200.1.10", "93.184.216.34"), timeout_ms=60_000), ("10.200.1.10", "1.1.1.1")],
}  # fmt: skip


# Shapes the kernel skeleton has no set of; byte comparisons only.
_MORE_SPECS = [
    SetSpec.parse("portr", "inet_service", interval=True),  # rbtree set, a 2-byte key
    SetSpec.parse("markr", "mark : inet_service", interval=True),  # network-order mark key
    SetSpec.parse("pipamap", "ipv4_addr . inet_service : mark", interval=True),  # pipapo map
    SetSpec.parse("protos", "inet_proto"),  # a 1-byte key
    SetSpec.parse("five", "ipv4_addr . mark . inet_proto . inet_service . ipv4_addr"),
    SetSpec.parse("svcmap", "inet_service : inet_service"),
]

# Per field: plain values (the fast path's), then values only the general path takes
# (names it may not know, prefixes, ranges) and values nobody takes.
_SAMPLES: dict[str, list[Any]] = {
    Field.IPV4_ADDR: ["10.0.0.1", "0.0.0.0", "255.255.255.255", "192.168.255.7",
                      "10.1.0.0/16", ("10.0.0.1", "10.0.0.9"), "10.0.0.300", "", 167772161, None],
    Field.MARK: [0, 1001, 0x01020304, 0xFFFFFFFF, (5, 9), -1, 1 << 32, True, 1.0, "7"],
    Field.INET_PROTO: [6, 17, 0, 255, "tcp", "udp", "sctp", "bogus", 256, False],
    Field.INET_SERVICE: [80, 8080, 0, 65535, (8000, 8080), (0, 65535), 65536, -1, "80", True],
    Field.ICMP_TYPE: [8, 0, 255, "echo-request", "time-exceeded", "nope", 256, None],
}  # fmt: skip


def _sample_elements(spec: SetSpec, rnd: random.Random, n: int) -> list[Any]:
    """`n` varied elements of every shape a caller may pass, good and bad."""
    out: list[Any] = []
    for _ in range(n):
        pick = [s[: 4 if rnd.random() < 0.7 else len(s)] for s in (_SAMPLES[f] for f in spec.key)]
        key = tuple(rnd.choice(vals) for vals in pick)
        bare: Any = key[0] if not spec.concat and rnd.random() < 0.5 else key
        if spec.data is not None:
            data = rnd.choice([*_SAMPLES[spec.data][:4], None, _SAMPLES[spec.data][-1]])
            out += [(key, data), (bare, data), Elem(key, data), key]
        else:
            out += [bare, (key, None), Elem(key)]
    return out


def test_the_fast_path_encodes_like_the_general_path() -> None:
    """Plain values skip the integer round trip: the bytes must be the general path's
    (the reference), and whatever the general path refuses the fast path leaves to it."""
    rnd = random.Random(14)
    extra: dict[str, list[Any]] = {
        "ipcache": ["10.1.1.1", ("10.1.1.2", 3), ("255.255.255.254", 1), (("10.1.1.3",), 4)],
        "ports": [1, ("2",), ((443,), None), (80, None)],
        "eps": [(("10.0.0.1",), None), ("10.0.0.1", None), ((("10.0.0.1", "10.0.0.2"),), None)],
        "allow": [("10.0.0.1", 1, 6, 80), Elem(("10.0.0.1", 2, 17, 53)),
                  (("10.0.0.1", 100001, 6, 8080), None), (("10.0.0.1", 1, 6), None),
                  (("10.0.0.1", 1, 6, 80), 5)],
        "l3": [(("10.0.0.1", 7), None), (("10.0.0.1", 7), 7)],
        "prange": [("10.0.0.1", 1, 6, 80), (("10.0.0.1", 1, 6, 80), None)],
        "ep": [(("10.0.0.1",), 7), ("10.0.0.1", 7), ("10.0.0.1",), "10.0.0.1", (("10.0.0.1",), None)],
        "l7": [(("10.0.0.1", 1, 6, 80), 8080), ("10.0.0.1", 1, 6, 80), (("10.0.0.1", 1, 6, 80), None)],
    }  # fmt: skip
    fast_hits: dict[str, int] = {}
    for spec in SPECS + _MORE_SPECS:
        codec = nftcodec._codec(spec)
        elems = WRITTEN.get(spec.name, []) + extra.get(spec.name, []) + _sample_elements(spec, rnd, 60)
        for elem in elems:
            for adding in (True, False):
                fast = codec.encode(elem, adding)
                try:  # as NftWriter._encode: a delete needs no map data
                    general = b"".join(nftcodec._encode_elem(spec, spec._parse(elem, need_data=adding), adding))
                except (ValueError, TypeError):
                    assert fast is None, (spec.name, elem, adding)
                    continue
                if fast is not None:
                    assert fast == general, (spec.name, elem, adding)
                    fast_hits[spec.name] = fast_hits.get(spec.name, 0) + 1
    assert all(fast_hits.get(s.name, 0) >= 20 for s in SPECS + _MORE_SPECS if s.name != "fqdn"), fast_hits
    # what the agent passes (Agent._apply: (key, None) for sets, (key, data) for maps) and
    # bare keys take the fast path
    agent_shapes: list[tuple[SetSpec, Any]] = [
        (SPECS[4], (("10.0.0.1", 100001, 6, 8080), None)), (SPECS[4], ("10.0.0.1", 1, 6, 80)),
        (SPECS[2], (("10.0.0.1",), None)), (SPECS[2], "10.0.0.1"), (SPECS[2], ("10.0.0.1",)),
        (SPECS[1], (("10.0.0.1",), 7)), (SPECS[0], (("10.0.0.1",), 7)),
        (SPECS[8], (("10.0.0.1", 1, 6, 80), None)), (SPECS[7], (("10.0.0.1", 1, 6, 80), 8080)),
    ]  # fmt: skip
    for spec, elem in agent_shapes:
        assert nftcodec._codec(spec).encode(elem, True) is not None, (spec.name, elem)
    # a map's key alone when deleting
    assert nftcodec._codec(SPECS[1]).encode(("10.0.0.1",), False) is not None
    assert nftcodec._codec(SPECS[7]).encode(("10.0.0.1", 1, 6, 80), False) is not None
    # what the fast path leaves to the general one
    ipcache = nftcodec._codec(SPECS[0])
    assert ipcache.encode(("255.255.255.255", 1), True) is None  # open-ended: user data
    assert ipcache.encode(("10.0.0.0/8", 1), True) is None
    assert nftcodec._codec(SPECS[4]).encode(("10.0.0.1", 1, "tcp", 70000), True) is None
    assert nftcodec._codec(SPECS[10]).encode(Elem(("1.1.1.1", "2.2.2.2"), timeout_ms=5), True) is None


def test_table_helpers(netns: str) -> None:
    with in_netns(netns):
        assert not table_exists("dp")
        load_ruleset(SKELETON.format(t="dp"))
        assert table_exists("dp") and not table_exists("dp", "ip")
        with pytest.raises(NftCommandError, match="nft -f failed"):
            load_ruleset("table inet dp { set s { type nosuchtype; } }")
        with NftWriter("dp") as w:
            w.apply([Add("eps", ["10.0.0.1"])])
            assert [tuple(e) for e in w.list_elements("eps")] == [(("10.0.0.1",), None)]
            w.delete_table()
            assert not w.table_exists()
            w.delete_table()  # already gone: fine
            with pytest.raises(NetlinkError, match="table inet dp: delete table: No such file") as info:
                w.delete_table(missing_ok=False)
            assert info.value.errno == 2
        load_ruleset(SKELETON.format(t="dp"))
        delete_table("dp")
        assert not table_exists("dp")


def test_every_encoding_reads_back_in_nft(dp: tuple[str, NftWriter]) -> None:
    ns, w = dp
    w.apply([Add(name, elems) for name, elems in WRITTEN.items()])
    for spec in SPECS:
        expected = {w.spec(spec.name).normalize(e) for e in WRITTEN[spec.name]}
        assert nft_elements(ns, "dp", KIND[spec.name], spec.name) == as_pairs(list(expected)), spec.name
        assert set(w.list_elements(spec.name)) == expected, spec.name
    # the wide values nft would print differently if a byte order were wrong
    assert nft_elements(ns, "dp", "map", "ep") >= {(("10.200.1.11",), 0x01020304)}
    fqdn = {e.key: e for e in w.list_elements("fqdn")}
    timed = fqdn[("10.200.1.10", "93.184.216.34")]
    assert timed.timeout_ms == 60_000 and timed.expires_ms is not None and 0 < timed.expires_ms <= 60_000
    assert fqdn[("10.200.1.10", "1.1.1.1")].timeout_ms is None


def test_specs_come_from_the_kernel(dp: tuple[str, NftWriter]) -> None:
    ns, _w = dp
    with in_netns(ns), NftWriter("dp") as fresh:
        assert [fresh.read_spec(s.name) for s in SPECS] == SPECS
        fresh.apply([Add("l4range", [("10.0.0.1", "tcp", (80, 90))])])  # spec read on first use
        fresh.register(SetSpec.parse("eps", "ipv4_addr . mark"))
        with pytest.raises(NetlinkError, match=re.escape("declared in the kernel as 'set eps { type ipv4_addr; }'")):
            fresh.apply([Add("eps", [("1.2.3.4", 1)])])
        with pytest.raises(NetlinkError, match="set nosuch: not found") as info:
            fresh.apply([Flush("nosuch")])
        assert info.value.errno == 2
    assert nft_elements(ns, "dp", "set", "l4range") == {(("10.0.0.1", 6, (80, 90)), None)}


def test_nft_and_the_writer_delete_each_others_elements(dp: tuple[str, NftWriter]) -> None:
    ns, w = dp
    sh(ns, "nft", "add element inet dp ipcache { 10.0.0.0/8 : 5, 172.16.0.1 : 9, 192.168.0.0-192.168.0.9 : 4 }")
    sh(ns, "nft", "add element inet dp prange { 10.1.1.1 . 7 . tcp . 80-90, 10.1.1.2 . 8 . udp . 53 }")
    sh(ns, "nft", "add element inet dp allow { 10.1.1.1 . 7 . tcp . 80 }")
    sh(ns, "nft", "add element inet dp ep { 10.1.1.1 : 7, 10.1.1.2 : 8 }")
    sh(ns, "nft", "add element inet dp ports { 22, 80 }")
    sh(ns, "nft", "add element inet dp l7 { 10.1.1.1 . 7 . tcp . 80 : 15001, 10.1.1.1 . 8 . tcp . 80 : 15002 }")
    w.apply([
        Delete("ipcache", [("10.0.0.0/8", 5), (("192.168.0.0", "192.168.0.9"), 4)]),
        Delete("prange", [("10.1.1.1", 7, "tcp", (80, 90))]),
        Delete("allow", [("10.1.1.1", 7, "tcp", 80)]),
        Delete("l7", [(("10.1.1.1", 7, 6, 80), 15001), ("10.1.1.1", 8, "tcp", 80)]),
        Delete("ep", [("10.1.1.1",), Elem(("10.1.1.2",))]),  # map data is not needed
        Delete("ports", [22, (80,)]),
    ])  # fmt: skip
    assert nft_elements(ns, "dp", "map", "ep") == set() == nft_elements(ns, "dp", "set", "ports")
    assert nft_elements(ns, "dp", "map", "ipcache") == {(("172.16.0.1",), 9)}
    assert nft_elements(ns, "dp", "set", "prange") == {(("10.1.1.2", 8, 17, 53), None)}
    assert nft_elements(ns, "dp", "set", "allow") == set()
    assert nft_elements(ns, "dp", "map", "l7") == set()
    # and the other way round
    w.apply([
        Add("ipcache", [("10.0.0.0/8", 5), ("255.255.255.0/24", 6)]),
        Add("prange", [("10.1.1.1", 7, "tcp", (80, 90))]),
        Add("fqdn", [Elem(("10.0.0.1", "10.0.0.2"), timeout_ms=30_000)]),
    ])  # fmt: skip
    sh(ns, "nft", "delete element inet dp ipcache { 10.0.0.0/8, 255.255.255.0/24 }")
    sh(ns, "nft", "add element inet dp ipcache { 255.255.0.0/16 : 3 }")  # open-ended, by nft
    w.apply([Delete("ipcache", [("255.255.0.0/16", 3)])])
    sh(ns, "nft", "delete element inet dp prange { 10.1.1.1 . 7 . tcp . 80-90 }")
    sh(ns, "nft", "delete element inet dp fqdn { 10.0.0.1 . 10.0.0.2 }")
    assert w.list_elements("ipcache") == [Elem(("172.16.0.1",), 9)]
    assert w.list_elements("prange") == [Elem(("10.1.1.2", 8, 17, 53))]
    assert w.list_elements("fqdn") == []


def test_a_failing_batch_changes_nothing_and_says_why(dp: tuple[str, NftWriter]) -> None:
    ns, w = dp
    w.apply([Add("ipcache", [("10.0.0.0/8", 5)]), Add("eps", ["10.0.0.1"]), Add("ep", [("10.0.0.1", 1)])])
    before = {s.name: w.list_elements(s.name) for s in SPECS}
    cases: list[tuple[list[Any], int, str, str, Any]] = [
        # an overlapping interval, after a valid add to another set
        ([Add("eps", ["10.0.0.2"]), Add("ipcache", [("10.1.2.0/24", 9)])],
         17, "ipcache", "add element ('10.1.2.0/24', 9)", ("10.1.2.0/24", 9)),
        ([Flush("eps"), Add("eps", ["10.0.0.7", "10.0.0.1"], exclusive=True), Add("eps", ["10.0.0.1"], exclusive=True)],
         17, "eps", "add element '10.0.0.1'", "10.0.0.1"),
        ([Add("eps", ["10.0.0.3"]), Delete("eps", ["10.9.9.9"])],
         2, "eps", "delete element '10.9.9.9'", "10.9.9.9"),
        # same key, other data: must be deleted first
        ([Add("ep", [("10.0.0.1", 2)])], 17, "ep", "add element ('10.0.0.1', 2)", ("10.0.0.1", 2)),
    ]  # fmt: skip
    for ops, err, set_name, text, element in cases:
        with pytest.raises(NetlinkError) as info:
            w.apply(ops)
        assert info.value.errno == err
        assert info.value.set_name == set_name and info.value.element == element
        assert f"set {set_name}: {text}: {os.strerror(err)}" in str(info.value)
        assert {s.name: w.list_elements(s.name) for s in SPECS} == before
    with pytest.raises(ValueError, match=r"set allow: add element #1: .*needs 4 fields"):
        w.apply([Add("allow", [("1.2.3.4", 1, 6, 80), ("1.2.3.4", 1, 6)])])
    # what does work: replace map data by delete + add in one batch; idempotent delete
    w.apply([Delete("ep", [("10.0.0.1", 1)]), Add("ep", [("10.0.0.1", 2)]),
             Delete("eps", ["10.9.9.9"], missing_ok=True)])  # fmt: skip
    assert nft_elements(ns, "dp", "map", "ep") == {(("10.0.0.1",), 2)}


def test_full_resync_is_one_transaction_over_many_messages(dp: tuple[str, NftWriter]) -> None:
    ns, w = dp
    n = 10_000
    allow = [(str(ipaddress.IPv4Address(0x0A000000 + i // 4)), 1000 + i % 4, "tcp", 8080) for i in range(n)]
    ipcache = [(str(ipaddress.IPv4Address(0x0B000000 + 2 * i)), i) for i in range(n)]
    w.apply([Add("allow", allow[:100]), Add("ipcache", [("12.0.0.0/8", 1)])])
    t0 = time.perf_counter()
    w.apply([Flush("allow"), Add("allow", allow), Flush("ipcache"), Add("ipcache", ipcache)])
    elapsed = time.perf_counter() - t0
    got = w.list_elements("allow")
    assert len(got) == n and set(got) == {w.spec("allow").normalize(e) for e in allow}
    cache = w.list_elements("ipcache")
    assert len(cache) == n and cache[0] == Elem(("11.0.0.0",), 0) and cache[-1] == Elem((ipcache[-1][0],), n - 1)
    assert len(nft_elements(ns, "dp", "map", "ipcache")) == n
    # adopting the kernel's state: only the difference is written
    wanted = [*allow[5:], ("10.9.9.9", 1, "udp", 53)]
    ops = w.sync("allow", wanted)
    assert [(type(op).__name__, len(getattr(op, "elements", ()))) for op in ops] == [("Delete", 5), ("Add", 1)]
    assert set(w.list_elements("allow")) == {w.spec("allow").normalize(e) for e in wanted}
    assert w.sync("allow", wanted) == []
    print(f"\nresync of 2 x {n} elements (hash + interval map) in one batch: {elapsed * 1e3:.0f} ms")


def test_timeouts_expire_and_refresh(dp: tuple[str, NftWriter]) -> None:
    _ns, w = dp
    short, kept = ("10.0.0.1", "10.0.0.2"), ("10.0.0.1", "10.0.0.3")
    w.apply([Add("fqdn", [Elem(short, timeout_ms=300), Elem(kept, timeout_ms=300)])])
    w.apply([Add("fqdn", [Elem(kept, timeout_ms=30_000)])])  # a new TTL restarts the timer
    by_key = {e.key: e for e in w.list_elements("fqdn")}
    assert by_key[kept].timeout_ms == 30_000 and by_key[short].timeout_ms == 300
    time.sleep(0.45)
    assert [e.key for e in w.list_elements("fqdn")] == [kept]


# -- NFLOG and conntrack ------------------------------------------------------------------

EVENTS = """
table inet ev {
  chain in {
    type filter hook input priority 0;
    udp dport 5555 meta mark set 1234 log group 7 prefix "AUDIT ingress "
    tcp dport 5556 tcp flags syn meta mark set 0x7fffffff log group 8 prefix "DROP ingress 133 "
  }
  chain out {
    type filter hook output priority 0;
    ct state new ct mark set 42
    udp dport 5559 log group 9
  }
}
"""


def _wait_readable(fd: int, timeout: float = 2.0) -> bool:
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        return bool(sel.select(timeout))


def test_nflog_events_carry_prefix_mark_and_tuple(netns: str) -> None:
    sh(netns, "nft", "-f", "-", input=EVENTS)
    with in_netns(netns):
        reader = NflogReader([7, 8])
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp = socket.socket()
    with reader, udp, tcp:
        assert reader.read() == []
        udp.bind(("127.0.0.1", 40000))
        before = time.time()
        udp.sendto(b"x" * 300, ("127.0.0.1", 5555))
        tcp.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            tcp.connect(("127.0.0.1", 5556))
        assert _wait_readable(reader.fileno())
        deadline, packets = time.monotonic() + 2, list[NflogPacket]()
        while len(packets) < 2 and time.monotonic() < deadline:
            packets += reader.read()
            time.sleep(0.005)
        by_group = {p.group: p for p in packets}
        assert sorted(by_group) == [7, 8] and len(packets) == 2
        audit, drop = by_group[7], by_group[8]
        assert (audit.prefix, audit.mark, audit.indev, audit.outdev, audit.hook) == ("AUDIT ingress ", 1234, 1, None, 1)
        assert len(audit.payload) == 128 and audit.seq == 0  # copy_range, first of its group
        assert before - 1 < audit.timestamp < time.time() + 1
        head = parse_ipv4(audit.payload)
        assert head is not None
        assert (head.src, head.dst, head.proto, head.sport, head.dport, head.length) == \
            ("127.0.0.1", "127.0.0.1", 17, 40000, 5555, 328)  # fmt: skip
        assert (drop.prefix, drop.mark) == ("DROP ingress 133 ", 0x7FFFFFFF)
        tcp_head = parse_ipv4(drop.payload)
        assert tcp_head is not None
        assert (tcp_head.proto, tcp_head.dport, tcp_head.tcp_flags) == (6, 5556, "S")
        assert reader.lost == 0 and reader.received == 2
        # a group has one reader per namespace
        with in_netns(netns), pytest.raises(NetlinkError, match="NFLOG group 8 is already bound by another socket") as info:
            NflogReader([9, 8])
        assert info.value.errno == 1
    with in_netns(netns), NflogReader([8, 9]) as again:  # closing released the groups
        assert again.groups == (8, 9)


def test_nflog_overruns_are_counted_exactly(netns: str) -> None:
    sh(netns, "nft", "-f", "-", input=EVENTS)
    with in_netns(netns):
        reader = NflogReader(9, rcvbuf=4096)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = 300
    with reader, udp:
        for _ in range(sent):
            udp.sendto(b"y", ("127.0.0.1", 5559))
        got = []
        for _ in range(3):
            got += reader.read()
            time.sleep(0.01)
        assert got and reader.overruns >= 1 and reader.lost >= 1
        # the kernel numbers the events it could not deliver: the next one shows the gap
        udp.sendto(b"y", ("127.0.0.1", 5559))
        assert _wait_readable(reader.fileno())
        last = reader.read()
        assert [p.seq for p in last] == [sent]
        assert reader.lost == sent - len(got)
        assert reader.received == len(got) + 1 and all(p.prefix == "" for p in got)


def test_conntrack_new_and_destroy_events(netns: str) -> None:
    if shutil.which("conntrack") is None:
        pytest.skip("conntrack (conntrack-tools) is not installed")
    sh(netns, "nft", "-f", "-", input=EVENTS)
    with in_netns(netns):
        events = ConntrackEvents(CtGroup.NEW | CtGroup.DESTROY)
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with events, server, client:
        server.bind(("127.0.0.1", 5560))
        client.bind(("127.0.0.1", 40001))
        client.sendto(b"ping", ("127.0.0.1", 5560))
        _data, peer = server.recvfrom(100)
        server.sendto(b"pong", peer)
        assert client.recv(100) == b"pong"
        assert _wait_readable(events.fileno())
        new = [e for e in events.read() if e.dport == 5560]
        assert len(new) == 1
        ev = new[0]
        assert ev.type is CtEventType.NEW and ev.mark == 42 and ev.id is not None
        assert (ev.src, ev.dst, ev.proto, ev.sport, ev.dport) == ("127.0.0.1", "127.0.0.1", 17, 40001, 5560)
        assert ev.reply is not None and (ev.reply.sport, ev.reply.dport) == (5560, 40001)
        sh(netns, "conntrack", "-D", "-p", "udp", "--orig-port-dst", "5560")
        assert _wait_readable(events.fileno())
        gone = [e for e in events.read() if e.dport == 5560]
        assert [(e.type, e.id, e.mark) for e in gone] == [(CtEventType.DESTROY, ev.id, 42)]
        assert events.lost == 0


def test_zz_no_namespace_left() -> None:
    if _support_problem():
        pytest.skip(_support_problem() or "")
    left = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
            if n.startswith(PREFIX)]  # fmt: skip
    assert left == []


# -- measurements (run this file as a script) ---------------------------------------------


def _median_ms(fn: Any, runs: int) -> float:
    times = []
    for i in range(runs):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _bench_sets(ns: str) -> None:
    load_skeleton(ns)
    with in_netns(ns):
        w = NftWriter("dp", SPECS)
    with w:
        for n in (10_000, 100_000):
            allow = [(str(ipaddress.IPv4Address(0x0A000000 + i // 4)), 1000 + i % 4, 6, 8080) for i in range(n)]
            cache = [(str(ipaddress.IPv4Address(0x0B000000 + 2 * i)), i) for i in range(n)]
            for name, elems in (("allow", allow), ("ipcache", cache)):
                best = min(_timed(lambda: w.apply([Flush(name), Add(name, elems)])) for _ in range(3))  # noqa: B023
                print(f"resync {name:8} {n:>7} elements, one batch: {best * 1e3:8.1f} ms")
            t_list = _timed(lambda: w.list_elements("allow"))
            t_list_iv = _timed(lambda: w.list_elements("ipcache"))
            print(f"dump     allow/ipcache {n:>7}: {t_list * 1e3:.0f} / {t_list_iv * 1e3:.0f} ms")
            for name, mk in (("allow", lambda i: ("10.250.0.1", 1, 6, 1 + i)),
                             ("ipcache", lambda i: (str(ipaddress.IPv4Address(0x0C000000 + 2 * i)), 7))):  # fmt: skip
                add = _median_ms(lambda i: w.apply([Add(name, [mk(i)])]), 300)  # noqa: B023
                delete = _median_ms(lambda i: w.apply([Delete(name, [mk(i)])]), 300)  # noqa: B023
                print(f"single   {name:8} with {n:>7} present: add {add:.3f} ms, delete {delete:.3f} ms")


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


SENDER = """
import socket, sys, time
rate, seconds = float(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
n, t0 = 0, time.perf_counter()
end = t0 + seconds
while True:
    now = time.perf_counter()
    if now >= end: break
    due = min(int((now - t0) * rate), n + 500)
    while n < due:
        s.sendto(b"z", ("127.0.0.1", 5559)); n += 1
    if rate < 1e6: time.sleep(0.0002)
print(n)
"""


def _bench_nflog(ns: str) -> None:
    sh(ns, "nft", "-f", "-", input=EVENTS)
    for rate in (20_000, 50_000, 100_000, 0):
        with in_netns(ns):
            reader = NflogReader(9)
        with reader:
            proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SENDER,
                                     str(rate or 10_000_000), "2"], stdout=subprocess.PIPE, text=True)  # fmt: skip
            got, t0 = 0, time.perf_counter()
            while proc.poll() is None or _wait_readable(reader.fileno(), 0.05):
                if _wait_readable(reader.fileno(), 0.05):
                    got += len(reader.read())
            got += len(reader.read())
            sent = int(proc.communicate()[0])
            took = time.perf_counter() - t0
            label = f"{rate:>7}/s paced" if rate else "  unpaced burst"
            print(f"nflog {label}: sent {sent}, read {got} ({got / took:,.0f}/s), "
                  f"lost {reader.lost} (seq gaps), overruns {reader.overruns}")


def main() -> int:
    problem = _support_problem()
    if problem:
        print(f"cannot measure: {problem}")
        return 1
    for bench in (_bench_sets, _bench_nflog):
        ns = _make_netns(bench.__name__.strip("_"))
        try:
            bench(ns)
        finally:
            _delete_netns(ns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
