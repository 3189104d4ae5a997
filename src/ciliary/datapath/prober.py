"""Many probes at once from one network namespace: TCP, UDP and ICMP, with real sockets.

    ip netns exec NS python -m ciliary.datapath.prober [--timeout S] < probes.json

reads a JSON list of probes (or `{"timeout": S, "probes": [...]}`) and prints a JSON list
of results, in the same order. A probe is `{dst, proto: tcp|udp|icmp, port | icmp_type,
timeout, http_path}`; its result adds `result`, `rtt_ms`, `answer`, `error` and
`http_status`:

* `connected`: TCP connect succeeded (`answer` is the echoed line, None when no echo came
  before the timeout: both are reported), a UDP answer came back, or the ICMP reply;
* `refused`: TCP reset, or ICMP port unreachable for UDP (the packet reached the host);
* `unreachable`: an ICMP error (host/net unreachable, administratively prohibited, time
  exceeded) or a local refusal to send (EPERM from a local firewall);
* `timeout`: nothing came back within the probe's timeout (a silent drop);
* `error`: a local failure that says nothing about the network (EADDRNOTAVAIL, EMFILE...).

`rtt_ms` is the time to connect (TCP) or to the answer (UDP, ICMP). TCP sends one line
(or, with `http_path`, `GET http_path HTTP/1.1`; then `http_status` is set and `answer` is
the first line of the body), then closes with SO_LINGER {1, 0}: a reset, so no TIME_WAIT
piles up. ICMP uses one raw socket per batch (echo request 8 -> reply 0, timestamp 13 -> 14;
Linux answers no other request type, so those time out).

All probes of a batch run concurrently on one asyncio loop, so a batch takes about its
longest timeout. `probe_many(ns, probes, timeout)` is the Python API: it runs the batch in
a thread switched into `ns` (see `netns.in_netns`), or with `isolated=True` in a child
`ip netns exec` process as above.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import ipaddress
import json
import random
import resource
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Any

PROTOS = ("tcp", "udp", "icmp")
RESULTS = ("connected", "refused", "timeout", "unreachable", "error")
LINE = b"ciliary-probe\n"
ICMP_REPLY = {8: 0, 13: 14, 15: 16, 17: 18}
_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENONET, errno.EPERM, errno.EACCES}


@dataclass(frozen=True)
class Probe:
    dst: str
    proto: str  # tcp | udp | icmp
    port: int = 0
    icmp_type: int = 8
    timeout: float | None = None  # None: the batch's timeout
    http_path: str | None = None  # tcp: send an HTTP GET instead of a line

    def __post_init__(self) -> None:
        if self.proto not in PROTOS:
            raise ValueError(f"proto must be one of {', '.join(PROTOS)}, got {self.proto!r}")
        ipaddress.IPv4Address(self.dst)  # IPv4 only: ValueError on anything else
        if self.proto != "icmp" and not 0 < self.port <= 65535:
            raise ValueError(f"port must be 1-65535, got {self.port}")
        if not 0 <= self.icmp_type <= 255:
            raise ValueError(f"icmp_type must be 0-255, got {self.icmp_type}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Probe:
        timeout = d.get("timeout")
        return cls(
            str(d["dst"]), str(d.get("proto", "tcp")).lower(), int(d.get("port") or 0),
            int(d.get("icmp_type", 8)), float(timeout) if timeout is not None else None,
            d.get("http_path"),
        )


@dataclass(frozen=True)
class ProbeResult:
    probe: Probe
    result: str  # one of RESULTS
    rtt_ms: float | None = None
    answer: str | None = None
    error: str | None = None
    http_status: int | None = None

    @property
    def delivered(self) -> bool:
        """The packet reached the destination's stack (connected or refused)."""
        return self.result in ("connected", "refused")

    def as_dict(self) -> dict[str, Any]:
        d = self.probe.as_dict()
        d.update(result=self.result, rtt_ms=self.rtt_ms, answer=self.answer, error=self.error, http_status=self.http_status)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProbeResult:
        return cls(Probe.from_dict(d), d["result"], d.get("rtt_ms"), d.get("answer"), d.get("error"), d.get("http_status"))


def _ms(t0: float) -> float:
    return round((time.monotonic() - t0) * 1000, 3)


def _oserror(p: Probe, e: OSError, t0: float | None = None) -> ProbeResult:
    name = errno.errorcode.get(e.errno or 0, str(e.errno))
    if isinstance(e, ConnectionRefusedError):
        return ProbeResult(p, "refused", _ms(t0) if t0 else None, error=name)
    return ProbeResult(p, "unreachable" if e.errno in _UNREACHABLE else "error", error=name)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


