"""A cluster snapshot's pods as network namespaces: Cilium's routed veth topology, on one host.

`plan(cluster, prefix, world_addresses)` decides what to build (pure, deterministic names);
`up(state, run_dir)` builds it and starts a server on every declared port; `down(prefix,
run_dir)` removes it, from the state file and by scanning for the prefix, so it also
cleans up after a crash. Topology (datapath-findings §1 B, no bridge):

* `<prefix>-node-<i>`: one per node (sorted by name), its IPv4 addresses on `lo` as /32,
  ip_forward on, a /32 route per local pod (`src` the node's first address) and a default
  route to the fabric. Host-network pods live here (their servers run here).
* `<prefix>-pod-<j>`: one per endpoint pod (not host-network, not terminated) with an IPv4
  address: the pod side of a veth (`<prefix>p<j>`) with the pod's /32s, a default route via
  169.254.1.1 and a permanent neighbour entry for it (the MAC of the node side `<prefix>h<j>`).
* `<prefix>-fabric`: routes between nodes over point-to-point /31 links from 169.254.100.0/22
  (`<prefix>f<i>` on the fabric, `<prefix>n<i>` in the node) to every node and pod address;
  its default route goes to `<prefix>-world` (link `<prefix>fw` / `<prefix>w`, 169.254.99.0/31).
* `<prefix>-world`: the addresses outside the cluster that policies name, on `lo`, with a
  server on the world ports. It routes only cluster addresses back, so an address nobody
  holds answers "unreachable" at once.

Only IPv4: IPv6 addresses are skipped and said so in the notes. Nothing is created in the
root namespace but the /run/netns entries; processes carry the marker `ciliary-lab=<prefix>`
in argv and environment. State is JSON at `<run_dir>/state.json` (default run dir
`/run/ciliary/<prefix>`), written before anything is built and again with the pids.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ciliary.cluster.model import Cluster, Pod
from ciliary.datapath import netns

PREFIX_RE = re.compile(r"[a-z][a-z0-9]{0,5}")
DEFAULT_PREFIX = "cil"
RUN_ROOT = Path("/run/ciliary")
GATEWAY = "169.254.1.1"
FABRIC_NET = ipaddress.IPv4Network("169.254.100.0/22")
WORLD_LINK = ("169.254.99.0", "169.254.99.1")  # (fabric side, world side)
FALLBACK_NODE_NET = ipaddress.IPv4Network("169.254.200.0/24")  # nodes without an IPv4 address
RESERVED = (ipaddress.IPv4Network("169.254.1.1/32"), FABRIC_NET, ipaddress.IPv4Network("169.254.99.0/31"), FALLBACK_NODE_NET)
ANY_WORLD_ADDRESS = "203.0.113.1"  # TEST-NET-3: stands for "anywhere" (0.0.0.0/0)
METADATA_ADDRESS = "169.254.169.254"
DEFAULT_WORLD_PORTS: tuple[tuple[int, str], ...] = ((80, "TCP"), (443, "TCP"), (53, "UDP"))
SERVER_WAIT = 20.0  # seconds for every server to listen


class LabError(RuntimeError):
    """Building, reading or removing a lab failed; the message says what and what to do."""


class Port(msgspec.Struct, frozen=True):
    port: int
    proto: str  # TCP | UDP
    key: str  # who answers: pod key, node/NAME or world
    http: bool = False


class Link(msgspec.Struct, frozen=True):
    """A veth between the fabric and a node (or the world): names and /31 addresses."""

    outer_if: str
    inner_if: str
    outer_addr: str
    inner_addr: str


class NodeNs(msgspec.Struct, frozen=True):
    name: str
    netns: str
    ips: tuple[str, ...]
    link: Link


class PodNs(msgspec.Struct, frozen=True):
    key: str
    netns: str
    node: str
    node_netns: str
    ips: tuple[str, ...]
    host_if: str
    pod_if: str
    host_mac: str
    pod_mac: str
    ports: tuple[Port, ...] = ()


class HostPod(msgspec.Struct, frozen=True):
    key: str
    node: str
    netns: str  # its node's
    ports: tuple[Port, ...] = ()


class World(msgspec.Struct, frozen=True):
    netns: str
    addresses: tuple[str, ...]
    link: Link
    ports: tuple[Port, ...] = ()


class Server(msgspec.Struct, frozen=True):
    netns: str
    label: str
    ports: tuple[Port, ...]


class LabState(msgspec.Struct):
    prefix: str
    fabric: str
    nodes: list[NodeNs]
    pods: list[PodNs]
    host_pods: list[HostPod]
    world: World
    servers: list[Server]
    skipped: list[tuple[str, str]] = []  # (pod key, why it has no namespace)
    notes: list[str] = []
    pids: dict[str, int] = {}  # server netns -> pid (= its process group)
    run_dir: str = ""
    created: float = 0.0
    version: int = 1

    @property
    def marker(self) -> str:
        return marker(self.prefix)

    def namespaces(self) -> list[str]:
        return [*(n.netns for n in self.nodes), *(p.netns for p in self.pods), self.fabric, self.world.netns]

    def _find(self, target: str) -> PodNs | HostPod | NodeNs | None:
        if target.startswith("node/"):
            return next((n for n in self.nodes if n.name == target[5:]), None)
        pod = next((p for p in self.pods if p.key == target), None)
        return pod or next((p for p in self.host_pods if p.key == target), None)

    def netns_for(self, target: str) -> str:
        """The namespace of `NS/POD`, `node/NAME`, `world` or `fabric`."""
        if target in ("world", "fabric"):
            return self.world.netns if target == "world" else self.fabric
        found = self._find(target)
        if found is None:
            raise LabError(self._unknown(target))
        return found.netns

    def address_of(self, target: str) -> str:
        """The IPv4 address of `NS/POD` (a host-network pod: its node's), `node/NAME`, `world`
        or an address given as such."""
        if target == "world":
            if not self.world.addresses:
                raise LabError("the world holds no address: pass --world-address or --policies")
            return self.world.addresses[0]
        if "/" not in target:
            try:
                return str(ipaddress.IPv4Address(target))
            except ValueError:
                raise LabError(f"{target!r} is neither NS/POD, node/NAME nor an IPv4 address") from None
        found = self._find(target)
        if found is None:
            raise LabError(self._unknown(target))
        if isinstance(found, HostPod):
            found = next(n for n in self.nodes if n.name == found.node)
        return found.ips[0]

    def _unknown(self, target: str) -> str:
        why = dict(self.skipped).get(target)
        if why:
            return f"{target} has no namespace in lab {self.prefix!r}: {why}"
        return f"no pod or node {target!r} in lab {self.prefix!r} (pods are NS/POD, nodes node/NAME)"


def marker(prefix: str) -> str:
    """The token a lab's processes carry in argv and environment."""
    return f"ciliary-lab={prefix}"


def check_prefix(prefix: str) -> str:
    if not PREFIX_RE.fullmatch(prefix):
        raise LabError(f"bad prefix {prefix!r}: 1-6 characters, a lower-case letter then letters or digits")
    return prefix


def default_run_dir(prefix: str) -> Path:
    return RUN_ROOT / prefix


def _v4(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).version == 4
    except ValueError:
        return False


def _reserved(ip: str) -> bool:
    a = ipaddress.IPv4Address(ip)
    return any(a in net for net in RESERVED)


def _usable(a: ipaddress.IPv4Address) -> bool:
    """A unicast address a namespace can hold and route (not the lab's own ranges)."""
    return not (a.is_multicast or a.is_loopback or a.is_unspecified or a.is_reserved
                or a in ipaddress.IPv4Network("0.0.0.0/8") or _reserved(str(a)))


def _mac(kind: int, j: int) -> str:
    return f"02:{kind:02x}:00:{(j >> 16) & 0xFF:02x}:{(j >> 8) & 0xFF:02x}:{j & 0xFF:02x}"


def _pod_ports(pod: Pod, key: str, notes: list[str]) -> tuple[Port, ...]:
    seen: dict[tuple[int, str], Port] = {}
    for cp in pod.container_ports or pod.named_ports:
        proto = cp.protocol.upper()
        if proto not in ("TCP", "UDP"):
            notes.append(f"{pod.key}: {cp.port}/{proto} has no server (TCP and UDP only)")
            continue
        old = seen.get((cp.port, proto))
        seen[(cp.port, proto)] = Port(cp.port, proto, key, cp.name.startswith("http") or (old is not None and old.http))
    return tuple(sorted(seen.values(), key=lambda p: (p.port, p.proto)))


def plan(
    cluster: Cluster, prefix: str = DEFAULT_PREFIX, world_addresses: Iterable[str] = (),
    world_ports: Iterable[tuple[int, str]] = DEFAULT_WORLD_PORTS,
) -> LabState:
    """What `up` builds for this snapshot: pure, and the same input gives the same names."""
    check_prefix(prefix)
    notes: list[str] = []
    skipped: list[tuple[str, str]] = []
    v6 = 0
    taken: dict[str, str] = {}
    nodes: list[NodeNs] = []
    cluster_nodes = sorted(cluster.nodes, key=lambda n: n.name)
    names = [n.name for n in cluster_nodes] or ["lab-node"]
    if not cluster_nodes:
        notes.append("the snapshot has no nodes: every pod is on one node, lab-node")
    if len(names) > FABRIC_NET.num_addresses // 2:
        raise LabError(f"{len(names)} nodes: the lab's fabric has room for {FABRIC_NET.num_addresses // 2}")
    for i, name in enumerate(names):
        ips_all = cluster_nodes[i].ips if cluster_nodes else ()
        v6 += sum(1 for ip in ips_all if not _v4(ip))
        ips = [ip for ip in dict.fromkeys(ips_all) if _v4(ip) and ip not in taken]
        if not ips:
            ips = [str(FALLBACK_NODE_NET[i + 1])]
            notes.append(f"node {name} has no IPv4 address: it uses {ips[0]}, which policies do not know")
        for ip in ips:
            taken[ip] = f"node/{name}"
        link = Link(f"{prefix}f{i}", f"{prefix}n{i}", str(FABRIC_NET[2 * i]), str(FABRIC_NET[2 * i + 1]))
        nodes.append(NodeNs(name, f"{prefix}-node-{i}", tuple(ips), link))
    by_name = {n.name: n for n in nodes}
    pods: list[PodNs] = []
    host_pods: list[HostPod] = []
    for pod in sorted(cluster.pods, key=lambda p: p.key):
        if pod.terminated:
            skipped.append((pod.key, f"terminated (phase {pod.phase}): no endpoint"))
            continue
        node = by_name.get(pod.node_name or "")
        if node is None:
            node = nodes[0]
            where = f"on node {pod.node_name}, which is not in the snapshot" if pod.node_name else "without a node"
            notes.append(f"{pod.key} is {where}: placed on {node.name}")
        if pod.host_network:
            host_pods.append(HostPod(pod.key, node.name, node.netns, _pod_ports(pod, pod.key, notes)))
            continue
        v6 += sum(1 for ip in pod.ips if not _v4(ip))
        ips = [ip for ip in dict.fromkeys(pod.ips) if _v4(ip)]
        clash = [ip for ip in ips if ip in taken or _reserved(ip)]
        if not ips or clash:
            why = f"{clash[0]} is already {taken.get(clash[0], 'reserved by the lab')}" if clash else (
                "only IPv6 addresses (the lab is IPv4 only)" if pod.ips else "no IP address")
            skipped.append((pod.key, why))
            continue
        for ip in ips:
            taken[ip] = pod.key
        j = len(pods)
        pods.append(PodNs(
            pod.key, f"{prefix}-pod-{j}", node.name, node.netns, tuple(ips), f"{prefix}h{j}", f"{prefix}p{j}",
            _mac(0xC1, j), _mac(0xC2, j), _pod_ports(pod, pod.key, notes),
        ))
    if v6:
        notes.append(f"{v6} IPv6 address(es) skipped: the lab is IPv4 only")
    addresses: list[str] = []
    for a in dict.fromkeys(world_addresses):
        if not _v4(a):
            notes.append(f"world address {a} skipped: the lab is IPv4 only")
        elif a in taken or _reserved(a):
            notes.append(f"world address {a} skipped: it is {taken.get(a, 'reserved by the lab')}")
        else:
            addresses.append(str(ipaddress.IPv4Address(a)))
    wports = tuple(sorted({Port(p, pr.upper(), "world", pr.upper() == "TCP") for p, pr in world_ports}, key=lambda p: (p.port, p.proto)))
    world = World(f"{prefix}-world", tuple(addresses), Link(f"{prefix}fw", f"{prefix}w", *WORLD_LINK), wports)
    servers = [Server(p.netns, p.key, p.ports) for p in pods if p.ports]
    for n in nodes:
        mine: dict[tuple[int, str], Port] = {}
        for hp in host_pods:
            if hp.node == n.name:
                for port in hp.ports:
                    other = mine.setdefault((port.port, port.proto), port)
                    if other.key != port.key:
                        notes.append(f"{port.port}/{port.proto} on node {n.name}: served for {other.key}, not also {port.key}")
        if mine:
            servers.append(Server(n.netns, f"node/{n.name}", tuple(sorted(mine.values(), key=lambda p: (p.port, p.proto)))))
    if addresses and wports:
        servers.append(Server(world.netns, "world", wports))
    return LabState(prefix, f"{prefix}-fabric", nodes, pods, host_pods, world, servers, skipped, notes)


def pick_world_addresses(prefixes: Iterable[str], taken: Iterable[str] = ()) -> list[str]:
    """One address per IPv4 prefix that policies name, for the world namespace to hold: a
    host address inside it, outside the more specific prefixes of the set (their excepts)
    and not in `taken`; 203.0.113.1 for a /0; plus 169.254.169.254 if a prefix holds it."""
    nets = sorted({ipaddress.IPv4Network(p, strict=False) for p in prefixes if _v4(p.split("/")[0])}, key=str)
    used = set(taken)
    any_world = ipaddress.IPv4Address(ANY_WORLD_ADDRESS)
    out: dict[str, None] = {}
    for net in nets:
        if ipaddress.IPv4Address(METADATA_ADDRESS) in net and net.prefixlen > 0:
            out[METADATA_ADDRESS] = None
        if net.prefixlen <= 8 and any_world in net:  # 0.0.0.0/0 and the like: "anywhere"
            out[ANY_WORLD_ADDRESS] = None
            continue
        inner = [o for o in nets if o != net and o.subnet_of(net)]
        size = net.num_addresses
        offsets = [1 if size > 2 else 0, *(k * size // 16 + 1 for k in range(1, 16) if size >= 64), size - 2 if size > 2 else size - 1]
        for off in offsets:
            a = net[off]
            text = str(a)
            if text not in used and _usable(a) and not any(a in o for o in inner):
                out[text] = None
                break
    return list(out)


def policy_world(engine: Any) -> tuple[list[str], list[tuple[int, str]]]:
    """World addresses and ports for a policy engine: one address per CIDR its rules name
    (`pick_world_addresses`), the exact TCP/UDP ports they name (at most 64) plus the defaults."""
    taken = [ip for p in engine.cluster.pods for ip in p.ips] + [ip for n in engine.cluster.nodes for ip in n.ips]
    addresses = pick_world_addresses(engine.repository.cidr_prefixes(), taken)
    ports: dict[tuple[int, str], None] = dict.fromkeys(DEFAULT_WORLD_PORTS)
    for e in engine.repository.entries:
        for spec in e.ports or ():
            for pp in spec.prefixes:
                if pp.proto in (6, 17) and pp.port and len(ports) < 64:
                    ports[(pp.port, "TCP" if pp.proto == 6 else "UDP")] = None
    return addresses, list(ports)


# -- building -------------------------------------------------------------------------


def _state_path(run_dir: Path) -> Path:
    return run_dir / "state.json"


def save_state(state: LabState, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / "state.json.tmp"
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(state), indent=2))
    tmp.rename(_state_path(run_dir))


def load_state(prefix: str, run_dir: Path | str | None = None) -> LabState:
    """The state of a running lab; LabError when there is none (or it is unreadable)."""
    path = _state_path(Path(run_dir) if run_dir else default_run_dir(check_prefix(prefix)))
    try:
        state = msgspec.json.decode(path.read_bytes(), type=LabState)
    except FileNotFoundError:
        raise LabError(f"no lab with prefix {prefix!r}: {path} does not exist (ciliary lab up)") from None
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise LabError(f"{path}: unreadable lab state ({e}); `ciliary lab down --prefix {prefix}` removes the lab") from None
    if state.prefix != prefix:
        raise LabError(f"{path} is the state of lab {state.prefix!r}, not {prefix!r}")
    return state


def _batches(state: LabState) -> list[dict[str | None, list[str]]]:
    """The `ip -batch` lines per namespace, in the phases that must follow each other."""
    by_node = {n.name: n for n in state.nodes}
    create: dict[str | None, list[str]] = {None: [f"netns add {ns}" for ns in state.namespaces()]}
    links: dict[str | None, list[str]] = {}
    for n in state.nodes:
        lines = ["link set lo up", *(f"addr add {ip}/32 dev lo" for ip in n.ips)]
        lines += [
            f"link add {n.link.inner_if} type veth peer name {n.link.outer_if} netns {state.fabric}",
            f"addr add {n.link.inner_addr}/31 dev {n.link.inner_if}", f"link set {n.link.inner_if} up",
        ]
        for p in state.pods:
            if p.node == n.name:
                lines += [
                    f"link add {p.host_if} address {p.host_mac} type veth peer name {p.pod_if} address {p.pod_mac} netns {p.netns}",
                    f"link set {p.host_if} up",
                ]
        links[n.netns] = lines
    w = state.world.link
    fabric = ["link set lo up"]
    for n in state.nodes:
        fabric += [f"addr add {n.link.outer_addr}/31 dev {n.link.outer_if}", f"link set {n.link.outer_if} up"]
    fabric += [
        f"link add {w.outer_if} type veth peer name {w.inner_if} netns {state.world.netns}",
        f"addr add {w.outer_addr}/31 dev {w.outer_if}", f"link set {w.outer_if} up",
    ]
    for n in state.nodes:
        for ip in [*n.ips, *(ip for p in state.pods if p.node == n.name for ip in p.ips)]:
            fabric.append(f"route add {ip}/32 via {n.link.inner_addr} dev {n.link.outer_if}")
    fabric.append(f"route add default via {w.inner_addr} dev {w.outer_if}")
    middle: dict[str | None, list[str]] = {state.fabric: fabric}
    for p in state.pods:
        middle[p.netns] = [
            "link set lo up", f"link set {p.pod_if} up", *(f"addr add {ip}/32 dev {p.pod_if}" for ip in p.ips),
            f"route add {GATEWAY} dev {p.pod_if} scope link",
            f"route add default via {GATEWAY} dev {p.pod_if} src {p.ips[0]}",
            f"neigh replace {GATEWAY} lladdr {p.host_mac} dev {p.pod_if} nud permanent",
        ]
    world = [
        "link set lo up", f"addr add {w.inner_addr}/31 dev {w.inner_if}", f"link set {w.inner_if} up",
        *(f"addr add {a}/32 dev lo" for a in state.world.addresses),
        f"route add {FABRIC_NET} via {w.outer_addr} dev {w.inner_if}",
        *(f"route add {ip}/32 via {w.outer_addr} dev {w.inner_if}" for n in state.nodes for ip in n.ips),
        *(f"route add {ip}/32 via {w.outer_addr} dev {w.inner_if}" for p in state.pods for ip in p.ips),
    ]
    last: dict[str | None, list[str]] = {state.world.netns: world}
    for n in state.nodes:
        last[n.netns] = [
            *(f"route add {ip}/32 dev {p.host_if} src {by_node[p.node].ips[0]}" for p in state.pods if p.node == n.name for ip in p.ips),
            f"route add default via {n.link.outer_addr} dev {n.link.inner_if} src {n.ips[0]}",
        ]
    return [create, links, middle, last]


def _start_servers(state: LabState, run_dir: Path) -> None:
    import json

    ready: dict[str, Path] = {}
    for s in state.servers:
        ready[s.netns] = run_dir / f"{s.netns}.ready.json"
        ready[s.netns].unlink(missing_ok=True)
        spec = {"label": s.label, "ready": str(ready[s.netns]), "ports": [msgspec.to_builtins(p) for p in s.ports]}
        argv = [sys.executable, "-m", "ciliary.datapath.podserver", "--marker", state.marker, "--spec", json.dumps(spec)]
        state.pids[s.netns] = netns.spawn(s.netns, argv, log=run_dir / f"{s.netns}.log", marker=state.marker)
    save_state(state, run_dir)
    deadline = time.monotonic() + SERVER_WAIT
    waiting = dict(ready)
    while waiting:
        for ns, path in list(waiting.items()):
            if path.exists():
                del waiting[ns]
            elif not netns.alive(state.pids[ns]):
                log = (run_dir / f"{ns}.log").read_text(errors="replace").strip().splitlines()
                raise LabError(f"the server in {ns} exited: {log[-1] if log else 'no output'}")
        if waiting and time.monotonic() > deadline:
            raise LabError(f"servers not listening after {SERVER_WAIT:g} s in: {', '.join(sorted(waiting))}")
        time.sleep(0.02)


def up(state: LabState, run_dir: Path | str | None = None) -> None:
    """Build the planned lab and start its servers; on failure remove everything it built and
    raise LabError. Refuses when anything with the prefix exists already."""
    problem = netns.support_problem()
    if problem:
        raise LabError(problem)
    existing = netns.list_netns(f"{state.prefix}-")
    if existing:
        raise LabError(f"a lab with prefix {state.prefix!r} exists already ({', '.join(existing[:4])}): "
                       f"`ciliary lab down --prefix {state.prefix}` first, or choose another --prefix")
    rd = Path(run_dir) if run_dir else default_run_dir(state.prefix)
    state.run_dir, state.created = str(rd), time.time()
    save_state(state, rd)
    try:
        for phase in _batches(state):
            netns.ip_batches(phase)
        for ns in [*(n.netns for n in state.nodes), state.fabric, state.world.netns]:
            netns.write_sysctl(ns, {"net.ipv4.ip_forward": "1"})
        _start_servers(state, rd)
    except BaseException as e:
        try:
            down(state.prefix, rd)
        except Exception as cleanup:  # keep the first error; say the cleanup failed too
            e.add_note(f"cleanup failed as well: {cleanup}")
        if not isinstance(e, Exception):
            raise
        if isinstance(e, LabError):
            raise LabError(f"{e} (everything built for lab {state.prefix!r} was removed)") from e
        raise LabError(f"building lab {state.prefix!r} failed: {e} (everything built was removed)") from e


# -- teardown and status --------------------------------------------------------------


@dataclass
class DownReport:
    prefix: str
    killed: list[int] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def nothing(self) -> bool:
        return not (self.killed or self.netns or self.links or self.tables or self.files)

    def as_dict(self) -> dict[str, Any]:
        return {"prefix": self.prefix, "removed_anything": not self.nothing, "killed": self.killed,
                "netns": self.netns, "links": self.links, "tables": self.tables, "files": self.files}


def _root_links(prefix: str) -> list[str]:
    pattern = re.compile(rf"{re.escape(prefix)}(?:[hpfn]\d+|fw|w)")
    names = (str(link.get("ifname", "")).split("@")[0] for link in netns.links())
    return sorted(n for n in names if pattern.fullmatch(n))


def down(prefix: str, run_dir: Path | str | None = None) -> DownReport:
    """Remove the lab: its processes (marked, or inside its namespaces), namespaces, stray
    root interfaces and nft tables named with the prefix, and its run files. Idempotent."""
    check_prefix(prefix)
    rd = Path(run_dir) if run_dir else default_run_dir(prefix)
    report = DownReport(prefix)
    names = netns.list_netns(f"{prefix}-")
    spare = netns.ancestors()  # never this process or its parents, even if started in the lab
    for pid in sorted((set(netns.find_marked(marker(prefix))) | set(netns.processes_in(names))) - spare):
        if netns.pgid_of(pid) == pid:
            netns.kill_group(pid)  # our servers, and commands `ip netns exec` started in the lab
        else:
            netns.kill_pid(pid)
        report.killed.append(pid)
    if names:
        with contextlib.suppress(netns.NetnsError):
            netns.ip_batch([f"netns del {n}" for n in names])
        for _ in range(50):  # a namespace whose `ip -n` batch still runs may resist a moment
            left = netns.list_netns(f"{prefix}-")
            if not left:
                break
            for n in left:
                with contextlib.suppress(netns.NetnsError):
                    netns.delete(n)
            time.sleep(0.02)
        report.netns = names
    for link in _root_links(prefix):
        netns.ip("link", "del", link)
        report.links.append(link)
    for family, table in netns.nft_tables():
        if table == prefix or table.startswith((f"{prefix}-", f"{prefix}_")):
            netns.nft_delete_table(family, table)
            report.tables.append(f"{family} {table}")
    if rd.is_dir():
        for f in sorted(rd.iterdir()):
            if f.name.startswith(("state.json", f"{prefix}-")):
                f.unlink(missing_ok=True)
                report.files.append(str(f))
        try:
            rd.rmdir()
            if rd.parent == RUN_ROOT:
                RUN_ROOT.rmdir()
        except OSError:
            pass
    left = netns.list_netns(f"{prefix}-")
    if left:
        raise LabError(f"could not remove {', '.join(left)}")
    return report


@dataclass
class LabStatus:
    prefix: str
    run_dir: str
    state: LabState | None
    present: list[str]  # namespaces with the prefix that exist
    missing: list[str]  # namespaces of the state that do not
    servers: list[dict[str, Any]]  # netns, label, pid, alive, ports
    strays: list[int]  # marked processes the state does not record

    @property
    def ok(self) -> bool:
        return self.state is not None and not self.missing and all(s["alive"] for s in self.servers)

    def as_dict(self) -> dict[str, Any]:
        s = self.state
        return {
            "prefix": self.prefix, "run_dir": self.run_dir, "up": self.ok, "state_file": s is not None,
            "netns_present": self.present, "netns_missing": self.missing, "servers": self.servers,
            "stray_processes": self.strays, "notes": s.notes if s else [],
            "skipped": [{"pod": k, "reason": r} for k, r in s.skipped] if s else [],
            "nodes": [msgspec.to_builtins(n) for n in s.nodes] if s else [],
            "pods": [msgspec.to_builtins(p) for p in s.pods] if s else [],
            "host_network_pods": [msgspec.to_builtins(p) for p in s.host_pods] if s else [],
            "world": msgspec.to_builtins(s.world) if s else None,
            "fabric": s.fabric if s else None,
        }


def status(prefix: str, run_dir: Path | str | None = None) -> LabStatus:
    """What exists of the lab: its state, namespaces, servers (alive or not) and strays."""
    check_prefix(prefix)
    rd = Path(run_dir) if run_dir else default_run_dir(prefix)
    try:
        state: LabState | None = load_state(prefix, rd)
    except LabError:
        state = None
    present = netns.list_netns(f"{prefix}-")
    missing = [ns for ns in state.namespaces() if ns not in present] if state else []
    servers = []
    for s in state.servers if state else []:
        pid = state.pids.get(s.netns) if state else None
        servers.append({"netns": s.netns, "label": s.label, "pid": pid, "alive": bool(pid and netns.alive(pid)),
                        "ports": [f"{p.port}/{p.proto}" for p in s.ports]})
    recorded = set(state.pids.values()) if state else set()
    strays = [p for p in netns.find_marked(marker(prefix)) if p not in recorded]
    return LabStatus(prefix, str(rd), state, present, missing, servers, strays)
