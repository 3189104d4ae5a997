"""Benchmark: `ciliary generate` and `ciliary connections` over generated Hubble flow files.

Run by `make bench` (`.venv/bin/python bench/generate.py`); `--small` scales everything down
10x (100-pod / 20-policy cluster, 100k + 20k flows) for a quick check. Not a test: nothing
here asserts on timings, it prints figures next to the targets.

The input is bench/replay.py's (its `gen_params` and `prepare`, imported by path): the
1k-pod / 200-policy cluster of bench/engine.py, flows-l4.jsonl (1,000,000 L3/L4 flows) and
flows-l7.jsonl (200,000 flows with DNS and HTTP). `--keep DIR` reuses the files of a
previous run of either bench in DIR made with the same parameters.

Each measurement is the wall time and peak RSS (wait4) of a fresh child process:

* generate: `ciliary generate FILE --cluster CLUSTER --out TMP -o json` (flows-l7.jsonl with
  `--l7 all`), once per file; with the policies written, the workloads that got one,
  whether the replay verified them and the summary's `checked` (`-o json`: the summary on
  stdout is JSON, and so are the policy files);
* plain: `for line in file: orjson.loads(line)` (the baseline);
* connections: `ciliary connections FILE -o json > /dev/null`.

plain and connections run `--repeat` times (default 3), interleaved, after one unmeasured
connections run (it warms the page cache and gives the map's size); the fastest run counts
(the machine's other load only ever slows a run down). The ratio is wall to wall, so the
CLI's start-up (imports, about 0.3 s) is in the connections figure. One more connections run
filters by `--namespace NS` (the application namespace with the most pods), reported as a
figure. The cluster's workloads (distinct workload selectors of its pods, as generate names
them) are counted in a child, and the JSON outputs are read by children too, so that this
process stays small: a child's ru_maxrss includes this process's peak at fork.

Targets (issue 11, for the 1M-flow file; the L7 file is held to the same): generate under
60 s and under 1 GB peak RSS (streaming); connections within 2x of the plain parse of the
same file. `--only l4|l7` measures one file.

`--profile generate|connections` runs one of them in-process on one file (`--file l4|l7`)
under cProfile and prints the top `--top` functions (`--sort` cumulative, tottime or both).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, for benchkit (see its docstring)
from benchkit import (
    Target,
    cli,
    fmt_b,
    fmt_s,
    import_bench,
    plain_parse,
    print_profile,
    print_targets,
    print_wait4_note,
    run_measured,
    run_worker,
    workdir,
)

TARGET_GENERATE_S = 60.0
TARGET_GENERATE_RSS = 1_000_000_000  # 1 GB
TARGET_CONNECTIONS_X = 2.0  # connections wall time / plain parse wall time


# ----------------------------------------------------------------------------------------
# Children


def worker_plain(file: str) -> dict[str, Any]:
    n, seconds = plain_parse(file)
    return {"flows": n, "seconds": seconds}


def worker_workloads(cluster: str) -> dict[str, Any]:
    """The cluster's workloads as generate sees them (its `unobserved` walks the same)."""
    from ciliary.cluster.loader import read_cluster
    from ciliary.cluster.workloads import workload_of
    from ciliary.model.policy import PolicySet
    from ciliary.policy.config import AgentConfig
    from ciliary.policy.engine import PolicyEngine

    engine = PolicyEngine(read_cluster([cluster]), PolicySet(), AgentConfig())
    keys = {
        w.key for ep in engine.pod_endpoints if ep.pod is not None
        for w in [workload_of(ep.pod.namespace, ep.pod.labels)] if w is not None
    }
    return {"pods": len(engine.cluster.pods), "workloads": sorted(keys)}


