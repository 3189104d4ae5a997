"""`ciliary trace`: the offline successor of `cilium policy trace`, for ingress, egress and CIDR."""

from __future__ import annotations

from ciliary.policy.engine import PolicyEngine
from ciliary.policy.ports import PROTO_ICMP, PROTO_ICMPV6, PROTO_NUMBERS, icmp_type_number
from ciliary.verdict.decide import DNSObservation, resolve_peer
from ciliary.verdict.decider import Decider
from ciliary.verdict.types import DNSQuery, L7Request, L7Verdict, SideVerdict, Verdict


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


def parse_resolve(text: str) -> tuple[str, list[str]]:
    """`NAME=IP[,IP...]` -> (name, ips)."""
    import ipaddress

    name, sep, ips_s = text.partition("=")
    if not sep or not name or not ips_s:
        raise ValueError(f"expected NAME=IP[,IP...], got {text!r}")
    ips = []
    for ip in ips_s.split(","):
        try:
            ips.append(str(ipaddress.ip_address(ip.strip())))
        except ValueError:
            raise ValueError(f"not an IP address: {ip!r} in {text!r}") from None
    return name.strip(), ips


def parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"expected 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def build_request(
    *,
    http: tuple[str, str] | None = None,
    http_host: str | None = None,
    http_headers: list[str] | None = None,
    kafka_api_key_name: str | None = None,
    kafka_role: str | None = None,
    kafka_topics: list[str] | None = None,
    kafka_client_id: str | None = None,
    kafka_api_version: int | None = None,
    dns_query: str | None = None,
) -> L7Request | None:
    """The one L7 request a traced connection carries, from `ciliary trace` flags."""
    from ciliary.l7.http import HTTPRequest
    from ciliary.l7.kafka import KafkaRequest, kafka_api_key

    kinds = [http is not None, kafka_api_key_name is not None or kafka_role is not None or bool(kafka_topics), dns_query is not None]
    if sum(kinds) > 1:
        raise ValueError("give one kind of L7 request: --http, --kafka-*, or --dns-query")
    if http is not None:
        headers = tuple(parse_header(h) for h in http_headers or [])
        return HTTPRequest(http[0], http[1], http_host or "", headers)
    if http_host or http_headers:
        raise ValueError("--http-host and --http-header need --http METHOD PATH")
    if kinds[1]:
        if kafka_api_key_name is not None and kafka_role is not None:
            raise ValueError("give --kafka-api-key or --kafka-role, not both")
        if kafka_role is not None:
            if kafka_role.lower() not in ("produce", "consume"):
                raise ValueError(f"--kafka-role must be produce or consume, got {kafka_role!r}")
            key = 0 if kafka_role.lower() == "produce" else 1
        else:
            try:
                key = kafka_api_key(kafka_api_key_name or "produce")
            except (KeyError, ValueError):
                raise ValueError(f"unknown Kafka API key {kafka_api_key_name!r}") from None
        return KafkaRequest(key, kafka_api_version if kafka_api_version is not None else 0, kafka_client_id or "", tuple(kafka_topics or ()))
    if dns_query is not None:
        return DNSQuery(dns_query)
    return None


def trace(
    engine: PolicyEngine, src: str, dst: str, proto: int, port: int,
    request: L7Request | None = None, resolves: list[tuple[str, list[str]]] | None = None,
) -> tuple[Verdict, list[DNSObservation]]:
    """Replay the DNS answers (through the source's DNS policy), then decide the flow."""
    decider = Decider(engine)
    src_peer = resolve_peer(engine, src)
    observations = []
    for name, ips in resolves or []:
        if src_peer.endpoint is None:
            raise LookupError("--resolve needs a source endpoint (NS/POD)")
        observations.append(decider.observe_dns_answer(src_peer, name, ips))
    dst_peer = resolve_peer(engine, dst)
    d = decider.decide_connection(src_peer, dst_peer, proto, port)
    if request is not None:
        d = decider.decide_request(d, request)
    return d.verdict, observations


def _side_text(v: Verdict, side: SideVerdict) -> list[str]:
    what = "Egress of the source" if side.direction == "egress" else "Ingress of the destination"
    if not side.applies:
        return [f"{what}: not evaluated ({side.reason})"]
    lines = [f"{what} {side.endpoint}:"]
    if side.policy is None:
        return [*lines, f"  {side.reason}"]
    rules = side.rules
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
        action = "deny" if e.deny else ("allow, redirect to proxy" if e.redirect else "allow")
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
    if side.redirected:
        verdict += " to the L7 proxy"
    if side.l7 is not None:
        lines.append(f"  L7 ({side.l7.type}): {side.l7.verdict}{_l7_code(side.l7)}: {side.l7.reason}")
    if side.audited_drop_reason:
        verdict += f" (would be dropped: {side.audited_drop_reason})"
    lines.append(f"  Verdict: {verdict}")
    return lines


def _l7_code(l7: L7Verdict) -> str:
    if l7.http_status:
        return f" (HTTP {l7.http_status} Access denied)"
    if l7.kafka_error_code is not None:
        return f" (Kafka error {l7.kafka_error_code})"
    if l7.dns_rcode and l7.dns_rcode != "NOERROR":
        return f" ({l7.dns_rcode})"
    return ""


def render_dns(observations: list[DNSObservation]) -> str:
    lines = []
    for o in observations:
        lines.append(f"DNS {o.name} -> {', '.join(o.ips)} via {o.server}: {'learned' if o.learned else 'NOT learned'} ({o.reason})")
    return "\n".join(lines)


def render_trace(v: Verdict) -> str:
    src_id = f" (identity {v.src_identity.id})" if v.src_identity else ""
    dst_id = f" (identity {v.dst_identity.id})" if v.dst_identity else ""
    c = v.connection
    lines = [f"Tracing {c.src}{src_id} -> {c.dst}{dst_id} {v.as_dict()['port']}/{v.as_dict()['protocol']}", ""]
    lines += [*_side_text(v, v.egress), "", *_side_text(v, v.ingress), ""]
    final = v.verdict + (f" ({v.drop_reason_desc}, {v.traffic_direction})" if v.drop_reason_desc else "")
    lines.append(f"Final verdict: {final}")
    if v.l7 is not None:
        lines.append(f"L7 verdict ({v.l7.type}): {v.l7.verdict}{_l7_code(v.l7)}")
    return "\n".join(lines)
