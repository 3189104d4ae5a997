"""Workloads: the sets of pods that share a stable selector, as a policy author names them.

A pod's workload selector is, in this order (hubble-flows.md §5.8, the seed's authoring
step): `app.kubernetes.io/name` (with `app.kubernetes.io/component` when the pod has it);
else `app`; else `k8s-app`; else every label of the pod but the keys its controller
generates (`pod-template-hash`, `controller-revision-hash`, `statefulset.kubernetes.io/
pod-name`, `batch.kubernetes.io/*`, ...). Replicas and rollouts of one controller thus share
a selector, and a policy written for it keeps selecting them.

Rules: everything here is a pure function of a namespace and a label map. A workload is
its namespace and selector; its `name` (the selector's values, made a DNS label) names it in
reports and policy names and may repeat across different selectors (`unique_names`
resolves that deterministically). Labels from a flow are the pod's `k8s:` labels; Cilium's
own (`io.cilium.k8s.*`, `io.kubernetes.pod.namespace`) and other sources are not pod labels.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Keys controllers add to the pods they make: never part of a workload's selector.
GENERATED_KEYS = frozenset({
    "pod-template-hash", "controller-revision-hash", "pod-template-generation", "controller-uid",
    "job-name", "statefulset.kubernetes.io/pod-name", "apps.kubernetes.io/pod-index",
})
GENERATED_PREFIXES = ("batch.kubernetes.io/",)
# Labels Cilium derives for an identity, which a pod does not carry itself.
_CILIUM_PREFIXES = ("io.cilium.k8s.", "io.kubernetes.pod.namespace")

APP_NAME, APP_COMPONENT = "app.kubernetes.io/name", "app.kubernetes.io/component"


@dataclass(frozen=True, order=True)
class Workload:
    namespace: str
    selector: tuple[tuple[str, str], ...]  # (key, value), sorted: equal selectors, equal workloads
    name: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def match_labels(self) -> dict[str, str]:
        return dict(self.selector)

    def __str__(self) -> str:
        return self.key


def _generated(key: str) -> bool:
    return key in GENERATED_KEYS or key.startswith(GENERATED_PREFIXES)


def selector_keys(labels: Mapping[str, str]) -> tuple[str, ...]:
    """The label keys of a pod's workload selector, in naming order (see the module)."""
    if APP_NAME in labels:
        return (APP_NAME, APP_COMPONENT) if APP_COMPONENT in labels else (APP_NAME,)
    for key in ("app", "k8s-app"):
        if key in labels:
            return (key,)
    return tuple(sorted(k for k in labels if not _generated(k)))


_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def _dns_label(text: str) -> str:
    out = _NOT_DNS.sub("-", text.lower()).strip("-")
    return out[:40].rstrip("-") or "pods"


def workload_of(namespace: str, labels: Mapping[str, str]) -> Workload | None:
    """The workload of a pod in `namespace` with `labels`; None when no label is left to
    select it by (a pod without labels cannot be selected apart from its namespace)."""
    keys = selector_keys(labels)
    if not keys:
        return None
    name = "-".join(_dns_label(labels[k] or k) for k in keys)
    return Workload(namespace, tuple(sorted((k, labels[k]) for k in keys)), name)


def pod_labels_of_flow(labels: Iterable[object]) -> dict[str, str]:
    """A pod's own labels from a Hubble endpoint's `labels` (`k8s:app=x` -> app: x)."""
    out: dict[str, str] = {}
    for text in labels:
        if not isinstance(text, str) or not text.startswith("k8s:"):
            continue
        key, _, value = text[4:].partition("=")
        if key and not key.startswith(_CILIUM_PREFIXES):
            out[key] = value
    return out


def unique_names(workloads: Iterable[Workload]) -> dict[Workload, str]:
    """A name per workload, unique within its namespace: its own name, or with a short hash
    of its selector added when another selector there has the same name."""
    by_name: dict[tuple[str, str], list[Workload]] = {}
    for w in sorted(set(workloads)):
        by_name.setdefault((w.namespace, w.name), []).append(w)
    out: dict[Workload, str] = {}
    for group in by_name.values():
        for w in group:
            if len(group) == 1:
                out[w] = w.name
            else:
                digest = hashlib.sha256(repr(w.selector).encode()).hexdigest()[:6]
                out[w] = f"{w.name}-{digest}"
    return out


def deployment_of_pod_name(name: str, labels: Mapping[str, str]) -> str | None:
    """The Deployment name of a pod named by its ReplicaSet (`<deployment>-<pod-template-hash>-<suffix>`),
    or None when the pod's name does not carry its `pod-template-hash` label."""
    h = labels.get("pod-template-hash")
    if h and f"-{h}-" in name:
        return name.split(f"-{h}-")[0]
    return None
