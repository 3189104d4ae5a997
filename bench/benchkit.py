"""Helpers shared by the benchmarks in bench/ (engine, replay, generate, lint and observe; l7,
an in-process rate loop, needs none of them).

The benches are standalone scripts (`python bench/X.py`, and `make bench` runs every
bench/*.py), each measuring one part of ciliary in fresh child processes and printing the
figures next to the issue's targets. They used to carry their own copies of the same
plumbing; this module holds the one version of each piece that is the same in all of them,
so that a fix (the darwin ru_maxrss unit, the wait4 measurement, a report format) is made
once. What differs between benches (their workers, their rows, their targets) stays in the
bench.

What it offers:

* `import_bench(name)`: another bench (bench/NAME.py) imported by path, as module
  `bench_NAME` (the benches share generators: replay and lint use engine's cluster
  generator, generate uses replay's flow files);
* `cli()`: the `ciliary` executable next to this interpreter (the venv's), else on PATH;
* `maxrss()`: this process's peak RSS in bytes (ru_maxrss is KiB on Linux, bytes on macOS);
* `run_measured(cmd)`: run a child process, its wall time, exit status and peak RSS (wait4);
  `run_worker(script, worker, ...)`: a bench's own `--worker` child, its JSON result;
* `plain_parse(path)`: the baseline of the flow benches, `orjson.loads` of every line;
* `GCTimer`: time spent in the cyclic garbage collector (gc.callbacks);
* `fmt_s`, `fmt_b`: seconds and bytes as the reports print them; `met(ok)`: a target's mark;
* `print_profile(prof, sort, top)`: the top functions of a cProfile run (pstats);
* `print_targets(targets, ...)`: the final `== targets` table; `print_wait4_note(t0)`: the
  note under it of the benches measured with `run_measured`;
* `workdir(keep, prefix)`: the directory of the generated files, a temp dir removed at the
  end unless `--keep DIR` names one.

The benches import it as `benchkit` with bench/ put first on sys.path (a script's own
directory is there already when run as `python bench/X.py`; the explicit entry also covers
a bench imported by path from elsewhere). Run as a script (as `make bench` does), it
measures nothing.
"""

from __future__ import annotations

import gc
import importlib.util
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import cProfile

HERE = Path(__file__).resolve().parent  # bench/
MiB = 1024 * 1024

# A row of the targets table: (what, target, value, verdict); a verdict of None marks a
# figure printed next to the targets but not one of them.
Target = tuple[str, str, str, bool | None]


# ----------------------------------------------------------------------------------------
# Processes


