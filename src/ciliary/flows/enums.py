"""Hubble flow enums (`api/v1/flow/flow.proto`) and the strings the hubble CLI prints for them.

Enum members carry the exact proto names, which are also the protojson spelling of the value
(`"verdict": "DROPPED"`). The tables at the end are the human strings of the datapath
(`pkg/monitor/api`) that `hubble observe -o compact` prints instead of the enum names.

Constants only: the tables are shared and must not be changed.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final


class FlowVerdict(IntEnum):
    """Hubble's flow.Verdict enum (the number a flow's `verdict` stands for)."""

    VERDICT_UNKNOWN = 0
    FORWARDED = 1
    DROPPED = 2
    ERROR = 3
    AUDIT = 4
    REDIRECTED = 5
    TRACED = 6
    TRANSLATED = 7


class FlowType(IntEnum):
    UNKNOWN_TYPE = 0
    L3_L4 = 1
    L7 = 2
    SOCK = 3


class AuthType(IntEnum):
    DISABLED = 0
    SPIRE = 1
    TEST_ALWAYS_FAIL = 2


class TraceObservationPoint(IntEnum):
    UNKNOWN_POINT = 0
    TO_PROXY = 1
    TO_HOST = 2
    TO_STACK = 3
    TO_OVERLAY = 4
    TO_ENDPOINT = 101
    FROM_ENDPOINT = 5
    FROM_PROXY = 6
    FROM_HOST = 7
    FROM_STACK = 8
    FROM_OVERLAY = 9
    FROM_NETWORK = 10
    TO_NETWORK = 11
    FROM_CRYPTO = 12
    TO_CRYPTO = 13


class TraceReason(IntEnum):
    TRACE_REASON_UNKNOWN = 0
    NEW = 1
    ESTABLISHED = 2
    REPLY = 3
    RELATED = 4
    REOPENED = 5
    SRV6_ENCAP = 6
    SRV6_DECAP = 7
    ENCRYPT_OVERLAY = 8


class IPVersion(IntEnum):
    IP_NOT_USED = 0
    IPv4 = 1
    IPv6 = 2


class TrafficDirection(IntEnum):
    TRAFFIC_DIRECTION_UNKNOWN = 0
    INGRESS = 1
    EGRESS = 2


class L7FlowType(IntEnum):
    UNKNOWN_L7_TYPE = 0
    REQUEST = 1
    RESPONSE = 2
    SAMPLE = 3


class SocketTranslationPoint(IntEnum):
    SOCK_XLATE_POINT_UNKNOWN = 0
    SOCK_XLATE_POINT_PRE_DIRECTION_FWD = 1
    SOCK_XLATE_POINT_POST_DIRECTION_FWD = 2
    SOCK_XLATE_POINT_PRE_DIRECTION_REV = 3
    SOCK_XLATE_POINT_POST_DIRECTION_REV = 4


class DebugCapturePoint(IntEnum):
    DBG_CAPTURE_POINT_UNKNOWN = 0
    DBG_CAPTURE_DELIVERY = 4
    DBG_CAPTURE_FROM_LB = 5
    DBG_CAPTURE_AFTER_V46 = 6
    DBG_CAPTURE_AFTER_V64 = 7
    DBG_CAPTURE_PROXY_PRE = 8
    DBG_CAPTURE_PROXY_POST = 9
    DBG_CAPTURE_SNAT_PRE = 10
    DBG_CAPTURE_SNAT_POST = 11


class LostEventSource(IntEnum):
    UNKNOWN_LOST_EVENT_SOURCE = 0
    PERF_EVENT_RING_BUFFER = 1
    OBSERVER_EVENTS_QUEUE = 2
    HUBBLE_RING_BUFFER = 3


class DropReason(IntEnum):
    DROP_REASON_UNKNOWN = 0
    INVALID_SOURCE_MAC = 130
    INVALID_DESTINATION_MAC = 131
    INVALID_SOURCE_IP = 132
    POLICY_DENIED = 133
    INVALID_PACKET_DROPPED = 134
    CT_TRUNCATED_OR_INVALID_HEADER = 135
    CT_MISSING_TCP_ACK_FLAG = 136
    CT_UNKNOWN_L4_PROTOCOL = 137
    CT_CANNOT_CREATE_ENTRY_FROM_PACKET = 138
    UNSUPPORTED_L3_PROTOCOL = 139
    MISSED_TAIL_CALL = 140
    ERROR_WRITING_TO_PACKET = 141
    UNKNOWN_L4_PROTOCOL = 142
    UNKNOWN_ICMPV4_CODE = 143
    UNKNOWN_ICMPV4_TYPE = 144
    UNKNOWN_ICMPV6_CODE = 145
    UNKNOWN_ICMPV6_TYPE = 146
    ERROR_RETRIEVING_TUNNEL_KEY = 147
    ERROR_RETRIEVING_TUNNEL_OPTIONS = 148
    INVALID_GENEVE_OPTION = 149
    UNKNOWN_L3_TARGET_ADDRESS = 150
    STALE_OR_UNROUTABLE_IP = 151
    NO_MATCHING_LOCAL_CONTAINER_FOUND = 152
    ERROR_WHILE_CORRECTING_L3_CHECKSUM = 153
    ERROR_WHILE_CORRECTING_L4_CHECKSUM = 154
    CT_MAP_INSERTION_FAILED = 155
    INVALID_IPV6_EXTENSION_HEADER = 156
    IP_FRAGMENTATION_NOT_SUPPORTED = 157
    SERVICE_BACKEND_NOT_FOUND = 158
    NO_TUNNEL_OR_ENCAPSULATION_ENDPOINT = 160
    FAILED_TO_INSERT_INTO_PROXYMAP = 161
    REACHED_EDT_RATE_LIMITING_DROP_HORIZON = 162
    UNKNOWN_CONNECTION_TRACKING_STATE = 163
    LOCAL_HOST_IS_UNREACHABLE = 164
    NO_CONFIGURATION_AVAILABLE_TO_PERFORM_POLICY_DECISION = 165
    UNSUPPORTED_L2_PROTOCOL = 166
    NO_MAPPING_FOR_NAT_MASQUERADE = 167
    UNSUPPORTED_PROTOCOL_FOR_NAT_MASQUERADE = 168
    FIB_LOOKUP_FAILED = 169
    ENCAPSULATION_TRAFFIC_IS_PROHIBITED = 170
    INVALID_IDENTITY = 171
    UNKNOWN_SENDER = 172
    NAT_NOT_NEEDED = 173
    IS_A_CLUSTERIP = 174
    FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND = 175
    FORBIDDEN_ICMPV6_MESSAGE = 176
    DENIED_BY_LB_SRC_RANGE_CHECK = 177
    SOCKET_LOOKUP_FAILED = 178
    SOCKET_ASSIGN_FAILED = 179
    PROXY_REDIRECTION_NOT_SUPPORTED_FOR_PROTOCOL = 180
    POLICY_DENY = 181
    VLAN_FILTERED = 182
    INVALID_VNI = 183
    INVALID_TC_BUFFER = 184
    NO_SID = 185
    MISSING_SRV6_STATE = 186
    NAT46 = 187
    NAT64 = 188
    AUTH_REQUIRED = 189
    CT_NO_MAP_FOUND = 190
    SNAT_NO_MAP_FOUND = 191
    INVALID_CLUSTER_ID = 192
    UNSUPPORTED_PROTOCOL_FOR_DSR_ENCAP = 193
    NO_EGRESS_GATEWAY = 194
    UNENCRYPTED_TRAFFIC = 195
    TTL_EXCEEDED = 196
    NO_NODE_ID = 197
    DROP_RATE_LIMITED = 198
    IGMP_HANDLED = 199
    IGMP_SUBSCRIBED = 200
    MULTICAST_HANDLED = 201
    DROP_HOST_NOT_READY = 202
    DROP_EP_NOT_READY = 203
    DROP_NO_EGRESS_IP = 204
    DROP_PUNT_PROXY = 205


# Monitor message types (`event_type.type`; cilium: pkg/monitor/api/types.go).
MESSAGE_TYPE_DROP: Final = 1
MESSAGE_TYPE_DEBUG: Final = 2
MESSAGE_TYPE_CAPTURE: Final = 3
MESSAGE_TYPE_TRACE: Final = 4
MESSAGE_TYPE_POLICY_VERDICT: Final = 5
MESSAGE_TYPE_REC_CAPTURE: Final = 6
MESSAGE_TYPE_TRACE_SOCK: Final = 7
MESSAGE_TYPE_ACCESS_LOG: Final = 129
MESSAGE_TYPE_AGENT: Final = 130

# `--type NAME` (monitorAPI.MessageTypeNames).
MESSAGE_TYPE_NAMES: Final[dict[str, int]] = {
    "drop": MESSAGE_TYPE_DROP,
    "debug": MESSAGE_TYPE_DEBUG,
    "capture": MESSAGE_TYPE_CAPTURE,
    "trace": MESSAGE_TYPE_TRACE,
    "policy-verdict": MESSAGE_TYPE_POLICY_VERDICT,
    "recorder": MESSAGE_TYPE_REC_CAPTURE,
    "trace-sock": MESSAGE_TYPE_TRACE_SOCK,
    "l7": MESSAGE_TYPE_ACCESS_LOG,
    "agent": MESSAGE_TYPE_AGENT,
}

# Trace observation points as the datapath numbers them (`event_type.sub_type` of trace
# events; monitorAPI.TraceObservationPoints). 0 is "to-endpoint" here, unlike the proto enum.
TRACE_POINT_NAMES: Final[dict[int, str]] = {
    0: "to-endpoint",
    1: "to-proxy",
    2: "to-host",
    3: "to-stack",
    4: "to-overlay",
    5: "from-endpoint",
    6: "from-proxy",
    7: "from-host",
    8: "from-stack",
    9: "from-overlay",
    10: "from-network",
    11: "to-network",
    12: "from-crypto",
    13: "to-crypto",
}

# Agent event sub-types accepted by `--type agent:NAME` (hubble cmd/observe agentEventSubtypes).
AGENT_EVENT_SUBTYPES: Final[dict[str, int]] = {
    "unspecified": 0,
    "message": 1,
    "agent-started": 2,
    "policy-updated": 5,
    "policy-deleted": 6,
    "endpoint-regenerate-success": 3,
    "endpoint-regenerate-failure": 4,
    "endpoint-created": 7,
    "endpoint-deleted": 8,
    "ipcache-upserted": 9,
    "ipcache-deleted": 10,
}

# Datapath drop strings (monitorAPI.DropReason), printed as the "type" of drop events.
DROP_REASON_STRINGS: Final[dict[int, str]] = {
    0: "Success",
    2: "Invalid packet",
    130: "Invalid source mac",
    131: "Invalid destination mac",
    132: "Invalid source ip",
    133: "Policy denied",
    134: "Invalid packet",
    135: "CT: Truncated or invalid header",
    136: "Fragmentation needed",
    137: "CT: Unknown L4 protocol",
    138: "CT: Can't create entry from packet",
    139: "Unsupported L3 protocol",
    140: "Missed tail call",
    141: "Error writing to packet",
    142: "Unknown L4 protocol",
    143: "Unknown ICMPv4 code",
    144: "Unknown ICMPv4 type",
    145: "Unknown ICMPv6 code",
    146: "Unknown ICMPv6 type",
    147: "Error retrieving tunnel key",
    150: "Unknown L3 target address",
    151: "Stale or unroutable IP",
    153: "Error while correcting L3 checksum",
    154: "Error while correcting L4 checksum",
    155: "CT: Map insertion failed",
    156: "Invalid IPv6 extension header",
    157: "IP fragmentation not supported",
    158: "Service backend not found",
    160: "No tunnel/encapsulation endpoint (datapath BUG!)",
    161: "NAT 46/64 not enabled",
    162: "Reached EDT rate-limiting drop horizon",
    163: "Unknown connection tracking state",
    164: "Local host is unreachable",
    165: "No configuration available to perform policy decision",
    166: "Unsupported L2 protocol",
    167: "No mapping for NAT masquerade",
    168: "Unsupported protocol for NAT masquerade",
    169: "FIB lookup failed",
    170: "Encapsulation traffic is prohibited",
    171: "Invalid identity",
    172: "Unknown sender",
    173: "NAT not needed",
    174: "Is a ClusterIP",
    175: "First logical datagram fragment not found",
    176: "Forbidden ICMPv6 message",
    177: "Denied by LB src range check",
    178: "Socket lookup failed",
    179: "Socket assign failed",
    180: "Proxy redirection not supported for protocol",
    181: "Policy denied by denylist",
    182: "VLAN traffic disallowed by VLAN filter",
    183: "Incorrect VNI from VTEP",
    184: "Failed to update or lookup TC buffer",
    185: "No SID was found for the IP address",
    186: "SRv6 state was removed during tail call",
    187: "L3 translation from IPv4 to IPv6 failed (NAT46)",
    188: "L3 translation from IPv6 to IPv4 failed (NAT64)",
    189: "Authentication required",
    190: "No conntrack map found",
    191: "No nat map found",
    192: "Invalid ClusterID",
    193: "Unsupported packet protocol for DSR encapsulation",
    194: "No egress gateway found",
    195: "Traffic is unencrypted",
    196: "TTL exceeded",
    197: "No node ID found",
    198: "Rate limited",
    199: "IGMP handled",
    200: "IGMP subscribed",
    201: "Multicast handled",
    202: "Host datapath not ready",
    203: "Endpoint policy program not available",
    204: "No Egress IP configured",
    205: "Punt to proxy",
}

# Policy-verdict match types (monitorAPI.PolicyMatchType.String()).
POLICY_MATCH_TYPE_NAMES: Final[dict[int, str]] = {
    0: "none",
    1: "L3-Only",
    2: "L3-L4",
    3: "L4-Only",
    4: "all",
    5: "L3-Proto",
    6: "Proto-Only",
}

# Reserved security identities (cilium: pkg/identity/numericidentity.go).
RESERVED_IDENTITY_NAMES: Final[dict[int, str]] = {
    0: "unknown",
    1: "host",
    2: "world",
    3: "unmanaged",
    4: "health",
    5: "init",
    6: "remote-node",
    7: "kube-apiserver",
    8: "ingress",
    9: "world-ipv4",
    10: "world-ipv6",
}
# `--identity NAME` accepts these (GetReservedID; "unknown" is not one of them).
RESERVED_IDENTITY_IDS: Final[dict[str, int]] = {
    name: num for num, name in RESERVED_IDENTITY_NAMES.items() if num != 0
}


def enum_name(enum: type[IntEnum], value: int) -> str:
    """The proto name of `value`, or the number as text (Go's String() on an unknown value)."""
    try:
        return enum(value).name
    except ValueError:
        return str(value)
