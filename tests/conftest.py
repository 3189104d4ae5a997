"""Session-wide setup: the suite never touches the user's parsed-file cache.

`ciliary.model.files` keeps parsed YAML/JSON files of 16 KiB or more in
`CILIARY_CACHE_DIR` (default `$XDG_CACHE_HOME/ciliary` or `~/.cache/ciliary`). For the whole
session that variable points at a fresh temporary directory, set in `pytest_configure`, that
is before any test module is imported or any file read, and inherited by subprocesses.
`CILIARY_NO_CACHE` is unset so the suite runs the same way whatever the caller's environment.
Both are restored, and the directory removed, in `pytest_unconfigure`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_CACHE_DIR = pytest.StashKey[Path]()
_SAVED_ENV = pytest.StashKey[dict[str, str | None]]()
_VARS = ("CILIARY_CACHE_DIR", "CILIARY_NO_CACHE")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SAVED_ENV] = {name: os.environ.get(name) for name in _VARS}
    cache = Path(tempfile.mkdtemp(prefix="ciliary-test-cache-"))
    config.stash[_CACHE_DIR] = cache
    os.environ["CILIARY_CACHE_DIR"] = str(cache)
    os.environ.pop("CILIARY_NO_CACHE", None)


def pytest_unconfigure(config: pytest.Config) -> None:
    for name, value in config.stash.get(_SAVED_ENV, {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    cache = config.stash.get(_CACHE_DIR, None)
    if cache is not None:
        shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture(scope="session")
def ciliary_cache_dir(pytestconfig: pytest.Config) -> Path:
    """The session's parsed-file cache directory (what CILIARY_CACHE_DIR points at)."""
    return pytestconfig.stash[_CACHE_DIR]