def worker_summary(file: str) -> dict[str, Any]:
    """The figures of a generate summary or a connections report (JSON in `file`)."""
    with open(file, "rb") as f:
        d = orjson.loads(f.read())
    if "rows" in d:  # connections -o json
        return {"connections": d["connections"], "flows": d["flows"], "flows_read": d["flows_read"],
                "unresolved": len(d["unresolved"])}
    return {
        "policies": len(d["policies"]), "workloads": sorted({p["workload"] for p in d["policies"]}),
        "unobserved": len(d["unobserved"]), "verified": d["verified"], "checked": d["checked"],
        "failures": len(d["failures"]), "failed": [f"{f['what']}: {f['predicted']}, first at {f['first_flow']}"
                                                   for f in d["failures"][:5]],
        "unverifiable": len(d["unverifiable"]), "denied": len(d["denied"]), "unresolved": len(d["unresolved"]),
        "was_dropped": len(d.get("was_dropped") or ()), "flows_read": d["flows_read"], "bad_lines": d["bad_lines"],
    }


WORKERS = {"plain": worker_plain, "workloads": worker_workloads, "summary": worker_summary}


def child(worker: str, arg: str) -> dict[str, Any]:
    res, wall, rss = run_worker(__file__, worker, ["--file", arg])
    res["wall"], res["maxrss"] = wall, rss
    return res


