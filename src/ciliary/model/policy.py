"""A loaded policy object and the set of them.

Contracts:
* `PolicyRef` (frozen, ordered by kind, namespace, name) is how a policy is named
  everywhere, as in Hubble's `*_allowed_by` lists; clusterwide policies have namespace "".
* `LoadedPolicy` and `PolicySet` are made by `load_policies` and read-only afterwards.
  A `LoadedPolicy` shares its document's line table (`lines`, keyed by paths from the
  document root; computed on first use for JSON); `line_of` takes a path inside the object.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ciliary.model.cilium import CiliumClusterwideNetworkPolicy, CiliumNetworkPolicy
from ciliary.model.errors import Path, ValidationWarning
from ciliary.model.k8s import NetworkPolicy

KIND_CNP = "CiliumNetworkPolicy"
KIND_CCNP = "CiliumClusterwideNetworkPolicy"
KIND_KNP = "NetworkPolicy"

PolicyObject = CiliumNetworkPolicy | CiliumClusterwideNetworkPolicy | NetworkPolicy


@dataclass(frozen=True, order=True)
class PolicyRef:
    """How Hubble names a policy (`egress_allowed_by` entries): kind, namespace, name."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind} {self.namespace}/{self.name}"
        return f"{self.kind} {self.name}"


@dataclass
class LoadedPolicy:
    """One policy object as loaded, with where it came from."""

    ref: PolicyRef
    obj: PolicyObject
    file: str
    document: int
    path: Path = ()  # prefix inside the document (`items[i]` for lists)
    lines: dict[Path, int] = field(default_factory=dict, repr=False)

    @property
    def kind(self) -> str:
        return self.ref.kind

    @property
    def namespace(self) -> str:
        return self.ref.namespace

    @property
    def name(self) -> str:
        return self.ref.name

    def line_of(self, path: Path) -> int | None:
        p = (*self.path, *path)
        while True:
            if p in self.lines:
                return self.lines[p]
            if not p:
                return None
            p = p[:-1]


@dataclass
class PolicySet:
    policies: list[LoadedPolicy] = field(default_factory=list)
    skipped_kinds: dict[str, int] = field(default_factory=dict)
    # Accepted but worth fixing (identical duplicates, loaded once); the CLI prints them.
    warnings: list[ValidationWarning] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.policies)

    def by_kind(self, kind: str) -> list[LoadedPolicy]:
        return [p for p in self.policies if p.kind == kind]
