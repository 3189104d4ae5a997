"""Reading policy and snapshot files: the paths `read_documents` accepts."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ciliary.cli import app
from ciliary.model.files import read_documents


def test_read_documents_takes_one_path_on_its_own(tmp_path: Path) -> None:
    # A string is one path, not a list of one-character paths.
    f = tmp_path / "p.yaml"
    f.write_text("kind: CiliumNetworkPolicy\nmetadata: {name: a}\n---\nkind: NetworkPolicy\nmetadata: {name: b}\n")
    for given in (str(f), f, [str(f)], [f]):
        docs = read_documents(given)
        assert [d.value["metadata"]["name"] for d in docs] == ["a", "b"], given


def test_read_documents_walks_a_directory_in_order(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text("metadata: {name: b}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.json").write_text('{"metadata": {"name": "c"}}')
    (tmp_path / "a.yml").write_text("metadata: {name: a}\n")
    (tmp_path / "notes.txt").write_text("not read")
    docs = read_documents(tmp_path)
    assert [d.value["metadata"]["name"] for d in docs] == ["a", "b", "c"]


def _listing(d: Path) -> set[str]:
    return {p.name for p in d.iterdir()} if d.is_dir() else set()


def test_suite_caches_parsed_files_in_a_temporary_directory(
    ciliary_cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # conftest.py points CILIARY_CACHE_DIR at a fresh temporary directory for the session.
    assert os.environ["CILIARY_CACHE_DIR"] == str(ciliary_cache_dir)
    assert ciliary_cache_dir.is_relative_to(tempfile.gettempdir())
    assert "CILIARY_NO_CACHE" not in os.environ
    # The user's cache (where files.py would write without CILIARY_CACHE_DIR), listed before;
    # then HOME and XDG_CACHE_HOME point at an empty home, where nothing may appear either.
    user_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ciliary"
    user_before = _listing(user_cache)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    big = tmp_path / "many.yaml"
    big.write_text("---\n".join(
        f"apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: p{i}, namespace: shop}}\n"
        f"spec:\n  endpointSelector: {{matchLabels: {{app: a{i}}}}}\n"
        f"  ingress:\n  - fromEndpoints: [{{matchLabels: {{app: b{i}}}}}]\n"
        for i in range(200)
    ))
    assert big.stat().st_size > 16 * 1024
    session_before = _listing(ciliary_cache_dir)
    res = CliRunner().invoke(app, ["validate", str(big)])
    assert res.exit_code == 0, res.output
    assert "200 valid policies" in res.stdout

    new = _listing(ciliary_cache_dir) - session_before
    assert len(new) == 1 and next(iter(new)).endswith(".pickle"), new
    assert list(home.rglob("*")) == []
    # Other processes on this machine may use the user's cache meanwhile: what must not
    # appear there is this file's entry.
    assert not (_listing(user_cache) - user_before) & new
