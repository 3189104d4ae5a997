"""`ciliary trace`: the offline successor of `cilium policy trace`, for ingress, egress and CIDR."""

from __future__ import annotations

from ciliary.policy.engine import PolicyEngine
from ciliary.policy.ports import PROTO_ICMP, PROTO_ICMPV6, PROTO_NUMBERS, icmp_type_number
from ciliary.verdict.decide import Flow, SideVerdict, Verdict, decide, resolve_peer


def parse_dport(text: str) -> tuple[int, int]:
    """`8080/TCP`, `53/udp`, `8080` (TCP) -> (protocol number, port)."""
    port_s, _, proto_s = text.partition("/")
    proto_s = (proto_s or "TCP").upper()
    if proto_s not in ("TCP", "UDP", "SCTP"):
        raise ValueError(f"unsupported protocol {proto_s!r} in {text!r}: use TCP, UDP or SCTP (ICMP: --icmp)")
    if not port_s.isdigit() or not 0 < int(port_s) <= 65535:
        raise ValueError(f"port must be a number from 1 to 65535, got {port_s!r}")
    return PROTO_NUMBERS[proto_s], int(port_s)


def parse_icmp(text: str) -> tuple[int, int]:
    """`8`, `EchoRequest`, `128/v6`, `EchoRequest/v6` -> (protocol number, ICMP type)."""
    type_s, _, fam = text.partition("/")
    v6 = fam.lower() in ("v6", "ipv6", "6")
    if fam and not v6 and fam.lower() not in ("v4", "ipv4", "4"):
        raise ValueError(f"unknown ICMP family {fam!r}: use v4 or v6")
    try:
        num = icmp_type_number("IPv6" if v6 else "IPv4", type_s)
    except KeyError:
        raise ValueError(f"unknown ICMP type {type_s!r}") from None
    if not 0 <= num <= 255:
        raise ValueError(f"ICMP type must be 0-255, got {num}")
    return (PROTO_ICMPV6 if v6 else PROTO_ICMP), num


def trace(engine: PolicyEngine, src: str, dst: str, proto: int, port: int) -> Verdict:
    return decide(engine, Flow(resolve_peer(engine, src), resolve_peer(engine, dst), proto, port))


def _side_text(v: Verdict, side: SideVerdict) -> list[str]:
    what = "Egress of the source" if side.direction == "egress" else "Ingress of the destination"
    if not side.applies:
        return [f"{what}: not evaluated ({side.reason})"]
    lines = [f"{what} {side.endpoint}:"]
    if side.policy is None:
        return [*lines, f"  {side.reason}"]
    rules = side.policy.rules
    if rules:
        lines.append(f"  Rules selecting it ({side.direction}):")
        for r in rules:
            kind = "deny" if r.deny else "allow"
            where = f"{r.origin.file}:{r.origin.line}" if r.origin.line else r.origin.file
            lines.append(f"    * {r.origin.ref} {r.origin.field} ({kind}; {where})")
            if r.not_evaluated:
                lines.append(f"      not evaluated: {', '.join(r.not_evaluated)}")
    else:
        lines.append(f"  Rules selecting it ({side.direction}): none")
    lines.append(f"  Enforcement: {side.reason}")
    if side.audit_mode:
        lines.append("  Policy audit mode: enabled (drops become AUDIT)")
    peer = side.peer_identity
    if peer is not None:
        lbl = ", ".join(peer.labels.to_strings()) or "-"
        lines.append(f"  Peer identity: {peer.id} ({lbl})")
    e = side.entry
    if e is not None:
        action = "deny" if e.deny else "allow"
        lines.append(f"  Matched policy-map entry: {e.key} -> {action} (match type {e.match_type})")
        for o in e.origins:
            where = f"{o.file}:{o.line}" if o.line else o.file
            lines.append(f"    from {o.ref} {o.field} ({where})")
        if not e.origins:
            d = side.as_dict()["matched_entry"]["synthetic"]
            lines.append(f"    synthetic: {d}")
    elif side.enforced:
        lines.append("  No policy-map entry matches" + (": default deny" if side.default_deny else ": allowed (no default deny)"))
    verdict = side.verdict + (f" ({side.drop_reason_desc})" if side.drop_reason_desc else "")
    if side.audited_drop_reason:
        verdict += f" (would be dropped: {side.audited_drop_reason})"
    lines.append(f"  Verdict: {verdict}")
    return lines


def render_trace(v: Verdict) -> str:
    src_id = f" (identity {v.src_identity.id})" if v.src_identity else ""
    dst_id = f" (identity {v.dst_identity.id})" if v.dst_identity else ""
    f = v.flow
    lines = [f"Tracing {f.src}{src_id} -> {f.dst}{dst_id} {v.as_dict()['port']}/{v.as_dict()['protocol']}", ""]
    lines += [*_side_text(v, v.egress), "", *_side_text(v, v.ingress), ""]
    final = v.verdict + (f" ({v.drop_reason_desc}, {v.traffic_direction})" if v.drop_reason_desc else "")
    lines.append(f"Final verdict: {final}")
    return "\n".join(lines)