class _IcmpMux:
    """One raw ICMP socket for a batch: sends requests, routes replies and errors to waiters."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self.sock.setblocking(False)
        self.ident = random.randrange(1, 0xFFFF)
        self.waiters: dict[int, tuple[str, int, asyncio.Future[tuple[str, str | None]]]] = {}
        self.next_seq = 1
        loop.add_reader(self.sock.fileno(), self._readable)

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def send(self, dst: str, icmp_type: int) -> tuple[int, asyncio.Future[tuple[str, str | None]]]:
        seq = self.next_seq
        self.next_seq = (self.next_seq % 0xFFFF) + 1
        payload = struct.pack("!III", 0, 0, 0) if icmp_type == 13 else b"ciliary-probe-icmp"
        header = struct.pack("!BBHHH", icmp_type, 0, 0, self.ident, seq)
        packet = struct.pack("!BBHHH", icmp_type, 0, _checksum(header + payload), self.ident, seq) + payload
        fut: asyncio.Future[tuple[str, str | None]] = self.loop.create_future()
        self.waiters[seq] = (dst, ICMP_REPLY.get(icmp_type, -1), fut)
        self.sock.sendto(packet, (dst, 0))
        return seq, fut

    def _readable(self) -> None:
        while True:
            try:
                data, (src, _) = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self._packet(data, src)

    def _packet(self, data: bytes, src: str) -> None:
        ihl = (data[0] & 0x0F) * 4
        icmp = data[ihl:]
        if len(icmp) < 8:
            return
        kind, code = icmp[0], icmp[1]
        if kind in (3, 11, 12):  # unreachable, time exceeded, parameter problem: the original inside
            inner = icmp[8:]
            if len(inner) < 28 or inner[9] != socket.IPPROTO_ICMP:
                return
            iihl = (inner[0] & 0x0F) * 4
            ident, seq = struct.unpack("!HH", inner[iihl + 4 : iihl + 8])
            idst = socket.inet_ntoa(inner[16:20])
            w = self.waiters.get(seq)
            if ident == self.ident and w and w[0] == idst and not w[2].done():
                w[2].set_result(("unreachable", f"ICMP type {kind} code {code} from {src}"))
            return
        ident, seq = struct.unpack("!HH", icmp[4:8])
        w = self.waiters.get(seq)
        if ident == self.ident and w and w[0] == src and kind == w[1] and not w[2].done():
            w[2].set_result(("connected", None))


async def _icmp(p: Probe, timeout: float, mux: _IcmpMux) -> ProbeResult:
    t0 = time.monotonic()
    try:
        seq, fut = mux.send(p.dst, p.icmp_type)
    except OSError as e:
        return _oserror(p, e)
    try:
        result, detail = await asyncio.wait_for(fut, timeout)
    except TimeoutError:
        return ProbeResult(p, "timeout")
    finally:
        mux.waiters.pop(seq, None)
    return ProbeResult(p, result, _ms(t0) if result == "connected" else None, error=detail)


async def _udp(p: Probe, timeout: float) -> ProbeResult:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    t0 = time.monotonic()
    try:
        sock.connect((p.dst, p.port))
        await loop.sock_sendall(sock, LINE)
        data = await asyncio.wait_for(loop.sock_recv(sock, 65535), timeout)
        return ProbeResult(p, "connected", _ms(t0), data.decode(errors="replace").strip())
    except TimeoutError:
        return ProbeResult(p, "timeout")
    except OSError as e:
        return _oserror(p, e, t0)
    finally:
        sock.close()


async def _read_all(loop: asyncio.AbstractEventLoop, sock: socket.socket, http: bool) -> bytes:
    buf = b""
    while len(buf) < 65536:
        chunk = await loop.sock_recv(sock, 65536)
        if not chunk:
            break
        buf += chunk
        if not http and b"\n" in buf:
            break
    return buf


async def _tcp(p: Probe, timeout: float) -> ProbeResult:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    t0 = time.monotonic()
    try:
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (p.dst, p.port)), timeout)
        except TimeoutError:
            return ProbeResult(p, "timeout")
        except OSError as e:
            return _oserror(p, e, t0)
        rtt = _ms(t0)
        remaining = max(timeout - (time.monotonic() - t0), min(0.25, timeout))
        request = (
            f"GET {p.http_path} HTTP/1.1\r\nHost: {p.dst}\r\nUser-Agent: ciliary-prober\r\nConnection: close\r\n\r\n".encode()
            if p.http_path is not None else LINE
        )
        try:
            await loop.sock_sendall(sock, request)
            data = await asyncio.wait_for(_read_all(loop, sock, p.http_path is not None), remaining)
        except TimeoutError:
            return ProbeResult(p, "connected", rtt, None, "no answer before the timeout")
        except OSError as e:
            return ProbeResult(p, "connected", rtt, None, errno.errorcode.get(e.errno or 0, str(e)))
        if not data:
            return ProbeResult(p, "connected", rtt, None, "closed without an answer")
        if p.http_path is None:
            return ProbeResult(p, "connected", rtt, data.decode(errors="replace").strip())
        head, _, body = data.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
        parts = status_line.split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        first = body.split(b"\n", 1)[0].decode(errors="replace").strip()
        return ProbeResult(p, "connected", rtt, first or status_line, None, status)
    finally:
        sock.close()


def _concurrency() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        except (ValueError, OSError):
            pass
    return max(16, min(4096, (soft if soft != resource.RLIM_INFINITY else 65536) - 64))


async def run_probes(probes: Sequence[Probe], timeout: float = 1.0) -> list[ProbeResult]:
    """Run every probe concurrently in the current namespace; results in order."""
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(_concurrency())
    mux = _IcmpMux(loop) if any(p.proto == "icmp" for p in probes) else None

    async def one(p: Probe) -> ProbeResult:
        t = p.timeout if p.timeout is not None else timeout
        async with slots:
            try:
                if p.proto == "tcp":
                    return await _tcp(p, t)
                if p.proto == "udp":
                    return await _udp(p, t)
                assert mux is not None
                return await _icmp(p, t, mux)
            except OSError as e:  # socket() itself failed
                return _oserror(p, e)

    try:
        return list(await asyncio.gather(*(one(p) for p in probes)))
    finally:
        if mux is not None:
            mux.close()


def _as_probes(probes: Iterable[Probe | Mapping[str, Any]]) -> list[Probe]:
    return [p if isinstance(p, Probe) else Probe.from_dict(p) for p in probes]


def probe_many(
    ns: str | None, probes: Iterable[Probe | Mapping[str, Any]], timeout: float = 1.0, *, isolated: bool = False,
) -> list[ProbeResult]:
    """Run a batch of probes from namespace `ns` (None: the caller's), all at once.

    In a thread switched into `ns` (fast: no process start), or with `isolated=True` in a
    child process `ip netns exec ns python -m ciliary.datapath.prober`."""
    batch = _as_probes(probes)
    if not batch:
        return []
    if isolated:
        return _probe_subprocess(ns, batch, timeout)
    from ciliary.datapath.netns import in_netns

    box: list[list[ProbeResult] | BaseException] = []

    def work() -> None:
        try:
            with in_netns(ns) if ns else nullcontext():
                box.append(asyncio.run(run_probes(batch, timeout)))
        except BaseException as e:
            box.append(e)

    t = threading.Thread(target=work, name=f"prober-{ns}", daemon=True)
    t.start()
    t.join()
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


def _probe_subprocess(ns: str | None, batch: list[Probe], timeout: float) -> list[ProbeResult]:
    import subprocess

    argv = [sys.executable, "-m", "ciliary.datapath.prober", "--timeout", str(timeout)]
    if ns:
        argv = ["ip", "netns", "exec", ns, *argv]
    limit = max((p.timeout if p.timeout is not None else timeout) for p in batch) + 30
    res = subprocess.run(argv, input=json.dumps([p.as_dict() for p in batch]), capture_output=True, text=True, timeout=limit, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"prober in {ns}: {res.stderr.strip() or f'exit status {res.returncode}'}")
    return [ProbeResult.from_dict(d) for d in json.loads(res.stdout)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ciliary.datapath.prober", description="Run a JSON list of probes from stdin.")
    parser.add_argument("--timeout", type=float, default=1.0, help="default per-probe timeout in seconds")
    args = parser.parse_args(argv)
    try:
        spec = json.load(sys.stdin)
        timeout = float(spec.get("timeout", args.timeout)) if isinstance(spec, dict) else args.timeout
        batch = _as_probes(spec["probes"] if isinstance(spec, dict) else spec)
    except (ValueError, KeyError, TypeError, OSError) as e:
        print(f"prober: bad input: {e}", file=sys.stderr)
        return 2
    results = asyncio.run(run_probes(batch, timeout))
    sys.stdout.write(json.dumps([r.as_dict() for r in results]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
