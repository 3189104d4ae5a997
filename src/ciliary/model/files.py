"""Reading input paths (files or directories, recursively) into documents.

The only file I/O of the loaders; everything after this works on `Document`s.

Contracts:
* Directories are walked in sorted order, skipping names that start with a dot, so a tree
  always gives the same documents in the same order.
* Every unreadable or malformed file is reported in one `LoadError`; then no documents
  are returned.
* Parse cache: a file of 16 KiB or more is parsed once and kept, pickled, under
  `CILIARY_CACHE_DIR` (default `$XDG_CACHE_HOME/ciliary`), keyed by a hash of its bytes,
  its path as given and `CACHE_VERSION`. A hit gives the documents parsing would; bump
  `CACHE_VERSION` whenever `Document` or the parser changes. The cache directory is
  trusted (entries are unpickled); failures to read or write it are ignored, and
  `CILIARY_NO_CACHE=1` turns it off.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Iterable, Iterator
from pathlib import Path

from ciliary.model.errors import LoadError, ValidationIssue
from ciliary.model.source import Document, parse_text
from ciliary.process import gc_paused

SUFFIXES = (".yaml", ".yml", ".json")


def expand_paths(paths: Iterable[str | os.PathLike[str]] | str | os.PathLike[str]) -> Iterator[Path]:
    """Files as given; directories walked recursively for .yaml/.yml/.json, sorted. One
    path may be given on its own (a string is a path, not a list of characters)."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    for p in paths:
        path = Path(p)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for f in sorted(files):
                    if f.endswith(SUFFIXES) and not f.startswith("."):
                        yield Path(root) / f
        else:
            yield path


CACHE_VERSION = "1"
# Parsing YAML runs at about 1 MB/s; a parsed file is kept (pickled, keyed by a hash of
# its content, path and CACHE_VERSION) so that repeated commands on the same snapshot start
# fast. CILIARY_CACHE_DIR moves the cache; CILIARY_NO_CACHE=1 turns it off.
_MIN_CACHED_SIZE = 16 * 1024


def _cache_dir() -> Path | None:
    if os.environ.get("CILIARY_NO_CACHE"):
        return None
    base = os.environ.get("CILIARY_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "ciliary"
    )
    return Path(base)


def _parse_cached(data: bytes, text: str, name: str) -> list[Document]:
    cache = _cache_dir() if len(data) >= _MIN_CACHED_SIZE else None
    if cache is not None:
        digest = hashlib.blake2b(data + name.encode() + CACHE_VERSION.encode(), digest_size=20).hexdigest()
        entry = cache / f"{digest}.pickle"
        try:
            with entry.open("rb") as f:
                docs = pickle.load(f)
            if isinstance(docs, list):
                return docs
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            pass
    docs = parse_text(text, name)
    if cache is not None:
        try:
            cache.mkdir(parents=True, exist_ok=True)
            tmp = entry.with_suffix(f".{os.getpid()}.tmp")
            with tmp.open("wb") as f:
                pickle.dump(docs, f, protocol=pickle.HIGHEST_PROTOCOL)
            tmp.replace(entry)
        except OSError:
            pass
    return docs


def read_documents(paths: Iterable[str | os.PathLike[str]] | str | os.PathLike[str]) -> list[Document]:
    """All documents of all inputs; every unreadable or malformed file is reported at once."""
    docs: list[Document] = []
    issues: list[ValidationIssue] = []
    with gc_paused():  # parsing builds millions of acyclic objects
        for path in expand_paths(paths):
            name = str(path)
            try:
                data = path.read_bytes()
                text = data.decode("utf-8")
            except FileNotFoundError:
                issues.append(ValidationIssue(name, None, None, None, "", "no such file or directory"))
                continue
            except (OSError, UnicodeDecodeError) as e:
                issues.append(ValidationIssue(name, None, None, None, "", f"cannot read: {e}"))
                continue
            try:
                docs.extend(_parse_cached(data, text, name))
            except LoadError as e:
                issues.extend(e.issues)
    if issues:
        raise LoadError(issues)
    return docs
