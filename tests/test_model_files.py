"""Reading policy and snapshot files: the paths `read_documents` accepts."""

from __future__ import annotations

from pathlib import Path

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
