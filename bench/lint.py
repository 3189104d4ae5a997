"""Benchmark: `ciliary lint` on the generated 10k-pod / 2k-policy and 1k-pod / 200-policy clusters.

Run by `make bench` (`.venv/bin/python bench/lint.py`); `--small` runs only the 1k size for a
quick check. Not a test: nothing here asserts on timings, it prints figures next to the target.

The input is bench/engine.py's cluster generator (imported by path; its `SEED`, its `SMALL`
and `LARGE` sizes, `write_cluster` writing cluster.yaml and policies.yaml as
`kubectl get ... -A -o yaml` `v1/List` files). The files are generated in a child process (so
that this process, whose memory every measured child inherits in its ru_maxrss at fork,
stays small) in a temp dir; `--keep DIR` keeps them there and reuses them on the next run
with the same seed.

Each measurement is the wall time and peak RSS (wait4) of a fresh child process:

* CLI: `ciliary lint --cluster cluster.yaml --policies policies.yaml -o json --fail-on never`
  (stdout to a file, read back by a child for the finding counts). The parsed-file cache
  (CILIARY_CACHE_DIR) is a directory of the size's files, emptied at the start of every
  bench run: the first run parses the YAML and fills the cache (reported as a figure, "cold
  cache"), then `--repeat` runs (default 3) read it; the fastest of those counts (the
  machine's other load only ever slows a run down). Start-up (imports, about 0.3 s), the
  load, the engine build, lint and the JSON output are all in the wall time.
* split (`--worker split`): the in-process phases of one lint, as the CLI runs them (GC set
  up by `ciliary.process.tune_gc_for_batch`, at start and after the build): load (snapshot
  and policies, from the warm cache, with validation), engine build (`PolicyEngine`), then
  `lint(engine)` as one call (its endpoint policies are compiled lazily inside it), then
  `as_dict` + orjson of the result (the `-o json` output).
* checks (`--worker checks`): the time per check function: on a freshly built engine, a
  `LintContext` (groups of endpoints that decide alike, who each rule selects), then the
  compiled policy of every group (`ctx.policy`, which `lint()` leaves to the first check
  that asks), then each function of `ciliary.workflows.lint.RUNNERS` in its order on that
  context, its iterator consumed (the Decider's caches carry over from one check to the
  next, as in `lint()`). The sum is close to the split's lint() time; lint()'s own sorting,
  deduplication and suppression are the rest.

Target (issue 12): lint of 10k pods / 2k policies under 10 s, the CLI's wall time with the
parse cache warm. The peak RSS is printed next to it, as are the findings per check ID
(an absurd count of one check on this generated, mostly sensible cluster would hint at a
false positive).

`--profile` runs lint() in-process on one size (10k, or 1k with `--small`) under cProfile,
after building the engine outside the profile, and prints the top `--top` functions
(`--sort` cumulative, tottime or both).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, for benchkit (see its docstring)
from benchkit import (
    Target,
    cli,
    fmt_b,
    fmt_s,
    import_bench,
    maxrss,
    print_profile,
    print_targets,
    print_wait4_note,
    run_measured,
    run_worker,
    workdir,
)

TARGET_LINT_S = 10.0  # `ciliary lint` wall time on 10k pods / 2k policies


# ----------------------------------------------------------------------------------------
# Children


def worker_generate(args: argparse.Namespace) -> dict[str, Any]:
    """Writes one size's files and its meta.json in `args.dir`."""
    eng = import_bench("engine")
    size = eng.SIZES[args.size]
    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    info = eng.write_cluster(size, args.seed, d)
    meta = {"params": {"size": size.name, "seed": args.seed}, "cluster": info["cluster"],
            "policies": info["policies"], "kinds": info["kinds"], "cluster_bytes": info["cluster_bytes"],
            "policy_bytes": info["policy_bytes"], "seconds": time.perf_counter() - t0}
    (d / "meta.json").write_text(json.dumps(meta, indent=1))
    return {"seconds": meta["seconds"]}