def cli_generate(file: str, cluster: str, l7: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ciliary-bench-generate-") as d:
        out_dir = Path(d) / "policies"  # must not exist (or be empty)
        cmd = [cli(), "generate", file, "--cluster", cluster, "--out", str(out_dir), "-o", "json"]
        if l7:
            cmd += ["--l7", "all"]
        summary = Path(d) / "summary.json"
        with open(summary, "wb") as out:
            _, err, wall, rc, rss = run_measured(cmd, stdout=out)
        files = sum(1 for p in out_dir.rglob("*") if p.is_file()) if out_dir.is_dir() else 0
        res: dict[str, Any] = {"wall": wall, "rc": rc, "maxrss": rss, "files": files}
        try:  # read by a child: this process stays small (see the module)
            res["summary"] = child("summary", str(summary))
        except (RuntimeError, ValueError):
            res["error"] = err[-2000:]
    return res


def cli_connections(file: str, extra: list[str] | None = None, keep_output: bool = False) -> dict[str, Any]:
    """One run, its JSON to /dev/null, or with `keep_output` to a temp file, summarised."""
    cmd = [cli(), "connections", file, "-o", "json", *(extra or [])]
    with tempfile.NamedTemporaryFile(prefix="ciliary-bench-connections-", suffix=".json") as tmp, \
            open(os.devnull, "wb") as devnull:
        _, err, wall, rc, rss = run_measured(cmd, stdout=tmp if keep_output else devnull)
        res: dict[str, Any] = {"wall": wall, "rc": rc, "maxrss": rss}
        if rc != 0:
            res["error"] = err[-2000:]
        elif keep_output:
            tmp.flush()
            summ = child("summary", tmp.name)
            res.update((k, v) for k, v in summ.items() if k not in res)  # not the summary child's wall
    return res


# ----------------------------------------------------------------------------------------
# Report


def measure_generate(kind: str, path: str, meta: dict[str, Any], workloads: list[str]) -> list[Target]:
    l7 = kind == "l7"
    g = cli_generate(path, meta["cluster"], l7)
    label = f"generate{' --l7 all' if l7 else ''}"
    if "error" in g:
        print(f"  {label} failed (exit {g['rc']}): {g['error']}", flush=True)
        return [(f"{kind} {label} wall time", f"< {TARGET_GENERATE_S:.0f} s", "failed", False)]
    s = g["summary"]
    n = s["flows_read"]
    with_policy = set(s["workloads"])
    in_cluster = len(with_policy & set(workloads))
    print(f"  {label + ' --out DIR':<34} {fmt_s(g['wall']):>9}  {n / g['wall']:>11,.0f} flows/s  "
          f"maxrss {fmt_b(g['maxrss']):>9}  (exit {g['rc']})", flush=True)
    print(f"  {'':<34} {s['policies']} policies written ({g['files']} files) for {len(with_policy)} workloads "
          f"({in_cluster} of the cluster's {len(workloads)}); {s['unobserved']} unobserved", flush=True)
    print(f"  {'':<34} verified: {s['verified']}; checked {s['checked']:,}; failures {s['failures']}; "
          f"unverifiable {s['unverifiable']}; denied {s['denied']}; unresolved {s['unresolved']}; "
          f"was_dropped {s['was_dropped']}; bad lines {s['bad_lines']}", flush=True)
    for what in s["failed"]:
        print(f"  {'':<34}   failure: {what}", flush=True)
    return [
        (f"{kind} {label} wall time", f"< {TARGET_GENERATE_S:.0f} s", fmt_s(g["wall"]), g["wall"] < TARGET_GENERATE_S),
        (f"{kind} {label} peak RSS", "< 1 GB", fmt_b(g["maxrss"]), g["maxrss"] < TARGET_GENERATE_RSS),
    ]


def measure_connections(kind: str, path: str, meta: dict[str, Any], repeat: int) -> list[Target]:
    # Unmeasured first: warms the page cache for both and gives the map's size.
    first = cli_connections(path, keep_output=True)
    if "error" in first:
        print(f"  connections failed (exit {first['rc']}): {first['error']}", flush=True)
        return [(f"{kind} connections / plain parse", f"<= {TARGET_CONNECTIONS_X}x", "failed", False)]
    runs: dict[str, list[dict[str, Any]]] = {"plain": [], "connections": []}
    for _ in range(repeat):  # interleaved, so that a slow spell of the machine hits both alike
        runs["plain"].append(child("plain", path))
        runs["connections"].append(cli_connections(path))
    failed = [r for r in runs["connections"] if "error" in r]
    if failed:
        print(f"  connections failed (exit {failed[0]['rc']}): {failed[0]['error']}", flush=True)
        return [(f"{kind} connections / plain parse", f"<= {TARGET_CONNECTIONS_X}x", "failed", False)]
    plain = min(runs["plain"], key=lambda r: r["wall"])
    conn = min(runs["connections"], key=lambda r: r["wall"])
    n = plain["flows"]

    def row(label: str, r: dict[str, Any], extra: str = "") -> None:
        print(f"  {label:<34} {fmt_s(r['wall']):>9}  {n / r['wall']:>11,.0f} flows/s  maxrss {fmt_b(r['maxrss']):>9}  "
              f"{extra}", flush=True)

    def spread(mode: str) -> str:
        xs = [r["wall"] for r in runs[mode]]
        return f"best of {len(xs)}: {', '.join(fmt_s(x) for x in xs)}" if len(xs) > 1 else ""

    row("plain orjson parse (baseline)", plain, f"(loop {fmt_s(plain['seconds'])}); {spread('plain')}")
    cx = conn["wall"] / plain["wall"]
    row("connections -o json > /dev/null", conn, f"{cx:.2f}x plain; {spread('connections')}")
    print(f"  {'':<34} {first['connections']:,} rows, {first['flows']:,} of {first['flows_read']:,} flows counted, "
          f"{first['unresolved']} unresolved side(s)", flush=True)
    ns = meta["observe_ns"]
    f = cli_connections(path, ["--namespace", ns], keep_output=True)
    if "error" in f:
        print(f"  connections --namespace {ns} failed (exit {f['rc']}): {f['error']}", flush=True)
    else:
        row(f"connections -n {ns}", f, f"{f['wall'] / plain['wall']:.2f}x plain (one run); "
            f"{f['connections']:,} rows, {f['flows']:,} flows counted")
    return [(f"{kind} connections / plain parse", f"<= {TARGET_CONNECTIONS_X}x",
             f"{cx:.2f}x ({fmt_s(conn['wall'])} vs {fmt_s(plain['wall'])})", cx <= TARGET_CONNECTIONS_X)]


def profile(args: argparse.Namespace, meta: dict[str, Any]) -> None:
    from ciliary.cluster.loader import read_cluster
    from ciliary.flows.observed import PeerResolver
    from ciliary.process import streaming, tune_gc_for_batch
    from ciliary.workflows.connections import connections
    from ciliary.workflows.generate import GenerateOptions, generate

    path = meta[args.profile_file]
    tune_gc_for_batch()  # as the CLI starts
    prof = cProfile.Profile()
    if args.profile == "generate":
        cluster = read_cluster([meta["cluster"]])
        l7 = frozenset({"http", "dns", "kafka"}) if args.profile_file == "l7" else frozenset()
        t0 = time.perf_counter()
        prof.enable()
        result = generate(cluster, [path], GenerateOptions(l7=l7))
        prof.disable()
        what = f"{len(result.policies)} policies, verified {result.verification.ok}"
    else:
        t0 = time.perf_counter()
        with streaming():  # as `ciliary connections` runs
            prof.enable()
            report = connections([path], PeerResolver())
            prof.disable()
        what = f"{len(report.rows)} rows"
    print(f"{args.profile} of {Path(path).name} under cProfile: {time.perf_counter() - t0:.2f} s ({what})")
    print_profile(prof, args.sort, args.top)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="everything 10x smaller (quick check)")
    ap.add_argument("--seed", type=int, default=None, help="generator seed (default: bench/engine.py's)")
    ap.add_argument("--keep", metavar="DIR", help="write the generated files to DIR and keep them (reused if unchanged)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of plain and connections (the best counts)")
    ap.add_argument("--profile", choices=["generate", "connections"], help="cProfile one run in-process instead")
    ap.add_argument("--file", dest="profile_file", default="l4", help="l4 | l7 (with --profile)")
    ap.add_argument("--sort", default="both", choices=["cumulative", "tottime", "both"], help="--profile order")
    ap.add_argument("--top", type=int, default=20, help="rows of the --profile listing")
    ap.add_argument("--only", choices=["l4", "l7"], help="measure one file only")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:  # a measured child: imports only what it measures
        print(json.dumps(WORKERS[args.worker](args.profile_file)))
        return 0

    replay = import_bench("replay")
    seed = args.seed if args.seed is not None else import_bench("engine").SEED
    params = replay.gen_params(args.small, seed)
    with workdir(args.keep, "ciliary-bench-generate-") as tmp:
        if args.profile:
            meta = replay.prepare(tmp, params)
            profile(args, meta)
            return 0
        print(f"ciliary generate / connections benchmark (python {sys.version.split()[0]}, seed {seed}, "
              f"{os.cpu_count()} CPUs, {'--small' if args.small else 'full'} size); files in {tmp}", flush=True)
        t_all = time.perf_counter()
        meta = replay.prepare(tmp, params)
        if meta["reused"]:
            print("reused the generated files of a previous run (same parameters)")
        else:
            print(f"generated in {fmt_s(time.perf_counter() - t_all)}")
        kinds = meta["kinds"]
        pols = sum(v for k, v in kinds.items() if "Policy" in k)
        wl = child("workloads", meta["cluster"])
        workloads: list[str] = wl["workloads"]
        print(f"cluster: {wl['pods']} pods, {meta['namespaces']} namespaces, {len(workloads)} workloads, "
              f"{pols} policies (not read by generate or connections)")
        for kind in ("l4", "l7"):
            g = meta[f"{kind}_gen"]
            print(f"  flows-{kind}.jsonl: {g['flows']:,} flows from {g['sessions']:,} connections, {fmt_b(g['bytes'])}")
        targets: list[Target] = []
        for kind in [args.only] if args.only else ["l4", "l7"]:
            path = meta[kind]
            size = os.path.getsize(path)
            print(f"\n== {Path(path).name}: {meta[f'{kind}_gen']['flows']:,} flows, {fmt_b(size)}", flush=True)
            targets += measure_generate(kind, path, meta, workloads)
            targets += measure_connections(kind, path, meta, args.repeat)
        print_targets(targets, target_width=7, value_width=32)
        print_wait4_note(t_all)
    return 0


if __name__ == "__main__":
    sys.exit(main())
