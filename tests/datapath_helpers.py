"""What the datapath tests share: when to skip, unique prefixes, and the leak check.

* `requires_netns`: a skip marker (module: `pytestmark = requires_netns`) with the reason
  when this machine cannot build namespaces: not root, `ip netns add` fails, or `nft` is
  missing (`make sysdeps` installs nftables, iproute2 and conntrack as root on Debian).
* `unique_prefix()`: a lab prefix (`[a-z][a-z0-9]{0,5}`) that no namespace uses yet, so
  tests, and engineers running them at the same time, never share names.
* `assert_nothing_left(prefix)`: no namespace, root-namespace interface, root nft table or
  live process (argv or $CILIARY_MARKER carrying `ciliary-lab=<prefix>`) is left. It reads
  the system directly (`ip`, `nft`, /proc), not through the code under test.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import string
import subprocess
from pathlib import Path

import pytest


@functools.cache
def netns_skip_reason() -> str | None:
    """Why the datapath tests cannot run here (None: they can)."""
    if os.geteuid() != 0:
        return "datapath tests need root (network namespaces need CAP_NET_ADMIN and CAP_SYS_ADMIN)"
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"datapath tests need `{tool}` (Debian package {package}; `make sysdeps` installs it as root)"
    name = f"ciliary-skipcheck-{os.getpid()}"
    res = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        return f"datapath tests need network namespaces: `ip netns add` failed: {res.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    return None


requires_netns = pytest.mark.skipif(netns_skip_reason() is not None, reason=netns_skip_reason() or "")

_ALPHABET = string.ascii_lowercase + string.digits


def unique_prefix(first: str = "t") -> str:
    """A fresh lab prefix: `first` (a letter) and random characters, 6 in all, unused."""
    for _ in range(100):
        prefix = first + "".join(secrets.choice(_ALPHABET) for _ in range(6 - len(first)))
        if not leftovers(prefix)["netns"]:
            return prefix
    raise RuntimeError("no unused lab prefix found")


@pytest.fixture
def lab_prefix() -> str:
    """A unique prefix for one test (tests still call `assert_nothing_left` themselves)."""
    return unique_prefix()


def _marker(prefix: str) -> str:
    return f"ciliary-lab={prefix}"


def _marked_processes(prefix: str) -> list[str]:
    token = _marker(prefix).encode()
    env = f"CILIARY_MARKER={_marker(prefix)}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            continue
        if token in argv or env in environ:
            found.append(f"{entry}: {b' '.join(argv).decode(errors='replace')[:120]}")
    return found


def leftovers(prefix: str) -> dict[str, list[str]]:
    """Everything named with `prefix` that exists: namespaces, root interfaces, root nft
    tables, marked processes."""
    try:
        netns = sorted(n for n in os.listdir("/run/netns") if n.startswith(f"{prefix}-"))
    except FileNotFoundError:
        netns = []
    links = json.loads(subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True, check=True).stdout or "[]")
    ifaces = sorted(str(link["ifname"]) for link in links if str(link.get("ifname", "")).startswith(prefix))
    tables: list[str] = []
    if shutil.which("nft"):
        res = subprocess.run(["nft", "-j", "list", "tables"], capture_output=True, text=True, check=False)
        rows = json.loads(res.stdout or "{}").get("nftables", []) if res.returncode == 0 else []
        tables = sorted(f"{r['table']['family']} {r['table']['name']}" for r in rows
                        if "table" in r and str(r["table"]["name"]).startswith(prefix))
    return {"netns": netns, "interfaces": ifaces, "nft_tables": tables, "processes": _marked_processes(prefix)}


def assert_nothing_left(prefix: str) -> None:
    left = {k: v for k, v in leftovers(prefix).items() if v}
    assert not left, f"lab {prefix!r} left things behind: {left}"
