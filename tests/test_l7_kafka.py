"""Kafka L7 matching (semantics §6.4; Cilium pkg/kafka/policy.go, proxylib/kafka/parser.go)."""

from __future__ import annotations

import pytest

from ciliary.l7 import (
    KAFKA_DENY_ERROR_CODE,
    KAFKA_DENY_ERROR_NAME,
    KafkaPolicy,
    KafkaRequest,
    KafkaRule,
    kafka_api_key,
    kafka_api_key_name,
    kafka_request,
)
from ciliary.l7.kafka import (
    CONSUME_ROLE_API_KEYS,
    KAFKA_API_KEY_NUMBERS,
    PRODUCE_ROLE_API_KEYS,
    TOPIC_API_KEYS,
)
from ciliary.model.cilium import PortRuleKafka
from ciliary.model.values import KAFKA_API_KEYS


def krule(**kw: object) -> PortRuleKafka:
    return PortRuleKafka.model_validate(kw)


def kpolicy(*rules: PortRuleKafka) -> KafkaPolicy:
    return KafkaPolicy(rules)


def ok(
    p: KafkaPolicy,
    key: int | str,
    version: int = 5,
    client: str = "c",
    topics: tuple[str, ...] = (),
) -> bool:
    return p.check(kafka_request(key, version, client, topics)).allowed


# --------------------------------------------------------------------------------------
# API keys and roles
# --------------------------------------------------------------------------------------


def test_api_key_table_matches_cilium_and_validation() -> None:
    assert set(KAFKA_API_KEY_NUMBERS) == KAFKA_API_KEYS
    assert KAFKA_API_KEY_NUMBERS["produce"] == 0
    assert KAFKA_API_KEY_NUMBERS["fetch"] == 1
    assert KAFKA_API_KEY_NUMBERS["offsets"] == 2
    assert KAFKA_API_KEY_NUMBERS["metadata"] == 3
    assert KAFKA_API_KEY_NUMBERS["offsetcommit"] == 8
    assert KAFKA_API_KEY_NUMBERS["findcoordinator"] == 10
    assert KAFKA_API_KEY_NUMBERS["apiversions"] == 18
    assert KAFKA_API_KEY_NUMBERS["createtopics"] == 19
    assert KAFKA_API_KEY_NUMBERS["alterconfigs"] == 33
    assert len(KAFKA_API_KEY_NUMBERS) == 34


def test_api_key_names_are_case_insensitive() -> None:
    assert kafka_api_key("Produce") == 0
    assert kafka_api_key("APIVERSIONS") == 18
    assert kafka_api_key(7) == 7
    with pytest.raises(ValueError):
        kafka_api_key("createtopic")  # Cilium's name is "createtopics"
    assert kafka_api_key_name(3) == "metadata"
    assert kafka_api_key_name(37) == "37"  # ApiKeyToString: no name


def test_role_expansion_exactly_as_cilium() -> None:
    assert {0, 3, 18} == PRODUCE_ROLE_API_KEYS
    assert {1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 18} == CONSUME_ROLE_API_KEYS
    assert KafkaRule.from_model(krule(role="produce")).api_keys == PRODUCE_ROLE_API_KEYS
    assert KafkaRule.from_model(krule(role="Consume")).api_keys == CONSUME_ROLE_API_KEYS


@pytest.mark.parametrize("key", range(40))
@pytest.mark.parametrize(
    ("role", "keys"),
    [("produce", frozenset({0, 3, 18})), ("consume", CONSUME_ROLE_API_KEYS)],
    ids=["produce", "consume"],
)
def test_role_allows_only_its_keys(role: str, keys: frozenset[int], key: int) -> None:
    p = kpolicy(krule(role=role))
    assert ok(p, key) == (key in keys)


def test_api_key_rule() -> None:
    p = kpolicy(krule(apiKey="HeartBeat"))
    assert ok(p, "heartbeat")
    assert not ok(p, "fetch")


def test_no_key_constraint_allows_every_key() -> None:
    p = kpolicy(krule(clientID="c"))
    assert all(ok(p, k) for k in range(40))


# --------------------------------------------------------------------------------------
# apiVersion, clientID
# --------------------------------------------------------------------------------------


def test_api_version() -> None:
    p = kpolicy(krule(apiKey="produce", apiVersion="3"))
    assert ok(p, "produce", 3)
    assert not ok(p, "produce", 4)
    assert KafkaRule.from_model(krule(apiVersion="+7")).api_version == 7
    assert KafkaRule.from_model(krule()).api_version == -1


def test_client_id_exact_and_case_sensitive() -> None:
    p = kpolicy(krule(clientID="order-service"))
    assert ok(p, "produce", 5, "order-service")
    assert not ok(p, "produce", 5, "Order-Service")
    assert not ok(p, "produce", 5, "order-service-2")


def test_version_0_requests_have_no_client_id() -> None:
    # pkg/kafka/request.go extractClientID: "0 version has no client ID".
    p = kpolicy(krule(clientID="order-service"))
    assert not ok(p, "produce", 0, "order-service")
    assert ok(kpolicy(krule(role="produce")), "produce", 0, "anything")


# --------------------------------------------------------------------------------------
# topics
# --------------------------------------------------------------------------------------


