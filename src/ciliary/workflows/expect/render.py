"""Text of a run: one row per case, the explanation of every failure (what was expected,
what the engine decided, and the trace of the decision), and the summary line."""

from __future__ import annotations

from typing import NamedTuple

from ciliary.workflows.expect.model import Case, CaseResult, RunResult, describe
from ciliary.workflows.trace import render_dns, render_trace

_REQUEST_NOUN = {"http": "an HTTP request", "dns": "a DNS query", "kafka": "a Kafka request"}


class Row(NamedTuple):
    passed: bool
    name: str
    expect: str
    got: str
    where: str


def expect_text(c: Case) -> str:
    extra = [f"reason {c.reason}"] if c.reason else []
    if c.l7_status:
        extra.append(f"l7_status {c.l7_status}")
    return c.expect + (f" ({', '.join(extra)})" if extra else "")


def got_text(r: CaseResult) -> str:
    if r.verdict is None:
        return "error"
    return describe(r.verdict)


def rows(run: RunResult) -> list[Row]:
    return [
        Row(r.passed, r.case.name, expect_text(r.case), got_text(r) if not r.passed else (r.got or ""),
            f"{r.case.file}:{r.case.line}")
        for r in run.results
    ]


def failure_details(r: CaseResult) -> str:
    """Why a case failed: the mismatch, then the DNS answers replayed and the trace."""
    c = r.case
    lines = [
        f"flow:     {c.src} -> {c.dst} {c.port_text}" + (f", {_REQUEST_NOUN[c.request_kind]}" if c.request_kind else ""),
        f"expected: {expect_text(c)}",
        f"got:      {got_text(r)}",
    ]
    if r.error is not None:
        return "\n".join([*lines, r.error])
    # The outcome's mismatch is the two lines above; the drop reason's and status's follow.
    lines += [f"mismatch: {m}" for m in r.messages if not m.startswith(f"expected {c.expect}, got ")]
    if r.observations:
        lines += ["", render_dns(r.observations)]
    if r.verdict is not None:
        lines += ["", render_trace(r.verdict)]
    return "\n".join(lines)


def failure_text(r: CaseResult) -> str:
    """A failing case's header (`FAIL file:line name`) and its details, indented."""
    body = "\n".join(("  " + line) if line else "" for line in failure_details(r).splitlines())
    return f"FAIL {r.case.file}:{r.case.line}  {r.case.name}\n{body}"


def summary(run: RunResult) -> str:
    files = len(run.files)
    return f"{run.passed} passed, {run.failed} failed" + (f" ({files} files)" if files > 1 else "")
