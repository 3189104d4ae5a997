"""Value-level primitives of policy validation: checks of one string or number that need
no policy object, in the wording of the Go code they mirror, and Cilium's fixed vocabularies.

* Kubernetes apimachinery (util/validation, api/validate/content): DNS-1123 labels and
  subdomains, qualified names (label and annotation keys), label values, port names.
* Go: strconv.ParseUint(s, 0, 16) (`go_parse_uint16`), netip.ParsePrefix and the API
  server's sloppy CIDR parsing (`parse_prefix`), regexp's RE2 syntax (`re2_error`), the
  CRD's printable-characters pattern (`printable`).
* Cilium: pkg/iana service names, labels.GetExtendedKeyFrom (`cilium_extended_key`), the
  CRD's DNS name/pattern structure, and the enums of entities, protocols, ICMP type names
  and Kafka API keys and roles.

Contracts:
* Every function is pure: it returns messages (or the reason a value is bad) and never
  raises on bad input; where in an object a message belongs is the walker's business
  (`ciliary.model.validate`, `ciliary.model.validate_k8s`).
* `parse_prefix` and `re2_error` are memoised (`lru_cache`); the `ParsedPrefix` results are
  frozen and shared.
* The tables here are the single source for other layers (`ICMP_TYPES` for
  `ciliary.policy.ports`, `KAFKA_API_KEYS` and `KAFKA_ROLES` for `ciliary.l7.kafka`):
  constants, never to be changed.
"""

from __future__ import annotations

import ipaddress
import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import re2

# --------------------------------------------------------------------------------------
# Cilium's fixed vocabularies (CRD enums and Go tables)
# --------------------------------------------------------------------------------------

# entity.go: the CRD enum of Entity (world-ipv4/world-ipv6 exist in Go but not in the enum).
ENTITIES = (
    "all", "world", "cluster", "host", "init", "ingress", "unmanaged",
    "remote-node", "health", "none", "kube-apiserver",
)  # fmt: skip
# l4.go / the CRD enum of PortProtocol.protocol. The extended IP protocols need
# --enable-extended-ip-protocols and have no transport ports.
PROTOCOLS = ("TCP", "UDP", "SCTP", "ANY")
EXTENDED_PROTOCOLS = ("VRRP", "IGMP", "GRE", "IPIP", "IPV6", "ESP", "AH")

# icmp.go: icmpIpv4TypeNameToCode / icmpIpv6TypeNameToCode.
ICMP_TYPES: dict[str, dict[str, int]] = {
    "IPv4": {
        "EchoReply": 0, "DestinationUnreachable": 3, "Redirect": 5, "Echo": 8,
        "EchoRequest": 8, "RouterAdvertisement": 9, "RouterSelection": 10, "TimeExceeded": 11,
        "ParameterProblem": 12, "Timestamp": 13, "TimestampReply": 14, "Photuris": 40,
        "ExtendedEchoRequest": 42, "ExtendedEchoReply": 43,
    },
    "IPv6": {
        "DestinationUnreachable": 1, "PacketTooBig": 2, "TimeExceeded": 3,
        "ParameterProblem": 4, "EchoRequest": 128, "EchoReply": 129,
        "MulticastListenerQuery": 130, "MulticastListenerReport": 131,
        "MulticastListenerDone": 132, "RouterSolicitation": 133, "RouterAdvertisement": 134,
        "NeighborSolicitation": 135, "NeighborAdvertisement": 136, "RedirectMessage": 137,
        "RouterRenumbering": 138, "ICMPNodeInformationQuery": 139,
        "ICMPNodeInformationResponse": 140, "InverseNeighborDiscoverySolicitation": 141,
        "InverseNeighborDiscoveryAdvertisement": 142, "HomeAgentAddressDiscoveryRequest": 144,
        "HomeAgentAddressDiscoveryReply": 145, "MobilePrefixSolicitation": 146,
        "MobilePrefixAdvertisement": 147, "DuplicateAddressRequestCodeSuffix": 157,
        "DuplicateAddressConfirmationCodeSuffix": 158, "ExtendedEchoRequest": 160,
        "ExtendedEchoReply": 161,
    },
}  # fmt: skip

