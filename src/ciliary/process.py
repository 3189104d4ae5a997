"""Process-wide settings of ciliary's command-line runs: the one place that tunes the
cyclic garbage collector.

A ciliary command is a short batch process that builds many long-lived, acyclic objects
(parsed policies, the engine, policy maps, connection tables) and streams millions of
short-lived ones (flows). CPython's cyclic collector would rescan the long-lived ones over
and over for garbage that reference counting already frees, so the CLI moves what exists
at start-up out of its sight and runs young collections rarely. Benchmarks of in-process
loops call the same function, so that they measure ciliary as its commands run.

Rules: nothing else in `ciliary` touches `gc`. These settings change time and memory only,
never a result; library callers need not use them. `tune_gc_for_batch` and `streaming` are
for the command line (and benchmarks); `serving` for a long-running loop (the agent);
`gc_paused` may be used by any layer (the policy file reader does).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# Objects allocated (net) between young collections; the default (700) suits programs
# that create reference cycles, which ciliary's data does not.
YOUNG_THRESHOLD = 200_000


def tune_gc_for_batch() -> None:
    """Freeze what is allocated so far and collect rarely (call again after a big build
    to freeze that too)."""
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 50, 100)


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic collector off while a block builds many acyclic objects (parsing)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def streaming() -> Iterator[None]:
    """Pause the cyclic collector while flows stream through a built engine.

    Replay and diff create no reference cycles per flow: every flow, verdict and report
    entry is freed by reference counting or kept on purpose (connections, caches). Young
    collections would only rescan those tables; the replay benchmark reports the memory a
    stream adds, which is where a cycle leak would show.
    """
    gc.freeze()
    try:
        with gc_paused():
            yield
    finally:
        # What survived the stream is kept on purpose (connection table, caches, report):
        # freeze it too, or the first allocation after re-enabling would rescan all of it.
        gc.freeze()


# Young-collection threshold while a long-running loop (the agent reading events) runs.
SERVING_YOUNG_THRESHOLD = 20_000


@contextmanager
def serving() -> Iterator[Callable[[], None]]:
    """A long-running loop over a built engine: what exists now is frozen (out of full
    collections, which would walk the engine many times a second at a high event rate)
    and young collections run every SERVING_YOUNG_THRESHOLD allocations. Yields
    `refreeze()`, to call once a new engine replaced the old (collect the old one's
    cycles, freeze the new). Undone on exit."""
    thresholds = gc.get_threshold()
    gc.set_threshold(max(SERVING_YOUNG_THRESHOLD, thresholds[0]), *thresholds[1:])
    gc.freeze()

    def refreeze() -> None:
        gc.unfreeze()
        gc.collect()
        gc.freeze()

    try:
        yield refreeze
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
