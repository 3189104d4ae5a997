"""The last check of a test run (collected last by name): no datapath test left a network
namespace, a lab process, an interface or an nft table behind in this machine's root
namespace, whatever prefix it used. The datapath tests name everything with a prefix (a lab
`<prefix>-node-0`, `<prefix>-pod-3`, `<prefix>-fabric`, `<prefix>-world`; the netlink tests
`cnl<hex>-...`), each module checks its own prefix, and this catches what a crashed module
could not."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from datapath_helpers import requires_netns

pytestmark = requires_netns

LAB_NETNS = re.compile(r"^[a-z][a-z0-9]{0,5}-(node-\d+|pod-\d+|fabric|world)$")
NETLINK_NETNS = re.compile(r"^cnl[0-9a-f]{6}-")


def test_no_test_namespace_is_left() -> None:
    try:
        names = os.listdir("/run/netns")
    except FileNotFoundError:
        names = []
    left = [n for n in names if LAB_NETNS.match(n) or NETLINK_NETNS.match(n) or n.startswith("ciliary-skipcheck-")]
    assert not left, f"namespaces left behind: {left}"


def test_no_lab_process_is_left() -> None:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            continue
        if b"ciliary-lab=" in argv or b"ciliary.datapath.podserver" in argv:
            text = argv.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry}: {text[:120]}")
    assert not found, f"lab processes left behind: {found}"


def test_no_root_interface_or_table_is_left() -> None:
    res = subprocess.run(["ip", "-j", "link", "show", "type", "veth"], capture_output=True, text=True, check=True)
    veths = [str(link["ifname"]) for link in json.loads(res.stdout or "[]")
             if re.match(r"^[a-z][a-z0-9]{0,5}[hpfn]\d+$", str(link.get("ifname", "")))]
    assert not veths, f"lab interfaces left in the root namespace: {veths}"
    if shutil.which("nft"):
        res = subprocess.run(["nft", "-j", "list", "tables"], capture_output=True, text=True, check=False)
        rows = json.loads(res.stdout or "{}").get("nftables", []) if res.returncode == 0 else []
        tables = [r["table"]["name"] for r in rows if "table" in r and str(r["table"]["name"]).endswith("dp")]
        assert not tables, f"datapath tables left in the root namespace: {tables}"
