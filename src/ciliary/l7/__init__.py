"""Layer-7 matchers: HTTP (Envoy + Cilium filter), Kafka (Cilium's Kafka parser) and DNS
names/patterns (DNS proxy and `toFQDNs` selectors). Pure functions of the policy model and
a request; no I/O. See the module docstrings for the Cilium sources followed."""

from ciliary.l7.dns import (
    DNSMatcher,
    FQDNSelectorKey,
    dns_proxy_regex,
    fqdn,
    fqdn_identity_label,
    fqdn_selector_key,
    match_name_regex,
    match_pattern_regex,
)
from ciliary.l7.http import (
    HTTP_DENY_BODY,
    HTTP_DENY_STATUS,
    HeaderAction,
    HTTPDecision,
    HTTPPolicy,
    HTTPRequest,
    HTTPRule,
    LoggedHeader,
    grpc_request,
    http_policy,
)
from ciliary.l7.kafka import (
    KAFKA_DENY_ERROR_CODE,
    KAFKA_DENY_ERROR_NAME,
    KafkaDecision,
    KafkaPolicy,
    KafkaRequest,
    KafkaRule,
    kafka_api_key,
    kafka_api_key_name,
    kafka_request,
)

__all__ = [
    "HTTP_DENY_BODY",
    "HTTP_DENY_STATUS",
    "KAFKA_DENY_ERROR_CODE",
    "KAFKA_DENY_ERROR_NAME",
    "DNSMatcher",
    "FQDNSelectorKey",
    "HTTPDecision",
    "HTTPPolicy",
    "HTTPRequest",
    "HTTPRule",
    "HeaderAction",
    "KafkaDecision",
    "KafkaPolicy",
    "KafkaRequest",
    "KafkaRule",
    "LoggedHeader",
    "dns_proxy_regex",
    "fqdn",
    "fqdn_identity_label",
    "fqdn_selector_key",
    "grpc_request",
    "http_policy",
    "kafka_api_key",
    "kafka_api_key_name",
    "kafka_request",
    "match_name_regex",
    "match_pattern_regex",
]
