"""The generator checks its own output: the policies validate with ciliary's validator, and
replaying the input flows through them (with the policies merged with and an explicit
default deny on the subject namespaces) drops no observed traffic that was not denied.

Rules: observations and the replay of the same files are walked in step (both stream in
file order), so the check keeps no per-flow state. An observation fails when replay
predicts DROPPED or AUDIT for it; replies follow their connection and are not checked on
their own; denied and unresolved observations are listed by the generator, not checked.
A flow to a `toFQDNs` peer whose name came only from the flow's `destination_names` (no DNS
answer in the input for the replay to learn) cannot be verified offline: it is listed as
such, not as a failure.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ciliary.flows.codec import ReadStats
from ciliary.flows.observed import UNRESOLVED, Observation, PeerResolver, observations
from ciliary.flows.sides import describe_request
from ciliary.model.loader import load_policies
from ciliary.model.policy import PolicySet
from ciliary.model.source import Document, parse_text
from ciliary.policy.engine import PolicyEngine
from ciliary.workflows.generate.rules import Evidence, port_label
from ciliary.workflows.replay import ReplayedFlow, replay

DEFAULT_DENY_NAME = "ciliary-verify-default-deny"


def default_deny_yaml(namespace: str) -> str:
    """The seed's explicit default deny for one namespace (both directions, nothing allowed)."""
    return (
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\n"
        f"metadata:\n  name: {DEFAULT_DENY_NAME}\n  namespace: {namespace}\n"
        "spec:\n  endpointSelector: {}\n  ingress:\n  - fromEndpoints: []\n  egress:\n  - toEndpoints: []\n"
    )


def documents(texts: Iterable[tuple[str, str]]) -> list[Document]:
    """(file name, YAML text) -> documents, as if read from files."""
    return [d for name, text in texts for d in parse_text(text, name)]


def in_step(
    engine: PolicyEngine, sources: list[str | Path], resolver: PeerResolver,
) -> Iterator[tuple[Observation, ReplayedFlow]]:
    """Every observation of `sources` with the replayed flow it came from."""
    obs = iter(observations(sources, ReadStats(), resolver))
    ob = next(obs, None)
    for rf in replay(engine, sources):
        while ob is not None and (ob.file, ob.line) == (rf.file, rf.line):
            yield ob, rf
            ob = next(obs, None)


@dataclass
class Failure:
    what: str
    where: str  # file:line of the first flow
    predicted: str
    evidence: Evidence = field(default_factory=Evidence)


@dataclass
class Verification:
    checked: int = 0
    failures: dict[str, Failure] = field(default_factory=dict)
    unverifiable: dict[str, Failure] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures


def _describe(ob: Observation) -> str:
    what = f"{ob.src} -> {ob.dst} {port_label((ob.proto, ob.port))}"
    if ob.request is not None:
        what += f" {describe_request(ob.request)}"
    if ob.names:
        what += f" ({', '.join(ob.names)})"
    return what


def verify(
    engine: PolicyEngine, sources: list[str | Path], resolver: PeerResolver,
) -> Verification:
    """Replay `sources` under `engine`'s policies and check every observation (module)."""
    out = Verification()
    for ob, rf in in_step(engine, sources, resolver):
        if ob.reply or ob.denied or UNRESOLVED in (ob.src.kind, ob.dst.kind):
            continue
        out.checked += 1
        if rf.predicted not in ("DROPPED", "AUDIT"):
            continue
        what = _describe(ob)
        table = out.unverifiable if ob.names and not ob.answered else out.failures
        fail = table.setdefault(what, Failure(what, f"{rf.file}:{rf.line}", rf.predicted))
        fail.evidence.add(ob)
    return out


def load_generated(texts: list[tuple[str, str]]) -> PolicySet:
    """The generated policies through ciliary's own loader and validator (LoadError if not)."""
    return load_policies(documents(texts))