def import_bench(name: str) -> ModuleType:
    """bench/`name`.py imported by path as module `bench_<name>` (once per process)."""
    mod_name = f"bench_{name}"
    mod = sys.modules.get(mod_name)
    if mod is not None:
        return mod
    spec = importlib.util.spec_from_file_location(mod_name, HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = mod  # dataclasses need the module registered
    spec.loader.exec_module(mod)
    return mod


def cli() -> str:
    """The `ciliary` executable: the one next to this interpreter (the venv's), else PATH's."""
    exe = Path(sys.executable).parent / "ciliary"
    return str(exe) if exe.exists() else (shutil.which("ciliary") or "ciliary")


def _rss_bytes(ru_maxrss: int) -> int:
    return ru_maxrss if sys.platform == "darwin" else ru_maxrss * 1024  # Linux: KiB


def maxrss() -> int:
    """This process's peak RSS so far, in bytes. A child forked from this process starts
    with this process's memory, so the number is a floor of every child's ru_maxrss."""
    return _rss_bytes(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def run_measured(cmd: list[str], stdout: Any = subprocess.PIPE,
                 env: dict[str, str] | None = None) -> tuple[str, str, float, int, int]:
    """Run `cmd`; (stdout, stderr, wall seconds, exit status, ru_maxrss bytes of that process).

    stdout is captured unless `stdout` is given (a file object, e.g. /dev/null); stderr is
    always captured. Both go through temp files, not pipes, so that nothing in this process
    reads while the child runs. The peak RSS is the child's own, from wait4."""
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out if stdout is subprocess.PIPE else stdout, stderr=err, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return out.read().decode(), err.read().decode(), wall, p.returncode, _rss_bytes(ru.ru_maxrss)


def run_worker(script: str, worker: str, args: Sequence[str] = (),
               env: dict[str, str] | None = None) -> tuple[dict[str, Any], float, int]:
    """Run `python SCRIPT --worker WORKER ARGS...` measured (see `run_measured`); (the JSON
    object on its last line of stdout, wall seconds, peak RSS bytes). A failed worker raises
    RuntimeError with the end of its stderr."""
    out, err, wall, rc, rss = run_measured([sys.executable, script, "--worker", worker, *args], env=env)
    if rc != 0:
        raise RuntimeError(f"{worker} worker failed (exit {rc}):\n{err[-3000:]}")
    res: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return res, wall, rss


# ----------------------------------------------------------------------------------------
# Measurements


def plain_parse(path: str) -> tuple[int, float]:
    """The flow benches' baseline: `orjson.loads` of every line of `path`; (lines, seconds)."""
    import orjson

    loads = orjson.loads
    n = 0
    t0 = time.perf_counter()
    with open(path, "rb", buffering=1 << 20) as f:
        for line in f:
            loads(line)
            n += 1
    return n, time.perf_counter() - t0


class GCTimer:
    """Cumulative time spent in the cyclic garbage collector (gc.callbacks) from creation on;
    `full` counts the full (generation 2) collections."""

    def __init__(self) -> None:
        self.total = 0.0
        self.full = 0
        self._start = 0.0
        gc.callbacks.append(self._cb)

    def _cb(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._start
            self.full += info["generation"] == 2


# ----------------------------------------------------------------------------------------
# Report


def fmt_s(x: float) -> str:
    """Seconds: whole milliseconds below 1 s, else seconds with 2 decimals."""
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"


def fmt_b(x: float, kib: bool = False) -> str:
    """Bytes: whole MiB (thousands separated), GiB with 2 decimals from 1 GiB on; with `kib`,
    whole KiB below 1 MiB."""
    if kib and x < MiB:
        return f"{x / 1024:,.0f} KiB"
    return f"{x / MiB:,.0f} MiB" if x < 1024 * MiB else f"{x / 1024 / MiB:.2f} GiB"


def met(ok: bool | None) -> str:
    """A targets-table verdict: met, NOT MET, or (figure) for a row that is not a target."""
    return "(figure)" if ok is None else "met" if ok else "NOT MET"


def print_profile(prof: cProfile.Profile, sort: str, top: int) -> None:
    """The `top` functions of `prof` by `sort` (cumulative, tottime, or both: one listing
    each), each under a `-- top N by ORDER` line, without pstats' preamble."""
    import pstats  # here: a measured child that imports benchkit need not load it

    for order in (["cumulative", "tottime"] if sort == "both" else [sort]):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats(order).print_stats(top)
        print(f"-- top {top} by {order}")
        print(buf.getvalue().split("\n\n", 1)[-1].strip("\n"), "\n")


def print_targets(targets: Sequence[Target], target_width: int = 7, value_width: int = 40) -> None:
    """The final `== targets` table: one row per target, names padded to the longest, the
    target right-aligned in `target_width`, the value left-aligned in `value_width`, then
    the verdict (`met`)."""
    print("\n== targets")
    width = max(len(t[0]) for t in targets)
    for name, target, value, ok in targets:
        print(f"  {name.ljust(width)}  {target:>{target_width}}  {value:<{value_width}} {met(ok)}")


def print_wait4_note(t_start: float) -> None:
    """The closing note of a bench whose figures come from `run_measured` children: what
    they include, this process's own peak RSS (a floor of every child's, which starts as a
    fork of it) and the bench's own time since `t_start` (a time.perf_counter())."""
    print(f"\n(wall time and peak RSS (wait4) of each child process, start-up included; this process's "
          f"own peak, {fmt_b(maxrss())}, is a floor of every child's; the bench took "
          f"{fmt_s(time.perf_counter() - t_start)})")


@contextmanager
def workdir(keep: str | None, prefix: str) -> Iterator[Path]:
    """The directory for a bench's generated files: `keep` (a `--keep DIR`, created if need
    be and left in place, so that a later run can reuse its files), else a fresh temp dir
    named `prefix`..., removed when the block ends, however it ends."""
    tmp = Path(keep) if keep else Path(tempfile.mkdtemp(prefix=prefix))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        yield tmp
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":  # `make bench` runs every bench/*.py
    print("bench/benchkit.py: the benches' shared helpers; nothing to measure")