def _load(cluster: str, policies: str) -> tuple[Any, Any, Any]:
    """What `ciliary.workflows.engine.build_engine` reads (default agent config)."""
    from ciliary.cluster.loader import read_cluster
    from ciliary.model.files import read_documents
    from ciliary.model.loader import load_policies
    from ciliary.model.options import ValidationOptions
    from ciliary.policy.config import AgentConfig

    config = AgentConfig()
    snapshot = read_cluster([cluster])
    opts = ValidationOptions(
        enable_l7_proxy=config.enable_l7_proxy,
        enable_icmp_rules=config.enable_icmp_rules,
        enable_node_selector_labels=config.enable_node_selector_labels,
    )
    return snapshot, load_policies(read_documents([policies]), opts), config


def _engine(args: argparse.Namespace, res: dict[str, Any]) -> Any:
    from ciliary.policy.engine import PolicyEngine
    from ciliary.process import tune_gc_for_batch

    tune_gc_for_batch()  # as cli.main
    t0 = time.perf_counter()
    snapshot, policies, config = _load(args.cluster, args.policies)
    t1 = time.perf_counter()
    engine = PolicyEngine(snapshot, policies, config)
    t2 = time.perf_counter()
    tune_gc_for_batch()  # as engine_from, once the engine is built
    res.update(load_s=t1 - t0, build_s=t2 - t1, rss_after_build=maxrss(),
               pods=len(snapshot.pods), policies=len(policies.policies), entries=len(engine.repository.entries),
               endpoints=len(engine.endpoints))
    return engine


def worker_split(args: argparse.Namespace) -> dict[str, Any]:
    import orjson

    from ciliary.workflows.lint import lint

    res: dict[str, Any] = {}
    engine = _engine(args, res)
    t0 = time.perf_counter()
    result = lint(engine)
    t1 = time.perf_counter()
    text = orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2)
    t2 = time.perf_counter()
    distinct = {id(engine.policy(ep)) for ep in engine.endpoints}
    res.update(lint_s=t1 - t0, output_s=t2 - t1, json_bytes=len(text), findings=len(result.findings),
               distinct_policies=len(distinct), rss_end=maxrss())
    return res


def worker_checks(args: argparse.Namespace) -> dict[str, Any]:
    from ciliary.workflows.lint import RUNNERS
    from ciliary.workflows.lint.context import LintContext, LintOptions

    res: dict[str, Any] = {}
    engine = _engine(args, res)
    t0 = time.perf_counter()
    ctx = LintContext(engine, LintOptions(), None)
    t1 = time.perf_counter()
    for g in ctx.groups:
        ctx.policy(g)
    t2 = time.perf_counter()
    res.update(context_s=t1 - t0, compile_s=t2 - t1, groups=len(ctx.groups))
    checks: list[dict[str, Any]] = []
    for fn, ids in RUNNERS:
        t = time.perf_counter()
        found = list(fn(ctx))
        checks.append({"fn": fn.__name__, "ids": list(ids), "seconds": time.perf_counter() - t,
                       "findings": len(found)})
    res["checks"] = checks
    return res


def worker_counts(args: argparse.Namespace) -> dict[str, Any]:
    """Findings per check ID of a `lint -o json` output."""
    with open(args.file, "rb") as f:
        d = json.loads(f.read())
    by_id = Counter(f["id"] for f in d["findings"])
    return {"by_id": dict(sorted(by_id.items())), "summary": d["summary"], "notes": d["notes"],
            "findings": len(d["findings"])}


WORKERS = {"generate": worker_generate, "split": worker_split, "checks": worker_checks, "counts": worker_counts}


def child(worker: str, env: dict[str, str] | None = None, **kw: str) -> dict[str, Any]:
    res, wall, rss = run_worker(__file__, worker, [a for k, v in kw.items() for a in (f"--{k}", v)], env)
    res["wall"], res["maxrss"] = wall, rss
    return res


def prepare(d: Path, size_name: str, seed: int) -> dict[str, Any]:
    """One size's files: reused from a kept dir made with the same parameters, else generated
    in a child."""
    meta_path = d / "meta.json"
    params = {"size": size_name, "seed": seed}
    if meta_path.exists():
        meta: dict[str, Any] = json.loads(meta_path.read_text())
        if meta.get("params") == params and all(Path(meta[k]).exists() for k in ("cluster", "policies")):
            meta["reused"] = True
            return meta
        meta_path.unlink()
    child("generate", dir=str(d), size=size_name, seed=str(seed))
    meta = json.loads(meta_path.read_text())
    meta["reused"] = False
    return meta


