"""Plain helpers over Linux network namespaces, `ip` and marked processes.

Named namespaces are the files under /run/netns that `ip netns add` creates. Commands run
in one through `ip netns exec` (a child process) or, for the calling thread only, through
`in_netns` (libc `setns`, as Python 3.11 has no `os.setns`): a socket keeps the namespace
it was created in, so a thread can open netlink or raw sockets inside a node's namespace.

Long-running processes are spawned in their own process group (a new session), with their
output appended to a log file and a marker both in their environment (`CILIARY_MARKER`)
and, when the caller puts it there, in their argv: `find_marked` finds strays after a crash.

Contracts:
* Every function raises `NetnsError` (a RuntimeError) with the failing command and its
  stderr, never a bare CalledProcessError.
* `delete` and `kill_group` are idempotent: what is already gone is not an error.
* `in_netns` always switches the thread back, also when the body raises.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")
MARKER_ENV = "CILIARY_MARKER"


class NetnsError(RuntimeError):
    """A namespace operation failed; the message names the command and its error."""


def support_problem() -> str | None:
    """Why namespaces cannot be built here (None: they can, as far as cheap checks tell)."""
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN and CAP_SYS_ADMIN): run as root"
    if shutil.which("ip") is None:
        return "the `ip` command (Debian package iproute2) is not installed"
    if not Path("/proc/self/ns/net").exists():
        return "this kernel has no network namespaces (/proc/self/ns/net is missing)"
    return None


def _run(argv: Sequence[str], *, stdin: str | None = None, timeout: float = 30.0) -> str:
    try:
        res = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as e:
        raise NetnsError(f"{argv[0]}: not installed") from e
    except subprocess.TimeoutExpired as e:
        raise NetnsError(f"{' '.join(argv)}: no answer within {timeout:g} s") from e
    if res.returncode != 0:
        msg = _one_line(res.stderr or res.stdout) or f"exit status {res.returncode}"
        raise NetnsError(f"{' '.join(argv)}: {msg}")
    return res.stdout


def _one_line(text: str) -> str:
    """A tool's error output as one line ("Error: ...; Command failed -:6")."""
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def ip(*args: str, netns: str | None = None) -> str:
    """Run `ip [-n NETNS] ARGS...`; its stdout."""
    return _run(["ip", *(("-n", netns) if netns else ()), *args])


def ip_batch(lines: Sequence[str], netns: str | None = None) -> None:
    """Run `ip` commands (one per line, without the leading `ip`) in one process."""
    if lines:
        _run(["ip", *(("-n", netns) if netns else ()), "-batch", "-"], stdin="\n".join(lines) + "\n")


def ip_batches(batches: Mapping[str | None, Sequence[str]], timeout: float = 30.0, parallel: int = 16) -> None:
    """Run one `ip -batch` per namespace, up to `parallel` at once; raises NetnsError naming
    every namespace whose batch failed."""
    todo = [(ns, lines) for ns, lines in batches.items() if lines]
    running: list[tuple[str | None, subprocess.Popen[str]]] = []
    errors: list[str] = []

    def finish(ns: str | None, p: subprocess.Popen[str]) -> None:
        try:
            _, stderr = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            stderr = f"no answer within {timeout:g} s"
        if p.returncode != 0:
            errors.append(f"ip{f' -n {ns}' if ns else ''} -batch: {_one_line(stderr)}")

    for ns, lines in todo:
        if len(running) >= parallel:
            finish(*running.pop(0))
        argv = ["ip", *(("-n", ns) if ns else ()), "-batch", "-"]
        with tempfile.TemporaryFile("w+") as script:
            script.write("\n".join(lines) + "\n")
            script.seek(0)
            p = subprocess.Popen(argv, stdin=script, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        running.append((ns, p))
    for ns, p in running:
        finish(ns, p)
    if errors:
        raise NetnsError("; ".join(errors))


def ip_json(*args: str, netns: str | None = None) -> list[dict[str, Any]]:
    """`ip -j [-n NETNS] ARGS...` parsed."""
    text = _run(["ip", "-j", *(("-n", netns) if netns else ()), *args])
    value = json.loads(text) if text.strip() else []
    return list(value)


def links(netns: str | None = None) -> list[dict[str, Any]]:
    """`ip -j link show` of a namespace (None: the caller's)."""
    return ip_json("link", "show", netns=netns)


def addrs(netns: str | None = None) -> list[dict[str, Any]]:
    """`ip -j addr show` of a namespace (None: the caller's)."""
    return ip_json("addr", "show", netns=netns)


def list_netns(prefix: str = "") -> list[str]:
    """Named network namespaces whose name starts with `prefix`, sorted."""
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(prefix))


def exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def create(name: str) -> None:
    """`ip netns add NAME` and bring its loopback up."""
    ip("netns", "add", name)
    ip("link", "set", "lo", "up", netns=name)


def delete(name: str) -> bool:
    """`ip netns del NAME`; False when it was not there."""
    if not exists(name):
        return False
    try:
        ip("netns", "del", name)
    except NetnsError:
        if exists(name):
            raise
        return False
    return True


