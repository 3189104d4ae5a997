"""Layer-7 matchers: HTTP (Envoy + Cilium filter), Kafka (Cilium's Kafka parser) and DNS
names/patterns (DNS proxy and `toFQDNs` selectors). Pure functions of the policy model and
a request; no I/O. See the module docstrings for the Cilium sources followed.

Layer 5: imports only `ciliary.model`, `ciliary.identity` and the root utilities. The names
below are re-exported lazily (`__getattr__`): importing the package loads no matcher.
"""

import importlib
from typing import Any

# Submodules load on first use: `trace` without an L7 request never needs HTTP or Kafka.
_LAZY: dict[str, str] = {
    "DNSMatcher": "ciliary.l7.dns",
    "FQDNSelectorIndex": "ciliary.l7.dns",
    "FQDNSelectorKey": "ciliary.l7.dns",
    "dns_proxy_regex": "ciliary.l7.dns",
    "fqdn": "ciliary.l7.dns",
    "fqdn_identity_label": "ciliary.l7.dns",
    "fqdn_selector_key": "ciliary.l7.dns",
    "match_name_regex": "ciliary.l7.dns",
    "match_pattern_regex": "ciliary.l7.dns",
    "HTTP_DENY_BODY": "ciliary.l7.http",
    "HTTP_DENY_STATUS": "ciliary.l7.http",
    "HeaderAction": "ciliary.l7.http",
    "HTTPDecision": "ciliary.l7.http",
    "HTTPPolicy": "ciliary.l7.http",
    "HTTPRequest": "ciliary.l7.http",
    "HTTPRule": "ciliary.l7.http",
    "LoggedHeader": "ciliary.l7.http",
    "grpc_request": "ciliary.l7.http",
    "http_policy": "ciliary.l7.http",
    "KAFKA_DENY_ERROR_CODE": "ciliary.l7.kafka",
    "KAFKA_DENY_ERROR_NAME": "ciliary.l7.kafka",
    "KafkaDecision": "ciliary.l7.kafka",
    "KafkaPolicy": "ciliary.l7.kafka",
    "KafkaRequest": "ciliary.l7.kafka",
    "KafkaRule": "ciliary.l7.kafka",
    "kafka_api_key": "ciliary.l7.kafka",
    "kafka_api_key_name": "ciliary.l7.kafka",
    "kafka_request": "ciliary.l7.kafka",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ciliary.l7' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "HTTP_DENY_BODY",
    "HTTP_DENY_STATUS",
    "KAFKA_DENY_ERROR_CODE",
    "KAFKA_DENY_ERROR_NAME",
    "DNSMatcher",
    "FQDNSelectorIndex",
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
