"""The server inside a lab namespace: every declared port of its pods, on 0.0.0.0.

    python -m ciliary.datapath.podserver --spec JSON [--marker TOKEN]

`JSON` is `{"label": "...", "ready": "/path/ready.json", "ports": [{"port": 8080,
"proto": "TCP", "key": "shop/web-0", "http": true}, ...]}`. Per port:

* TCP: an echo. Each line read is answered with `<key> <port>\\n`, until the client closes.
  On an `http` port (a named port whose name starts with "http"), a first line that is an
  HTTP/1.x request line is served as HTTP instead: any method and path -> `200 OK`, body
  `<key> <port> <METHOD> <path>\\n`, `Connection: close`.
* UDP: every datagram is answered with `<key> <port>\\n`, from the address it was sent to.

Once every port is bound, the ready file is written (atomically) with the pid and the
ports; a port that cannot be bound ends the process with status 1 and the error on stderr.
SIGTERM and SIGINT stop it. Standard library only: it starts fast and runs anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REQUEST_LINE = re.compile(rb"^([A-Z]{3,10}) (\S+) HTTP/1\.[01]\r?\n?$")
IDLE_TIMEOUT = 30.0  # seconds a TCP client may stay silent


@dataclass(frozen=True)
class PortSpec:
    port: int
    proto: str  # TCP | UDP
    key: str  # who answers: a pod key, "node/NAME" or "world"
    http: bool = False

    @property
    def answer(self) -> bytes:
        return f"{self.key} {self.port}\n".encode()


async def _http(spec: PortSpec, method: str, path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    length = 0
    while True:
        line = await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT)
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length" and value.strip().isdigit():
            length = int(value.strip())
    if length:
        await asyncio.wait_for(reader.readexactly(min(length, 1 << 20)), IDLE_TIMEOUT)
    body = f"{spec.key} {spec.port} {method} {path}\n".encode()
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\nServer: ciliary-lab\r\n\r\n"
    ).encode()
    writer.write(head + (b"" if method == "HEAD" else body))
    await writer.drain()


def _tcp_handler(spec: PortSpec) -> Any:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = True
            while True:
                line = await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT)
                if not line:
                    break
                m = REQUEST_LINE.match(line) if first and spec.http else None
                first = False
                if m:
                    await _http(spec, m.group(1).decode(), m.group(2).decode("latin-1"), reader, writer)
                    break
                writer.write(spec.answer)
                await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    return handle


IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)


class _UDPEcho:
    """Answers every datagram from the address it was sent to (IP_PKTINFO), so a client of
    one of several local addresses gets its answer from the address it asked."""

    def __init__(self, spec: PortSpec, loop: asyncio.AbstractEventLoop) -> None:
        self.spec, self.loop = spec, loop
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        self.sock.setblocking(False)
        self.sock.bind(("0.0.0.0", spec.port))
        loop.add_reader(self.sock.fileno(), self._readable)

    def _readable(self) -> None:
        while True:
            try:
                _, ancdata, _, addr = self.sock.recvmsg(65535, socket.CMSG_SPACE(12))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # an ICMP error queued for an earlier answer: read on next time
                return
            cmsgs = [
                (socket.IPPROTO_IP, IP_PKTINFO, struct.pack("@i4s4s", 0, data[8:12], bytes(4)))
                for level, kind, data in ancdata if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= 12
            ]
            with contextlib.suppress(OSError):
                self.sock.sendmsg([self.spec.answer], cmsgs, 0, addr)

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


async def serve(ports: list[PortSpec], ready: Path | None, label: str) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    servers: list[asyncio.AbstractServer] = []
    udp: list[_UDPEcho] = []
    for spec in ports:
        try:
            if spec.proto == "TCP":
                servers.append(await asyncio.start_server(
                    _tcp_handler(spec), host="0.0.0.0", port=spec.port, reuse_address=True, backlog=1024,
                ))
            else:
                udp.append(_UDPEcho(spec, loop))
        except OSError as e:
            print(f"podserver {label}: cannot listen on {spec.port}/{spec.proto}: {e.strerror}", file=sys.stderr, flush=True)
            raise SystemExit(1) from None
    if ready is not None:
        tmp = ready.with_name(ready.name + ".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "label": label, "ports": [f"{p.port}/{p.proto}" for p in ports]}))
        tmp.rename(ready)
    print(f"podserver {label}: listening on {', '.join(f'{p.port}/{p.proto}' for p in ports)}", flush=True)
    await stop.wait()
    for s in servers:
        s.close()
    for u in udp:
        u.close()


def parse_spec(text: str) -> tuple[list[PortSpec], Path | None, str]:
    spec = json.loads(text)
    ports = []
    for p in spec.get("ports", []):
        proto = str(p.get("proto", "TCP")).upper()
        if proto not in ("TCP", "UDP"):
            raise ValueError(f"unsupported protocol {proto!r} (TCP or UDP)")
        ports.append(PortSpec(int(p["port"]), proto, str(p.get("key", "")), bool(p.get("http", False))))
    ready = spec.get("ready")
    return ports, Path(ready) if ready else None, str(spec.get("label", ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ciliary.datapath.podserver", description="Echo and HTTP servers on the given ports.")
    parser.add_argument("--spec", required=True, help="JSON: {label, ready, ports: [{port, proto, key, http}]}")
    parser.add_argument("--marker", default="", help="a token that marks this process as a lab's (ignored)")
    args = parser.parse_args(argv)
    try:
        ports, ready, label = parse_spec(args.spec)
    except (ValueError, KeyError, TypeError) as e:
        print(f"podserver: bad --spec: {e}", file=sys.stderr)
        return 2
    asyncio.run(serve(ports, ready, label))
    return 0


if __name__ == "__main__":
    sys.exit(main())
