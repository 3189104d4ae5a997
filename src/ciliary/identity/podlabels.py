"""The identity label set of a pod, built the way the Cilium agent builds it.

Steps (cilium: pkg/k8s/utils/utils.go `SanitizePodLabels`, pkg/labelsfilter/filter.go):

1. drop pod labels under `io.cilium.k8s` (Cilium owns that prefix; `filterPodLabels`);
2. add `io.cilium.k8s.namespace.labels.<k>=<v>` for every namespace label,
   `io.kubernetes.pod.namespace=<ns>`, `io.cilium.k8s.policy.serviceaccount=<sa>` (only
   when the pod has one) and `io.cilium.k8s.policy.cluster=<cluster>`;
3. give everything source `k8s`;
4. keep only identity-relevant labels, using Cilium's *default* label filter (below).

Label filter decision. We follow `defaultLabelPrefixCfg` of the newest
pkg/labelsfilter/filter.go we could read, plus the two extra exclusions that the newest
Documentation/operations/performance/scalability/identity-relevant-labels.rst lists as
defaults (`batch.kubernetes.io/controller-uid`, `controller-uid`). Every entry is a
regular expression that must match at the start of the key (`FindStringIndex` with
position 0). A label is kept when no exclusion matches, or when the longest matching
inclusion is longer than the shortest matching exclusion. Notably `job-name` and
`batch.kubernetes.io/job-name` are NOT excluded by default, so each Job run has its own
identity, as in Cilium. A different `--labels` agent configuration is not modelled.

Contracts: pure functions. `pod_identity_labels` builds a new `LabelSet` from its
arguments alone; `is_identity_relevant` is memoised per (source, key) (`lru_cache`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from ciliary.identity.labels import SOURCE_K8S, Label, LabelSet

POD_NAMESPACE_LABEL: Final = "io.kubernetes.pod.namespace"
NAMESPACE_LABELS_PREFIX: Final = "io.cilium.k8s.namespace.labels"
SERVICE_ACCOUNT_LABEL: Final = "io.cilium.k8s.policy.serviceaccount"
CLUSTER_LABEL: Final = "io.cilium.k8s.policy.cluster"
CILIUM_OWNED_PREFIX: Final = "io.cilium.k8s"
NAMESPACE_NAME_LABEL: Final = "kubernetes.io/metadata.name"


@dataclass(frozen=True, slots=True)
class _Pattern:
    source: str | None  # None: any source
    regex: re.Pattern[str]
    exclude: bool


def _p(text: str) -> _Pattern:
    source: str | None = None
    if ":" in text:
        source, text = text.split(":", 1)
    exclude = text.startswith("!")
    return _Pattern(source, re.compile(text[1:] if exclude else text), exclude)


# (pattern, what it is for) as in Cilium's defaultLabelPrefixCfg.
DEFAULT_LABEL_FILTER: Final[tuple[tuple[str, str], ...]] = (
    ("reserved:.*", "include all reserved labels"),
    (re.escape(POD_NAMESPACE_LABEL), "include io.kubernetes.pod.namespace"),
    (re.escape(NAMESPACE_LABELS_PREFIX), "include all namespace labels"),
    (re.escape("app.kubernetes.io"), "include app.kubernetes.io"),
    (re.escape(CLUSTER_LABEL), "include io.cilium.k8s.policy.cluster"),
    (r"!io\.kubernetes", "ignore all other io.kubernetes labels"),
    (r"!kubernetes\.io", "ignore all other kubernetes.io labels"),
    (r"!statefulset\.kubernetes\.io/pod-name", "ignore statefulset.kubernetes.io/pod-name"),
    (r"!apps\.kubernetes\.io/pod-index", "ignore apps.kubernetes.io/pod-index"),
    (r"!batch\.kubernetes\.io/job-completion-index", "ignore batch.kubernetes.io/job-completion-index"),
    (r"!batch\.kubernetes\.io/controller-uid", "ignore batch.kubernetes.io/controller-uid"),
    (r"!.*beta\.kubernetes\.io", "ignore all beta.kubernetes.io labels"),
    (r"!k8s\.io", "ignore all k8s.io labels"),
    ("!pod-template-generation", "ignore pod-template-generation"),
    ("!pod-template-hash", "ignore pod-template-hash"),
    ("!controller-revision-hash", "ignore controller-revision-hash"),
    ("!annotation.*", "ignore all annotation labels"),
    ("!controller-uid", "ignore controller-uid"),
    ("!etcd_node", "ignore etcd_node"),
)

_PATTERNS: Final = tuple(_p(text) for text, _ in DEFAULT_LABEL_FILTER)


@lru_cache(maxsize=1 << 14)
def is_identity_relevant(source: str, key: str) -> bool:
    """Whether Cilium's default label filter keeps `source:key` for identities."""
    included = 0
    ignored = 0
    for p in _PATTERNS:
        if p.source is not None and p.source != source:
            continue
        m = p.regex.search(key)  # leftmost match, like Go's FindStringIndex
        if m is None or m.start() != 0:
            continue
        n = m.end()
        if p.exclude:
            if ignored == 0 or n < ignored:
                ignored = n
        elif n > included:
            included = n
    # The default list has no user-added inclusions, so Cilium's whitelist flag is off.
    return ignored == 0 or included > ignored


def namespace_labels_with_name(name: str, labels: Mapping[str, str]) -> dict[str, str]:
    """Namespace labels as the API server stores them: `kubernetes.io/metadata.name` is
    set automatically since Kubernetes 1.21 (a snapshot or manifest may lack it)."""
    out = dict(labels)
    out.setdefault(NAMESPACE_NAME_LABEL, name)
    return out


def pod_identity_labels(
    pod_labels: Mapping[str, str],
    namespace: str,
    namespace_labels: Mapping[str, str],
    service_account: str | None = "default",
    cluster_name: str = "default",
) -> LabelSet:
    """Identity-relevant `k8s:` labels of a pod (see module docstring)."""
    merged = {k: v for k, v in pod_labels.items() if not k.startswith(CILIUM_OWNED_PREFIX)}
    for k, v in namespace_labels.items():
        merged[f"{NAMESPACE_LABELS_PREFIX}.{k}"] = v
    merged[POD_NAMESPACE_LABEL] = namespace
    if service_account:
        merged[SERVICE_ACCOUNT_LABEL] = service_account
    else:
        merged.pop(SERVICE_ACCOUNT_LABEL, None)
    merged[CLUSTER_LABEL] = cluster_name
    return LabelSet(
        Label(SOURCE_K8S, k, v) for k, v in merged.items() if is_identity_relevant(SOURCE_K8S, k)
    )
