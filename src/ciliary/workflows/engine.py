"""Building a PolicyEngine from paths: the cluster snapshot, policies and agent config."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ciliary.cluster.loader import read_cluster
from ciliary.model.errors import LoadError, ValidationIssue
from ciliary.model.files import read_documents
from ciliary.model.loader import load_policies
from ciliary.model.options import ValidationOptions
from ciliary.policy.config import AgentConfig, config_from_document
from ciliary.policy.engine import PolicyEngine

StrPath = str | os.PathLike[str]


def read_config(path: StrPath | None) -> AgentConfig:
    if path is None:
        return AgentConfig()
    docs = read_documents([path])
    if len(docs) != 1:
        raise LoadError([ValidationIssue(str(path), None, None, None, "", "agent config must be one YAML document")])
    return config_from_document(docs[0])


def build_engine(
    cluster: StrPath,
    policies: Sequence[StrPath] | None,
    config: AgentConfig,
) -> PolicyEngine:
    """Load everything; with no policy paths, the policies inside the snapshot are used.

    Warnings of the policy load (identical duplicates, loaded once) are on
    `engine.policies.warnings`; on LoadError, on its `warnings`."""
    snapshot = read_cluster([cluster])
    docs = read_documents(policies) if policies else snapshot.policy_documents
    opts = ValidationOptions(
        enable_l7_proxy=config.enable_l7_proxy,
        enable_icmp_rules=config.enable_icmp_rules,
        enable_node_selector_labels=config.enable_node_selector_labels,
    )
    return PolicyEngine(snapshot, load_policies(docs, opts), config)