def cli_lint(meta: dict[str, Any], env: dict[str, str], out_file: Path) -> dict[str, Any]:
    cmd = [cli(), "lint", "--cluster", meta["cluster"], "--policies", meta["policies"],
           "-o", "json", "--fail-on", "never"]
    with open(out_file, "wb") as f:
        _, err, wall, rc, rss = run_measured(cmd, stdout=f, env=env)
    res: dict[str, Any] = {"wall": wall, "rc": rc, "maxrss": rss}
    if rc != 0:
        res["error"] = err[-2000:]
    return res


# ----------------------------------------------------------------------------------------
# Report


def measure(size: Any, meta: dict[str, Any], d: Path, repeat: int) -> list[Target]:
    kinds = meta["kinds"]
    pols = sum(v for k, v in kinds.items() if "Policy" in k)
    print(f"\n== {size.name}: {kinds.get('Pod', 0):,} pods, {pols:,} policies "
          f"({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()) if 'Policy' in k)}), "
          f"{kinds.get('Namespace', 0)} namespaces, {kinds.get('Node', 0)} nodes; "
          f"cluster.yaml {fmt_b(meta['cluster_bytes'], kib=True)}, "
          f"policies.yaml {fmt_b(meta['policy_bytes'], kib=True)}", flush=True)
    cache = d / "cache"
    shutil.rmtree(cache, ignore_errors=True)  # the first run below is the cold one
    env = {**os.environ, "CILIARY_CACHE_DIR": str(cache)}
    env.pop("CILIARY_NO_CACHE", None)
    out_file = d / "lint.json"
    label = f"{size.name} `ciliary lint -o json`"
    first = cli_lint(meta, env, out_file)
    if "error" in first:
        print(f"  lint failed (exit {first['rc']}): {first['error']}", flush=True)
        return [(f"{label} wall time", "< 10 s" if size.name == "10k" else "", "failed", False)]
    runs = [cli_lint(meta, env, out_file) for _ in range(repeat)]
    failed = [r for r in runs if "error" in r]
    if failed:
        print(f"  lint failed (exit {failed[0]['rc']}): {failed[0]['error']}", flush=True)
        return [(f"{label} wall time", "< 10 s" if size.name == "10k" else "", "failed", False)]
    best = min(runs, key=lambda r: r["wall"])
    spread = ", ".join(fmt_s(r["wall"]) for r in runs)
    print(f"  {'lint, cold parse cache':<30} {fmt_s(first['wall']):>9}  maxrss {fmt_b(first['maxrss']):>9}  "
          "(first run: parses the YAML and fills the cache)", flush=True)
    print(f"  {'lint, warm parse cache':<30} {fmt_s(best['wall']):>9}  maxrss {fmt_b(best['maxrss']):>9}  "
          f"best of {len(runs)}: {spread}", flush=True)
    counts = child("counts", file=str(out_file))
    print(f"  findings: {counts['findings']:,} ({', '.join(f'{k} {v}' for k, v in counts['summary'].items())}); "
          f"{os.path.getsize(out_file) / 1024:,.0f} KiB of JSON", flush=True)
    print(f"  per check ID: {', '.join(f'{k} {v}' for k, v in counts['by_id'].items()) or 'none'}", flush=True)
    for n in counts["notes"]:
        print(f"  note: {n}", flush=True)

    kw = {"cluster": meta["cluster"], "policies": meta["policies"]}
    sp = child("split", env, **kw)
    print(f"  in-process (one child, wall {fmt_s(sp['wall'])}, maxrss {fmt_b(sp['maxrss'])}): "
          f"load {fmt_s(sp['load_s'])}, engine build {fmt_s(sp['build_s'])} "
          f"(maxrss {fmt_b(sp['rss_after_build'])} after), lint() {fmt_s(sp['lint_s'])}, "
          f"JSON output {fmt_s(sp['output_s'])}", flush=True)
    print(f"  {'':<2}{sp['endpoints']:,} endpoints, {sp['entries']:,} rule entries, "
          f"{sp['distinct_policies']:,} distinct compiled policies over all endpoints (counted after lint)", flush=True)
    ck = child("checks", env, **kw)
    total = ck["context_s"] + ck["compile_s"] + sum(c["seconds"] for c in ck["checks"])
    print(f"  lint() per phase (another child; sum {fmt_s(total)}):", flush=True)
    print(f"    {'LintContext':<36} {fmt_s(ck['context_s']):>9}  ({ck['groups']:,} endpoint groups)", flush=True)
    print(f"    {'compile (ctx.policy of every group)':<36} {fmt_s(ck['compile_s']):>9}", flush=True)
    for c in ck["checks"]:
        print(f"    {c['fn']:<36} {fmt_s(c['seconds']):>9}  {c['findings']:>5} findings ({', '.join(c['ids'])})",
              flush=True)
    targets: list[Target] = []
    is_large = size.name == "10k"
    targets.append((f"{label} wall time, warm parse cache", "< 10 s" if is_large else "", fmt_s(best["wall"]),
                    best["wall"] < TARGET_LINT_S if is_large else None))
    targets.append((f"{label} peak RSS", "", fmt_b(best["maxrss"]), None))
    targets.append((f"{label} wall time, cold parse cache", "", fmt_s(first["wall"]), None))
    return targets