def run_in(
    name: str, argv: Sequence[str], *, stdin: str | None = None, timeout: float | None = None,
    capture: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command inside a namespace (`ip netns exec`); never raises on its exit status."""
    return subprocess.run(
        ["ip", "netns", "exec", name, *argv], input=stdin, timeout=timeout, check=False,
        capture_output=capture, text=True,
    )


_libc: ctypes.CDLL | None = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise NetnsError(f"setns: {os.strerror(errno)}")


@contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Switch the calling thread into namespace `name` for the body, then back."""
    try:
        target = os.open(NETNS_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NetnsError(f"no network namespace {name!r}") from None
    try:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(home)
    finally:
        os.close(target)


def write_sysctl(name: str, settings: Mapping[str, str]) -> None:
    """Write `net.*` sysctls inside a namespace (`net.ipv4.ip_forward` -> "1")."""
    with in_netns(name):
        for key, value in settings.items():
            path = Path("/proc/sys") / key.replace(".", "/")
            try:
                path.write_text(value + "\n")
            except OSError as e:
                raise NetnsError(f"sysctl {key}={value} in {name}: {e.strerror}") from None


def spawn(
    name: str | None, argv: Sequence[str], *, log: Path, marker: str,
    env: Mapping[str, str] | None = None,
) -> int:
    """Start a long-running command inside namespace `name` (None: here) in its own process
    group, output appended to `log`, `marker` in its environment; returns its pid (which is
    also its process group id: `ip netns exec` execs the command in place)."""
    full_env = {**os.environ, **(env or {}), MARKER_ENV: marker}
    cmd = ["ip", "netns", "exec", name, *argv] if name else list(argv)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        p = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=full_env,
            start_new_session=True, close_fds=True,
        )
    _children[p.pid] = p  # kept so that `alive` and `kill_group` reap it when it ends
    return p.pid


_children: dict[int, subprocess.Popen[bytes]] = {}


def _state(pid: int) -> str | None:
    """The process state letter from /proc (None: no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None:
        if child.poll() is not None:
            del _children[pid]
        return
    with suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    _reap(pid)
    state = _state(pid)
    return state is not None and state not in ("Z", "X")


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            if fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
                out.append(int(entry))
    return out


def kill_group(pgid: int, timeout: float = 2.0) -> bool:
    """SIGTERM a process group, SIGKILL what is left after `timeout`; False if it was gone."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        _reap(pgid)
        return False
    deadline = time.monotonic() + timeout
    while True:
        _reap(pgid)
        members = group_members(pgid)
        if not members:
            return True
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    for _ in range(200):
        _reap(pgid)
        if not group_members(pgid):
            break
        time.sleep(0.01)
    return True


def find_marked(marker: str) -> list[int]:
    """Live processes with `marker` as an argv element or as $CILIARY_MARKER (not this one)."""
    env_entry = f"{MARKER_ENV}={marker}".encode()
    token = marker.encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if (token in argv or env_entry in environ) and alive(int(entry)):
            found.append(int(entry))
    return sorted(found)


def processes_in(names: Sequence[str]) -> list[int]:
    """Live processes whose network namespace is one of the named ones."""
    inodes = set()
    for name in names:
        try:
            st = os.stat(NETNS_DIR / name)
        except FileNotFoundError:
            continue
        inodes.add((st.st_dev, st.st_ino))
    if not inodes:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if (st.st_dev, st.st_ino) in inodes and alive(int(entry)):
            found.append(int(entry))
    return sorted(found)


def pgid_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def kill_pid(pid: int, timeout: float = 2.0) -> None:
    """SIGTERM one process, SIGKILL it if it still runs after `timeout`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        if not alive(pid):
            return


def ancestors() -> set[int]:
    """This process and its parents (not to be killed when cleaning up)."""
    out, pid = set(), os.getpid()
    while pid > 1 and pid not in out:
        out.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return out


def nft_tables(netns: str | None = None) -> list[tuple[str, str]]:
    """(family, name) of the nftables tables in a namespace; [] without `nft`."""
    if shutil.which("nft") is None:
        return []
    argv = ["nft", "-j", "list", "tables"]
    res = run_in(netns, argv) if netns else subprocess.run(argv, capture_output=True, text=True, check=False)
    if res.returncode != 0 or not res.stdout.strip():
        return []
    rows = json.loads(res.stdout).get("nftables", [])
    return [(r["table"]["family"], r["table"]["name"]) for r in rows if "table" in r]


def nft_delete_table(family: str, name: str, netns: str | None = None) -> None:
    argv = ["nft", "delete", "table", family, name]
    res = run_in(netns, argv) if netns else subprocess.run(argv, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: {_one_line(res.stderr)}")


__all__ = [
    "CLONE_NEWNET", "MARKER_ENV", "NETNS_DIR", "NetnsError", "addrs", "alive", "ancestors", "create",
    "delete", "exists", "find_marked", "group_members", "in_netns", "ip", "ip_batch", "ip_batches",
    "ip_json", "kill_group", "kill_pid", "links", "list_netns", "nft_delete_table", "nft_tables",
    "pgid_of", "processes_in", "run_in", "spawn", "support_problem", "write_sysctl",
]
