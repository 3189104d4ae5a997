"""Kafka L7 rules (`PortRuleKafka`, deprecated in Cilium) as Cilium's Kafka parser enforces
them (semantics §6.4).

Sources (cilium/cilium):

* pkg/policy/api/kafka/kafka.go — `APIKeyMap` (names, matched lower-cased), `Sanitize`,
  `GetAPIKeys` (role expansion: produce → produce, metadata, apiversions; consume →
  fetch, offsets, metadata, offsetcommit, offsetfetch, findcoordinator, joingroup,
  heartbeat, leavegroup, syncgroup, apiversions), `GetAPIVersion` (-1 = any).
* pkg/kafka/policy.go `Rule.Matches` — api key, version and client id must match; a rule's
  topic is checked only for request kinds that carry topics (`isTopicAPIKey`). The
  request's topics are a set shared by all rules of the port: a rule whose topic is in the
  set removes it and matches only when the set becomes empty, so a multi-topic request is
  allowed when every topic is allowed by some rule (or when a rule without a topic
  constraint matches). proxylib/proxylib/policymap.go: rules are tried in order, the first
  that matches allows; no rules allows everything.
* pkg/kafka/request.go `ReadRequest`/`setTopics` — topics are decoded only for produce,
  fetch, offsets (list-offsets), metadata, offsetcommit and offsetfetch; every other kind
  has an empty topic set, so a topic-constrained rule never matches it. `extractClientID`
  reads no client id for API version 0.

Open question 6 (error returned on deny) — decision: **29, TOPIC_AUTHORIZATION_FAILED**.
proxylib/kafka/parser.go `KafkaParser.OnData`: when `connection.Matches(req)` fails it sets
`ErrorCode: kafka.ErrTopicAuthorizationFailed` on the access-log entry, injects
`req.CreateAuthErrorResponse()` towards the client and drops the request;
pkg/kafka/request.go `CreateAuthErrorResponse` builds the response with
`proto.ErrTopicAuthorizationFailed` in every topic/partition; pkg/kafka/error.go:
`ErrTopicAuthorizationFailed = 29`. Only request kinds Cilium can decode (produce, fetch,
offsets, metadata, findcoordinator, offsetcommit, offsetfetch) get an error response;
other denied requests are dropped silently (`CreateResponse` fails).

Contracts: `KafkaRequest`, `KafkaRule` and `KafkaDecision` are immutable. A `KafkaPolicy`
compiles its rules once and holds nothing else, so `check` depends on the request alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from ciliary.model.cilium import PortRuleKafka
from ciliary.model.values import KAFKA_API_KEYS, KAFKA_ROLES

__all__ = [
    "CONSUME_ROLE_API_KEYS",
    "KAFKA_API_KEY_NAMES",
    "KAFKA_API_KEY_NUMBERS",
    "KAFKA_DENY_ERROR_CODE",
    "KAFKA_DENY_ERROR_NAME",
    "PRODUCE_ROLE_API_KEYS",
    "TOPIC_API_KEYS",
    "KafkaDecision",
    "KafkaPolicy",
    "KafkaRequest",
    "KafkaRule",
    "kafka_api_key",
    "kafka_api_key_name",
    "kafka_request",
]

KAFKA_DENY_ERROR_CODE = 29
KAFKA_DENY_ERROR_NAME = "TOPIC_AUTHORIZATION_FAILED"

# kafka.go APIKeyMap, in number order (0..33). The name set itself is model/values.py's.
_API_KEYS_IN_ORDER = (
    "produce", "fetch", "offsets", "metadata", "leaderandisr", "stopreplica",
    "updatemetadata", "controlledshutdown", "offsetcommit", "offsetfetch", "findcoordinator",
    "joingroup", "heartbeat", "leavegroup", "syncgroup", "describegroups", "listgroups",
    "saslhandshake", "apiversions", "createtopics", "deletetopics", "deleterecords",
    "initproducerid", "offsetforleaderepoch", "addpartitionstotxn", "addoffsetstotxn",
    "endtxn", "writetxnmarkers", "txnoffsetcommit", "describeacls", "createacls",
    "deleteacls", "describeconfigs", "alterconfigs",
)  # fmt: skip
if frozenset(_API_KEYS_IN_ORDER) != KAFKA_API_KEYS:  # pragma: no cover - guards drift
    raise ImportError("ciliary.l7.kafka: API key table disagrees with model.values")

KAFKA_API_KEY_NUMBERS: Mapping[str, int] = {n: i for i, n in enumerate(_API_KEYS_IN_ORDER)}
KAFKA_API_KEY_NAMES: Mapping[int, str] = dict(enumerate(_API_KEYS_IN_ORDER))

_K = KAFKA_API_KEY_NUMBERS
PRODUCE_ROLE_API_KEYS = frozenset({_K["produce"], _K["metadata"], _K["apiversions"]})
CONSUME_ROLE_API_KEYS = frozenset(
    {
        _K["fetch"], _K["offsets"], _K["metadata"], _K["offsetcommit"], _K["offsetfetch"],
        _K["findcoordinator"], _K["joingroup"], _K["heartbeat"], _K["leavegroup"],
        _K["syncgroup"], _K["apiversions"],
    }
)  # fmt: skip
_ROLE_KEYS = dict(zip(KAFKA_ROLES, (PRODUCE_ROLE_API_KEYS, CONSUME_ROLE_API_KEYS), strict=True))

# policy.go isTopicAPIKey (34 AlterReplicaLogDirs, 35 DescribeLogDirs, 37 CreatePartitions
# have no name in APIKeyMap).
TOPIC_API_KEYS = frozenset({0, 1, 2, 3, 4, 5, 6, 8, 9, 19, 20, 21, 23, 24, 27, 28, 34, 35, 37})
# request.go: kinds whose topics are decoded, and kinds that get an error response.
_TOPICS_DECODED = frozenset({0, 1, 2, 3, 8, 9})
_RESPONSE_KINDS = frozenset({0, 1, 2, 3, 8, 9, 10})

_API_VERSION = re.compile(r"[+-]?[0-9]+")  # strconv.ParseInt(s, 10, 16) syntax


def kafka_api_key(key: int | str) -> int:
    """An API key number from a number or a name (case-insensitive, Cilium's names)."""
    if isinstance(key, int):
        return key
    try:
        return KAFKA_API_KEY_NUMBERS[key.lower()]
    except KeyError:
        raise ValueError(f"invalid Kafka APIKey {key!r}") from None


def kafka_api_key_name(key: int) -> str:
    """kafka.go ApiKeyToString: the name, or the number as text if it has none."""
    return KAFKA_API_KEY_NAMES.get(key, str(key))


class KafkaRequest(NamedTuple):
    """One Kafka request as Cilium's parser sees it (topics in request order)."""

    api_key: int
    api_version: int
    client_id: str = ""
    topics: tuple[str, ...] = ()


def kafka_request(
    api_key: int | str, api_version: int, client_id: str = "", topics: Iterable[str] = ()
) -> KafkaRequest:
    """A `KafkaRequest`, with the API key given by number or (case-insensitive) name."""
    return KafkaRequest(kafka_api_key(api_key), api_version, client_id, tuple(topics))


@dataclass(frozen=True, slots=True)
class KafkaRule:
    """A compiled `PortRuleKafka` (pkg/kafka/policy.go `Rule`)."""

    api_keys: frozenset[int] = frozenset()  # empty: every key
    api_version: int = -1  # < 0: every version
    client_id: str = ""  # empty: every client
    topic: str = ""  # empty: every topic

    @classmethod
    def from_model(cls, rule: PortRuleKafka) -> KafkaRule:
        """Compile an API rule; raises ValueError where Cilium's Sanitize would."""
        role, key = rule.role or "", rule.api_key or ""
        if role and key:
            raise ValueError(f"cannot set both Role {role!r} and APIKey {key!r} together")
        keys: frozenset[int] = frozenset()
        if role:
            try:
                keys = _ROLE_KEYS[role.lower()]
            except KeyError:
                raise ValueError(f"invalid Kafka Role {role!r}") from None
        elif key:
            keys = frozenset({kafka_api_key(key)})
        version = -1
        if rule.api_version:
            if not _API_VERSION.fullmatch(rule.api_version):
                raise ValueError(f"invalid Kafka APIVersion {rule.api_version!r}")
            version = int(rule.api_version)
            if not 0 <= version <= 32767:
                raise ValueError(f"invalid Kafka APIVersion {rule.api_version!r}")
        return cls(keys, version, rule.client_id or "", rule.topic or "")

    def matches_request(self, api_key: int, api_version: int, client_id: str) -> bool:
        """Key, version and client id constraints (the topic is checked by the policy)."""
        return (
            (not self.api_keys or api_key in self.api_keys)
            and (self.api_version < 0 or api_version == self.api_version)
            and (not self.client_id or client_id == self.client_id)
        )


@dataclass(frozen=True, slots=True)
class KafkaDecision:
    """The verdict for one request. Denied: the proxy drops it and, for kinds it can
    decode (`error_response`), answers with `error_code` in every topic/partition."""

    allowed: bool
    rule_index: int | None = None  # the rule whose match completed the request
    error_code: int | None = None
    error_name: str | None = None
    error_response: bool = False


_ALLOW_ALL = KafkaDecision(True)


class KafkaPolicy:
    """The Kafka rules of one port and peer selector: `check(req)` gives the verdict."""

    __slots__ = ("rules",)

    def __init__(self, rules: Iterable[PortRuleKafka | KafkaRule]) -> None:
        self.rules: tuple[KafkaRule, ...] = tuple(
            r if isinstance(r, KafkaRule) else KafkaRule.from_model(r) for r in rules
        )

    def __len__(self) -> int:
        return len(self.rules)

    def check(self, req: KafkaRequest) -> KafkaDecision:
        """The verdict for `req`, emulating proxylib's rule loop and shared topic set."""
        if not self.rules:
            return _ALLOW_ALL
        kind, version = req.api_key, req.api_version
        client = req.client_id if version != 0 else ""  # extractClientID: none in v0
        remaining = set(req.topics) if kind in _TOPICS_DECODED else set()
        topic_kind = kind in TOPIC_API_KEYS
        for i, rule in enumerate(self.rules):
            if not rule.matches_request(kind, version, client):
                continue
            if rule.topic and topic_kind:
                if rule.topic in remaining:
                    remaining.discard(rule.topic)
                    if not remaining:
                        return KafkaDecision(True, i)
                continue
            return KafkaDecision(True, i)
        return KafkaDecision(
            False,
            None,
            KAFKA_DENY_ERROR_CODE,
            KAFKA_DENY_ERROR_NAME,
            kind in _RESPONSE_KINDS,
        )
