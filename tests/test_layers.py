"""The package's layers: data flows one way (files -> model -> policy map -> verdicts ->
flows -> reports), so a module imports only from its own layer or the ones below. Every
import counts, the ones inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parent.parent / "src" / "ciliary"

# Lowest first. Modules at the package root are utilities with no ciliary imports, or the
# command line at the top; the edges (datapath, proxy, ui, store) sit above the workflows.
LAYERS: dict[str, int] = {
    "__init__": 0, "cache": 0, "re2util": 0, "process": 0,
    "model": 1,
    "identity": 2,
    "cluster": 3,
    "policy": 4,
    "l7": 5,
    "verdict": 6,
    "flows": 7,
    "workflows": 8,
    "datapath": 9, "proxy": 9, "ui": 9, "store": 9,
    "cli": 10,
}


def _unit(module: str) -> str:
    """`ciliary.policy.engine` -> `policy`; `ciliary.cli` -> `cli`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_of(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    return ".".join(rel.parts)


def _imports(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, imported ciliary module) of every import in `source`, relative ones resolved."""
    tree = ast.parse(source)
    here = module.split(".")
    package = here if is_package else here[:-1]
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "ciliary"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] == "ciliary":
                out.append((node.lineno, base))
    return out


MODULES = sorted(SRC.rglob("*.py"))


def test_every_package_has_a_layer() -> None:
    units = {_unit(_module_of(p)) for p in MODULES}
    assert units <= set(LAYERS), f"give these a layer: {sorted(units - set(LAYERS))}"


def _upward(source: str, module: str, is_package: bool = False) -> list[str]:
    mine = LAYERS[_unit(module)]
    return [
        f"{module}:{line} imports {target}"
        for line, target in _imports(source, module, is_package)
        if LAYERS[_unit(target)] > mine
    ]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_upward_import(path: Path) -> None:
    upward = _upward(path.read_text(), _module_of(path), path.name == "__init__.py")
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_the_walk_sees_upward_imports() -> None:
    # The check itself: imports inside functions and relative imports are seen.
    probe = (
        "from ciliary.identity.labels import LabelSet\n"
        "def f():\n    from ciliary.verdict.decide import decide\n"
        "    import ciliary.flows.codec\n    from ..l7 import dns\n"
    )
    assert _upward(probe, "ciliary.policy.probe") == [
        "ciliary.policy.probe:3 imports ciliary.verdict.decide",
        "ciliary.policy.probe:4 imports ciliary.flows.codec",
        "ciliary.policy.probe:5 imports ciliary.l7",
    ]
    assert _upward(probe, "ciliary.workflows.probe") == []