def test_topic_exact_and_case_sensitive() -> None:
    p = kpolicy(krule(role="produce", topic="orders"))
    assert ok(p, "produce", topics=("orders",))
    assert not ok(p, "produce", topics=("Orders",))
    assert not ok(p, "produce", topics=("orders2",))


def test_every_topic_must_be_allowed_by_some_rule() -> None:
    p = kpolicy(krule(role="produce", topic="a"), krule(role="produce", topic="b"))
    d = p.check(kafka_request("produce", 5, "c", ["a", "b"]))
    assert d.allowed and d.rule_index == 1  # the rule that completed the set
    assert ok(p, "produce", topics=("b", "a"))
    assert ok(p, "produce", topics=("a", "a"))
    assert not ok(p, "produce", topics=("a", "c"))
    assert not ok(p, "produce", topics=("c",))


def test_per_topic_rules_must_also_match_key_version_client() -> None:
    p = kpolicy(krule(role="produce", topic="a"), krule(role="consume", topic="b"))
    assert not ok(p, "produce", topics=("a", "b"))  # b is only allowed for consume
    assert ok(p, "fetch", topics=("b",))


def test_rule_without_topic_allows_all_topics() -> None:
    p = kpolicy(krule(role="produce", topic="a"), krule(role="produce"))
    d = p.check(kafka_request("produce", 5, "c", ["x", "y"]))
    assert d.allowed and d.rule_index == 1


def test_topic_ignored_for_request_kinds_without_topics() -> None:
    p = kpolicy(krule(topic="orders"))
    for key in ("heartbeat", "apiversions", "joingroup", "findcoordinator", "syncgroup"):
        assert kafka_api_key(key) not in TOPIC_API_KEYS
        assert ok(p, key)


def test_topic_rule_never_matches_topic_kinds_cilium_does_not_decode() -> None:
    # createtopics carries topics (isTopicAPIKey) but Cilium does not decode them, so the
    # request's topic set is empty and a topic-constrained rule cannot complete it.
    p = kpolicy(krule(apiKey="createtopics", topic="orders"))
    assert not ok(p, "createtopics", topics=("orders",))
    assert ok(kpolicy(krule(apiKey="createtopics")), "createtopics", topics=("orders",))


def test_topic_rule_and_request_without_topics() -> None:
    # metadata for "all topics" has an empty list: only topic-less rules can allow it.
    assert not ok(kpolicy(krule(role="produce", topic="orders")), "metadata")
    assert ok(kpolicy(krule(role="produce")), "metadata")


# --------------------------------------------------------------------------------------
# Deny response, empty lists, invalid rules
# --------------------------------------------------------------------------------------


def test_deny_error_code_is_topic_authorization_failed() -> None:
    assert KAFKA_DENY_ERROR_CODE == 29
    assert KAFKA_DENY_ERROR_NAME == "TOPIC_AUTHORIZATION_FAILED"
    d = kpolicy(krule(role="produce")).check(kafka_request("fetch", 5, "c", ["orders"]))
    assert not d.allowed and d.rule_index is None
    assert d.error_code == 29 and d.error_name == "TOPIC_AUTHORIZATION_FAILED"
    assert d.error_response  # fetch can be answered with an error response
    silent = kpolicy(krule(role="produce")).check(kafka_request("heartbeat", 1, "c"))
    assert not silent.allowed and silent.error_code == 29 and not silent.error_response


def test_allowed_decision_has_no_error() -> None:
    d = kpolicy(krule(role="produce")).check(kafka_request("produce", 5, "c", ["x"]))
    assert d.allowed and d.error_code is None and d.error_name is None


def test_empty_rule_list_allows_everything() -> None:
    assert KafkaPolicy([]).check(KafkaRequest(99, 1, "x", ("t",))).allowed


@pytest.mark.parametrize(
    "kw",
    [
        {"role": "produce", "apiKey": "fetch"},
        {"role": "admin"},
        {"apiKey": "nope"},
        {"apiVersion": "x"},
        {"apiVersion": "40000"},
        {"apiVersion": "-1"},
        {"apiVersion": "1_0"},
    ],
)
def test_invalid_rules_raise(kw: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        KafkaRule.from_model(krule(**kw))


# --------------------------------------------------------------------------------------
# Seed article: kafka-topic-policy
# --------------------------------------------------------------------------------------


def test_seed_kafka_topic_policy() -> None:
    order_service = kpolicy(krule(role="produce", topic="orders"))
    settlement = kpolicy(krule(role="consume", topic="orders"))
    assert ok(order_service, "produce", topics=("orders",))
    assert ok(order_service, "metadata", topics=("orders",))
    assert ok(order_service, "apiversions")
    assert not ok(order_service, "fetch", topics=("orders",))  # consume under the produce role
    assert not ok(order_service, "produce", topics=("payments",))
    assert not ok(order_service, "produce", topics=("orders", "payments"))
    assert ok(settlement, "fetch", topics=("orders",))
    assert ok(settlement, "offsetcommit", topics=("orders",))
    assert ok(settlement, "joingroup")
    assert not ok(settlement, "produce", topics=("orders",))
    assert not ok(settlement, "fetch", topics=("payments",))
