"""docs/ci.md and .pre-commit-hooks.yaml run real commands: every `ciliary` command of the
GitHub Actions and GitLab CI recipes, and every hook, is run here on examples/pci (the
recipes' variables pointed at it), and must do its job (never a usage error)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ciliary.cli import app

ROOT = Path(__file__).parent.parent
PCI = ROOT / "examples" / "pci"
VARS = {
    "CLUSTER": str(PCI / "cluster.yaml"),
    "POLICIES": str(PCI / "policies"),
    "EXPECT": str(PCI / "expectations.yaml"),
    "FLOWS": str(ROOT / "examples" / "seed" / "flows.json"),
}
runner = CliRunner()


def _recipes() -> dict[str, dict[str, object]]:
    text = (ROOT / "docs" / "ci.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    docs = [yaml.safe_load(b) for b in blocks]
    github = next(d for d in docs if isinstance(d, dict) and "jobs" in d)
    gitlab = next(d for d in docs if isinstance(d, dict) and "stages" in d)
    return {"github": github, "gitlab": gitlab}


def _shell_lines(recipe: dict[str, object]) -> list[str]:
    lines: list[str] = []
    if "jobs" in recipe:
        for job in recipe["jobs"].values():  # type: ignore[attr-defined]
            for step in job["steps"]:
                lines += str(step.get("run", "")).splitlines()
    else:
        for job in recipe.values():
            if isinstance(job, dict) and "script" in job:
                lines += [str(s) for s in job["script"]]
    return [ln.strip() for ln in lines if ln.strip().startswith("ciliary ")]


def _argv(line: str, tmp: Path) -> list[str]:
    line = line.split("||")[0]
    for k, v in VARS.items():
        line = line.replace(f'"base/${k}"', v).replace(f'"${k}"', v)
    words = shlex.split(line)
    argv: list[str] = []
    it = iter(words[1:])
    for w in it:
        if w == ">":
            next(it)  # stdout redirection: the runner captures it
            continue
        argv.append(str(tmp / w) if w in ("report.xml",) else w)
    return argv


COMMANDS = [(name, line) for name, recipe in _recipes().items() for line in _shell_lines(recipe)]


def test_the_recipes_run_all_four_stages() -> None:
    for name in ("github", "gitlab"):
        verbs = {shlex.split(line)[1] for n, line in COMMANDS if n == name}
        assert verbs == {"validate", "lint", "test", "diff"}, name
    assert any("-o sarif" in line for _, line in COMMANDS)
    assert any("--junit" in line for _, line in COMMANDS)
    assert any("-o md" in line for _, line in COMMANDS)


@pytest.mark.parametrize(("name", "line"), COMMANDS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(COMMANDS)])
def test_recipe_command_runs(name: str, line: str, tmp_path: Path) -> None:
    argv = _argv(line, tmp_path)
    res = runner.invoke(app, argv)
    # validate and test must pass on the example; lint may report its warning; diff of a
    # set against itself changes nothing.
    assert res.exit_code == 0, (argv, res.stdout, res.stderr)
    if "--junit" in argv:
        assert (tmp_path / "report.xml").read_text().startswith("<?xml")
    if "sarif" in argv:
        assert '"version": "2.1.0"' in res.stdout


def test_pre_commit_hooks_run() -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert [h["id"] for h in hooks] == ["ciliary-validate", "ciliary-lint"]
    paths = {"policies/": VARS["POLICIES"], "cluster/snapshot.yaml": VARS["CLUSTER"]}
    for h in hooks:
        assert {"id", "name", "entry", "language"} <= set(h) and h["language"] == "python"
        argv = shlex.split(h["entry"])[1:] + [paths.get(a, a) for a in h["args"]]
        res = runner.invoke(app, argv)
        assert res.exit_code == 0, (h["id"], res.stdout, res.stderr)
        assert re.search(h["files"], "policies/x.yaml") and not re.search(h["files"], "README.md")
