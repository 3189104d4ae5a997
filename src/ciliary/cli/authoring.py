"""Commands that write policies: generate."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Optional

import orjson
import typer

from ciliary.cli import Output, app, err, fail_load

L7_KINDS = ("http", "dns", "kafka")


class GenerateOutput(StrEnum):
    yaml = "yaml"
    json = "json"


def _l7_kinds(values: list[str]) -> frozenset[str]:
    kinds: set[str] = set()
    for v in values:
        for k in v.split(","):
            k = k.strip().lower()
            if k == "all":
                kinds.update(L7_KINDS)
            elif k in L7_KINDS:
                kinds.add(k)
            elif k:
                raise typer.BadParameter(f"must be http, dns, kafka or all, got {k!r}", param_hint="--l7")
    return frozenset(kinds)


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not force)):
        what = "is not a directory" if not out.is_dir() else "exists and is not empty (use --force to write into it)"
        err.print(f"error: --out {out} {what}", markup=False)
        raise typer.Exit(2)


def _write_out(out: Path, files: list[tuple[str, bytes]]) -> None:
    """All files or none: written in a new directory beside `out`, then moved into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for rel, data in files:
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        if not out.exists():
            tmp.rename(out)
            return
        for rel, _ in files:  # --force into an existing directory: file by file
            dest = out / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / rel, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@app.command("generate")
def generate_command(
    flows: Annotated[list[Path], typer.Argument(help="Hubble flow files (hubble observe -o json / jsonpb, flow exporter).")],
    cluster: Annotated[Path, typer.Option("--cluster", help="Cluster snapshot (kubectl get ... -A -o yaml/json) or a directory of manifests.")],
    namespace: Annotated[Optional[list[str]], typer.Option("--namespace", "-n", help="Write policies only for workloads of these namespaces (repeatable).")] = None,  # noqa: UP045
    l7: Annotated[Optional[list[str]], typer.Option("--l7", help="Add L7 rules: http, dns, kafka or all (repeatable, comma-separated).")] = None,  # noqa: UP045
    out: Annotated[Optional[Path], typer.Option("--out", help="Write one file per workload under DIR/<namespace>/<policy>.yaml.")] = None,  # noqa: UP045
    force: Annotated[bool, typer.Option("--force", help="Write into an --out directory that is not empty.")] = False,
    output: Annotated[GenerateOutput, typer.Option("--output", "-o", help="yaml | json")] = GenerateOutput.yaml,
    fqdn_pattern_threshold: Annotated[int, typer.Option("--fqdn-pattern-threshold", help="N or more names under one parent become *.parent (0: never).")] = 0,
    cidr_aggregate: Annotated[bool, typer.Option("--cidr-aggregate", help="World addresses as one covering prefix per rule, not one /32 each.")] = False,
    merge_with: Annotated[Optional[list[Path]], typer.Option("--merge-with", help="Existing policies: generate only what they do not allow (repeatable).")] = None,  # noqa: UP045
    default_deny: Annotated[bool, typer.Option("--default-deny/--no-default-deny", help="Policies enforce default deny (the default), or allow without blocking anything (enableDefaultDeny: false, the rollout's stage 2).")] = True,
    min_window: Annotated[str, typer.Option("--min-window", help="Flag workloads observed for less than this (Go duration).")] = "24h",
    min_flows: Annotated[int, typer.Option("--min-flows", help="Flag workloads with fewer flows than this.")] = 10,
    config: Annotated[Optional[Path], typer.Option("--config", help="Agent options file (cluster-name, ...).")] = None,  # noqa: UP045
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first bad flow line.")] = False,
) -> None:
    """Least-privilege CiliumNetworkPolicies from observed flows, one per workload, checked
    by replaying the flows through them. Exit 0 when every observed flow that was not denied
    stays allowed, 1 when some would be dropped (listed) or on bad input."""
    from ciliary.cluster.loader import read_cluster
    from ciliary.flows.codec import FlowReadError
    from ciliary.model.errors import LoadError
    from ciliary.model.files import read_documents
    from ciliary.model.loader import load_policies
    from ciliary.policy.config import parse_duration
    from ciliary.workflows.engine import read_config
    from ciliary.workflows.generate import GenerateOptions, generate, plain
    from ciliary.workflows.generate.report import summary_dict, summary_text

    window = parse_duration(min_window)
    if window is None:
        raise typer.BadParameter(f"must be a duration like 24h or 30m, got {min_window!r}", param_hint="--min-window")
    opts = GenerateOptions(
        frozenset(namespace) if namespace else None, _l7_kinds(l7 or []), fqdn_pattern_threshold,
        cidr_aggregate, default_deny, window, min_flows,
    )
    if out is not None:
        _check_out(out, force)
    missing = [str(f) for f in flows if str(f) != "-" and not f.is_file()]
    if missing:
        err.print(f"error: no such flow file: {', '.join(missing)}", markup=False)
        raise typer.Exit(1)
    fmt = Output.json if output is GenerateOutput.json else Output.text
    try:
        snapshot = read_cluster([cluster])
        agent = read_config(config)
        existing = load_policies(read_documents(merge_with)) if merge_with else None
    except LoadError as e:
        fail_load(e, fmt)
        return
    if len(flows) > 1 or sum(f.stat().st_size for f in flows if str(f) != "-") > 50 << 20:
        err.print("reading the flows, then replaying them through the generated policies ...", markup=False)
    try:
        result = generate(
            snapshot, [str(f) for f in flows], opts, config=agent, merge_with=existing, strict=strict,
            on_bad=lambda b: err.print(f"warning: skipped bad line {b}", markup=False),
        )
    except (FlowReadError, OSError) as e:
        err.print(f"error: {e}", markup=False)
        raise typer.Exit(1) from None
    summary = summary_dict(result)
    ext = ".json" if output is GenerateOutput.json else ".yaml"
    bodies = [(p.path.removesuffix(".yaml") + ext, _body(p, output, plain)) for p in result.policies]
    if out is not None:
        _write_out(out, bodies)
        _emit_summary(summary, summary_text(result), output, sys.stdout)
    elif output is GenerateOutput.json:
        docs = [plain(p.doc) for p in result.policies]
        sys.stdout.buffer.write(orjson.dumps({"policies": docs, "summary": summary}, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        sys.stdout.write("---\n".join(p.yaml for p in result.policies))
        err.print(summary_text(result), markup=False, end="")
    if result.merge_diff and output is not GenerateOutput.json:
        err.print(result.merge_diff, markup=False, end="")
    raise typer.Exit(0 if result.verification.ok else 1)


def _body(p: Any, output: GenerateOutput, plain: Any) -> bytes:
    if output is GenerateOutput.json:
        return orjson.dumps(plain(p.doc), option=orjson.OPT_INDENT_2) + b"\n"
    return str(p.yaml).encode()


def _emit_summary(summary: dict[str, Any], text: str, output: GenerateOutput, stream: Any) -> None:
    if output is GenerateOutput.json:
        stream.buffer.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        stream.write(text)