# kafka/kafka.go: APIKeyMap (matched case-insensitively) and the roles.
KAFKA_API_KEYS = frozenset((
    "produce", "fetch", "offsets", "metadata", "leaderandisr", "stopreplica",
    "updatemetadata", "controlledshutdown", "offsetcommit", "offsetfetch", "findcoordinator",
    "joingroup", "heartbeat", "leavegroup", "syncgroup", "describegroups", "listgroups",
    "saslhandshake", "apiversions", "createtopics", "deletetopics", "deleterecords",
    "initproducerid", "offsetforleaderepoch", "addpartitionstotxn", "addoffsetstotxn", "endtxn",
    "writetxnmarkers", "txnoffsetcommit", "describeacls", "createacls", "deleteacls",
    "describeconfigs", "alterconfigs",
))  # fmt: skip
KAFKA_ROLES = ("produce", "consume")  # the CRD enum is case-sensitive

# Kubernetes apimachinery validation (util/validation, api/validate/content).
_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_RE = re.compile(_DNS1123_LABEL)
_DNS1123_SUBDOMAIN_RE = re.compile(rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*")
_QUALIFIED_NAME_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE_RE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)
_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_QUALIFIED_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', "
    "'_' or '.', and must start and end with an alphanumeric character"
)

DNS_NAME_CHARS = frozenset("-abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")
DNS_PATTERN_CHARS = DNS_NAME_CHARS | {"*"}
_ALNUM_DASH = frozenset("-abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_DIGITS = frozenset("0123456789")
_ASCII_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


# --------------------------------------------------------------------------------------
# Primitive checks (pure functions, return messages)
# --------------------------------------------------------------------------------------


def q(value: str, limit: int = 80) -> str:
    """A value quoted for a message, shortened when long (Go's %q, roughly)."""
    if len(value) > limit:
        value = value[: limit - 3] + "..."
    return json.dumps(value, ensure_ascii=False)


def max_len_error(n: int) -> str:
    return f"must be no more than {n} characters"


def _bounded_pattern_errors(
    value: str, limit: int, pattern: re.Pattern[str], msg: str
) -> list[str]:
    # apimachinery's shape for these: the length first, the pattern only if the length is ok.
    if len(value) > limit:
        return [max_len_error(limit)]
    if not pattern.fullmatch(value):
        return [msg]
    return []


def dns1123_subdomain_errors(value: str) -> list[str]:
    """apimachinery IsDNS1123Subdomain."""
    return _bounded_pattern_errors(value, 253, _DNS1123_SUBDOMAIN_RE, _DNS1123_SUBDOMAIN_MSG)


def dns1123_label_errors(value: str) -> list[str]:
    """apimachinery IsDNS1123Label."""
    return _bounded_pattern_errors(value, 63, _DNS1123_LABEL_RE, _DNS1123_LABEL_MSG)


def qualified_name_errors(value: str) -> list[str]:
    """apimachinery IsQualifiedName: `[prefix/]name`, prefix a DNS subdomain, name ≤63."""
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return ["prefix part must be non-empty"]
        errs = [f"prefix part {m}" for m in dns1123_subdomain_errors(prefix)]
        if errs:
            return errs
    else:
        return [
            f"a qualified name {_QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix "
            "and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        return ["name part must be non-empty"]
    if len(name) > 63:
        return [f"name part {max_len_error(63)}"]
    if not _QUALIFIED_NAME_RE.fullmatch(name):
        return [f"name part {_QUALIFIED_NAME_MSG}"]
    return []


def label_value_errors(value: str) -> list[str]:
    """apimachinery IsValidLabelValue."""
    return _bounded_pattern_errors(value, 63, _LABEL_VALUE_RE, _LABEL_VALUE_MSG)


def is_iana_svc_name(name: str) -> bool:
    """Cilium's pkg/iana IsSvcName (RFC 6335 5.1; case-insensitive, unlike Kubernetes').

    Equivalent to `^([a-zA-Z0-9]-?)*[a-zA-Z](-?[a-zA-Z0-9])*$` with 1-15 characters.
    """
    return (
        0 < len(name) <= 15
        and all(c in _ALNUM_DASH for c in name)
        and any(c in _ASCII_LETTERS for c in name)
        and name[0] != "-"
        and name[-1] != "-"
        and "--" not in name
    )


def k8s_port_name_errors(port: str) -> list[str]:
    """apimachinery IsValidPortName (IANA_SVC_NAME, lower case only)."""
    errs = []
    if len(port) > 15:
        errs.append(max_len_error(15))
    if not port or any(c not in "-abcdefghijklmnopqrstuvwxyz0123456789" for c in port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not any("a" <= c <= "z" for c in port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def _go_underscore_ok(s: str) -> bool:
    # strconv.underscoreOK: '_' only between digits or after a base prefix.
    saw = "^"
    i = 0
    if s[:1] in ("+", "-"):
        s = s[1:]
    hexa = False
    if len(s) >= 2 and s[0] == "0" and s[1].lower() in "box":
        i, saw, hexa = 2, "0", s[1].lower() == "x"
    while i < len(s):
        c = s[i]
        if c in _DIGITS or (hexa and c.lower() in "abcdef"):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
        i += 1
    return saw != "_"


def go_parse_uint16(s: str) -> tuple[int, str | None]:
    """strconv.ParseUint(s, 0, 16): (value, None) or (0, "invalid syntax"/"value out of range")."""
    if not s:
        return 0, "invalid syntax"
    s0, base = s, 10
    if s[0] == "0":
        if len(s) >= 3 and s[1].lower() == "b":
            base, s = 2, s[2:]
        elif len(s) >= 3 and s[1].lower() == "o":
            base, s = 8, s[2:]
        elif len(s) >= 3 and s[1].lower() == "x":
            base, s = 16, s[2:]
        else:
            base, s = 8, s[1:]
    n = 0
    underscores = False
    for c in s:
        if c == "_":
            underscores = True
            continue
        if c in _DIGITS:
            d = ord(c) - 48
        elif c in _ASCII_LETTERS:
            d = ord(c.lower()) - 87
        else:
            return 0, "invalid syntax"
        if d >= base:
            return 0, "invalid syntax"
        n = n * base + d
        if n > 0xFFFF:
            return 0xFFFF, "value out of range"
    if underscores and not _go_underscore_ok(s0):
        return 0, "invalid syntax"
    return n, None


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class ParsedPrefix:
    addr: Address  # as written (host bits may be set)
    bits: int
    network: Network  # masked
    leading_zeros: bool = False  # only ever True with sloppy=True


def _looks_like_netmask(bits: str) -> bool:
    return bits.count(".") == 3 and all(p and set(p) <= _DIGITS for p in bits.split("."))


@lru_cache(maxsize=8192)
def parse_prefix(text: str, sloppy: bool = False) -> ParsedPrefix | str:
    """Go's netip.ParsePrefix (sloppy: k8s ParseCIDRSloppy, leading zeros allowed).

    Returns the prefix or the reason it is not one. Cached: clusters repeat CIDRs a lot.
    """
    slash = text.rfind("/")
    if slash < 0:
        try:
            ipaddress.ip_address(text)
        except ValueError:
            return "not an IP prefix (expected an address and a prefix length, e.g. 10.0.0.0/8)"
        return "missing prefix length: a single address needs /32 (IPv4) or /128 (IPv6)"
    addr_text, bits_text = text[:slash], text[slash + 1 :]
    if "%" in addr_text:
        return "IPv6 zones cannot be present in a prefix"
    leading = False
    try:
        addr: Address = ipaddress.ip_address(addr_text)
    except ValueError:
        octets = addr_text.split(".")
        if not (
            sloppy
            and len(octets) == 4
            and all(o and set(o) <= _DIGITS and len(o) <= 3 for o in octets)
        ):
            return f"invalid IP address {q(addr_text)}"
        try:
            addr = ipaddress.IPv4Address(".".join(str(int(o)) for o in octets))
        except ValueError:
            return f"invalid IP address {q(addr_text)}"
        leading = True
    if _looks_like_netmask(bits_text):
        try:
            mask = int(ipaddress.IPv4Address(bits_text))
        except ValueError:
            return f"bad prefix length {q(bits_text)}"
        inverted = ~mask & 0xFFFFFFFF
        if inverted & (inverted + 1):
            return f"CIDR cannot specify non-contiguous mask {text}"
        return "netmask notation is not supported: use a prefix length (e.g. /24)"
    if not bits_text or not all(c in _DIGITS for c in bits_text) or len(bits_text) > 3:
        return f"bad prefix length {q(bits_text)}"
    if len(bits_text) > 1 and bits_text[0] == "0":
        if not sloppy:
            return f"bad prefix length {q(bits_text)}: leading zeros"
        leading = True
    bits = int(bits_text)
    if bits > addr.max_prefixlen:
        return (
            f"prefix length {bits} out of range (IPv{addr.version} allows 0-{addr.max_prefixlen})"
        )
    network = ipaddress.ip_network((addr, bits), strict=False)
    return ParsedPrefix(addr, bits, network, leading)


def is_4in6(addr: Address) -> bool:
    """An IPv4-mapped IPv6 address (::ffff:a.b.c.d), which the API server's CIDRs refuse."""
    return isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # errors are reported, not logged to stderr


@lru_cache(maxsize=4096)
def re2_error(pattern: str) -> str | None:
    """Why Go's regexp (RE2 syntax) would reject `pattern`, or None. Cached."""
    try:
        re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as e:
        detail = e.args[0] if e.args else ""
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        return str(detail) or "invalid regular expression"
    except (TypeError, ValueError) as e:
        return str(e)
    return None


_GO_OTHER = frozenset(("Cc", "Cf", "Co", "Cs"))  # Go's unicode.C has no Cn (unassigned)


def printable(value: str) -> bool:
    r"""The CRD's `^\PC*$` (Go RE2): no control, format, private-use or surrogate chars."""
    return not any(unicodedata.category(c) in _GO_OTHER for c in value)


def cilium_extended_key(key: str, source_prefix: str | None = None) -> str:
    """The key as Cilium validates it: labels.GetExtendedKeyFrom (`k8s:app` -> `k8s.app`,
    `app` -> `any.app`, `$host` -> `reserved.host`), or `<prefix>.<key>` when a fixed source
    is given (cidrGroupSelector)."""
    if source_prefix is not None:
        return f"{source_prefix}.{key}"
    if key.startswith("$"):
        src, rest = "reserved", key[1:]
    elif ":" in key:
        src, rest = key.split(":", 1)
    elif key.startswith("reserved."):
        src, rest = "reserved", key[len("reserved.") :]
    else:
        src, rest = "", key
    rest = rest.split("=", 1)[0]
    return f"{src or 'any'}.{rest}"


def dns_structure_ok(value: str, chars: frozenset[str]) -> bool:
    # The CRD pattern ^([-a-zA-Z0-9_(*)]+[.]?)+$ without its backtracking: non-empty,
    # allowed characters, no leading dot, no empty label.
    return bool(value) and value[0] != "." and ".." not in value and all(c in chars for c in value)


def dns_structure_msg(pattern: bool) -> str:
    return (
        "must be a DNS name"
        + (" pattern" if pattern else "")
        + (" (non-empty, no leading '.', no empty labels)")
    )