def profile(args: argparse.Namespace, meta: dict[str, Any], d: Path) -> None:
    os.environ["CILIARY_CACHE_DIR"] = str(d / "cache")  # never the user's cache
    os.environ.pop("CILIARY_NO_CACHE", None)
    from ciliary.workflows.lint import lint

    ns = argparse.Namespace(cluster=meta["cluster"], policies=meta["policies"])
    res: dict[str, Any] = {}
    engine = _engine(ns, res)
    print(f"load {fmt_s(res['load_s'])}, engine build {fmt_s(res['build_s'])} (not profiled)")
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    result = lint(engine)
    prof.disable()
    print(f"lint() on {meta['params']['size']} under cProfile: {time.perf_counter() - t0:.2f} s "
          f"({len(result.findings)} findings)")
    print_profile(prof, args.sort, args.top)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="only the 1k-pod / 200-policy size")
    ap.add_argument("--seed", type=int, default=None, help="generator seed (default: bench/engine.py's)")
    ap.add_argument("--keep", metavar="DIR", help="write the generated files to DIR and keep them (reused if unchanged)")
    ap.add_argument("--repeat", type=int, default=3, help="warm-cache runs of the CLI (the best counts)")
    ap.add_argument("--profile", action="store_true", help="cProfile lint() in-process instead (10k, or 1k with --small)")
    ap.add_argument("--sort", default="both", choices=["cumulative", "tottime", "both"], help="--profile order")
    ap.add_argument("--top", type=int, default=25, help="rows of the --profile listing")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--cluster", help=argparse.SUPPRESS)
    ap.add_argument("--policies", help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    ap.add_argument("--size", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:  # a measured child: imports only what it measures
        print(json.dumps(WORKERS[args.worker](args)))
        return 0

    eng = import_bench("engine")
    seed = args.seed if args.seed is not None else eng.SEED
    sizes = [eng.SMALL] if args.small else [eng.SMALL, eng.LARGE]
    with workdir(args.keep, "ciliary-bench-lint-") as tmp:
        if args.profile:
            size = sizes[-1]
            d = tmp / size.name
            profile(args, prepare(d, size.name, seed), d)
            return 0
        print(f"ciliary lint benchmark (python {sys.version.split()[0]}, seed {seed}, {os.cpu_count()} CPUs); "
              f"files in {tmp}", flush=True)
        t_all = time.perf_counter()
        targets: list[Target] = []
        for size in sizes:
            d = tmp / size.name
            t0 = time.perf_counter()
            meta = prepare(d, size.name, seed)
            how = "reused the files of a previous run" if meta["reused"] else f"generated in {fmt_s(time.perf_counter() - t0)}"
            print(f"\n[{size.name}] {how}; measuring ...", flush=True)
            targets += measure(size, meta, d, args.repeat)
        print_targets(targets, target_width=7, value_width=10)
        print_wait4_note(t_all)
    return 0


if __name__ == "__main__":
    sys.exit(main())
