"""The nftables skeleton of one node: one `inet` table, its sets, and the chains that look
them up in Cilium's order (datapath-findings §2 and Appendix A, routed topology).

Hooks (one table per node namespace):

* `pre` (prerouting, priority mangle): packets from a local pod's veth go through that pod's
  egress policy; packets to a local endpoint (a pod, or the node's own address) through its
  ingress policy;
* `out` (output, priority mangle): what the node itself sends (the host endpoint and
  host-network pods): the host's egress policy, then the destination pod's ingress.

Both start with the conntrack shortcut, so replies and established connections pass and
only a connection's first packet pays for the lookups. Verdict events go to NFLOG:

* group 1: `DROP <direction> <reason>` and `AUDIT <direction> <reason>` (181 POLICY_DENY,
  133 POLICY_DENIED), with the remote identity in the packet mark;
* group 2: `ALLOW <direction>`, once per connection, where the verdict is final: at the
  destination's node for a cluster destination, at the source's node for the world.

A connection an audit rule let through sets bit 1 of its conntrack mark, so it is reported
once, as AUDIT, not again as ALLOW.

Contracts: `skeleton()` is a pure function of its arguments; the text loads with `nft -f`
as one transaction (a `delete table` first when replacing, so a reload is atomic).
"""

from __future__ import annotations

from ciliary.datapath.compile import SETS, SHORT
from ciliary.policy.rules import EGRESS, INGRESS

NFLOG_DROPS = 1
NFLOG_ALLOWS = 2
AUDITED = 0x1  # ct mark bit: the connection was let through by audit mode
DENY_REASON = 181  # POLICY_DENY
DENIED_REASON = 133  # POLICY_DENIED

PORTS = "meta l4proto { tcp, udp, sctp }"


def _policy_chain(direction: str, world: int) -> list[str]:
    s = SHORT[direction]
    # Egress: the local endpoint is the source and the peer the destination; ingress the reverse.
    local, peer = ("saddr", "daddr") if direction == EGRESS else ("daddr", "saddr")
    lines = [
        f"chain {s}_policy {{",
        f"  ip {local} != @{s}_enforced return",
        f"  meta mark set {world}",
        f"  meta mark set ip {peer} map @ipcache_cidr",
        f"  meta mark set ip {peer} map @ipcache_ep",
    ]
    for verdict, action in (("deny", f"goto {s}_deny_drop"), ("allow", "return")):
        b = f"{s}_{verdict}"
        lines += [
            f"  {PORTS} ip {local} . meta mark . meta l4proto . th dport @{b} {action}",
            f"  {PORTS} ip {local} . meta mark . meta l4proto . th dport @{b}_range {action}",
            f"  {PORTS} ip {local} . meta l4proto . th dport @{b}_l4 {action}",
            f"  {PORTS} ip {local} . meta l4proto . th dport @{b}_l4_range {action}",
            f"  meta l4proto icmp ip {local} . meta mark . icmp type @{b}_icmp {action}",
            f"  meta l4proto icmp ip {local} . icmp type @{b}_icmp4 {action}",
            f"  ip {local} . meta mark @{b}_l3 {action}",
            f"  ip {local} @{b}_all {action}",
        ]
    lines += [f"  ip {local} != @{s}_default_deny return", f"  goto {s}_denied_drop", "}"]
    word = "egress" if direction == EGRESS else "ingress"
    for chain, reason in ((f"{s}_deny_drop", DENY_REASON), (f"{s}_denied_drop", DENIED_REASON)):
        lines += [
            f"chain {chain} {{",
            f'  ip {local} @{s}_audit ct mark set ct mark or {AUDITED} log group {NFLOG_DROPS} prefix "AUDIT {word} {reason} " return',
            f'  log group {NFLOG_DROPS} prefix "DROP {word} {reason} "',
            "  drop",
            "}",
        ]
    return lines


def skeleton(table: str, pod_ifaces: str, world: int, *, replace: bool = False) -> str:
    """The table of one node. `pod_ifaces`: the glob of the host side of pod veths."""
    not_audited = f"ct mark and {AUDITED} == 0"
    lines: list[str] = []
    if replace:
        lines += [f"table inet {table}", f"delete table inet {table}"]
    lines.append(f"table inet {table} {{")
    lines += [f"  {s.nft}" for s in SETS]
    for d in (INGRESS, EGRESS):
        lines += [f"  {ln}" for ln in _policy_chain(d, world)]
    lines += [
        "  chain pre {",
        "    type filter hook prerouting priority mangle; policy accept;",
        "    ct state established,related accept",
        "    ct state invalid drop",
        f'    iifname "{pod_ifaces}" jump eg_policy',
        "    ip daddr @local_eps jump in_policy",
        f'    ip daddr @local_eps {not_audited} log group {NFLOG_ALLOWS} prefix "ALLOW ingress "',
        f'    iifname "{pod_ifaces}" ip daddr != @cluster_eps {not_audited} log group {NFLOG_ALLOWS} prefix "ALLOW egress "',
        "    meta mark set 0",
        "  }",
        "  chain out {",
        "    type filter hook output priority mangle; policy accept;",
        '    oifname "lo" accept',
        "    ct state established,related accept",
        "    ct state invalid drop",
        "    jump eg_policy",
        "    ip daddr @local_eps jump in_policy",
        f'    ip daddr @local_eps {not_audited} log group {NFLOG_ALLOWS} prefix "ALLOW ingress "',
        f'    ip daddr != @cluster_eps {not_audited} log group {NFLOG_ALLOWS} prefix "ALLOW egress "',
        "    meta mark set 0",
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"
