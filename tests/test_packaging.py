"""environment.yml and pyproject.toml declare the same dependencies."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    name = re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0]
    return name.lower().replace("_", "-")


def _pyproject_names() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {_name(r) for r in project["dependencies"]}
    extras = project["optional-dependencies"]
    for extra in ("postgres", "notebook", "sweep", "alpaca", "ccxt"):
        names |= {_name(r) for r in extras.get(extra, []) if not r.startswith("alphaswarm")}
    return names


def _conda_names() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    names = set()
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            names.add(_name(dep))
        elif isinstance(dep, dict):
            names |= {_name(d) for d in dep.get("pip", [])}
    return names - {"python", "pip"}


def test_environment_mirrors_pyproject():
    assert _pyproject_names() == _conda_names()


def test_readme_opens_with_exactly_two_commands():
    text = (ROOT / "README.md").read_text()
    first_block = re.search(r"```(?:bash|sh)?\n(.*?)```", text, re.S)
    assert first_block is not None
    commands = [ln for ln in first_block.group(1).splitlines() if ln.strip()]
    assert len(commands) == 2, commands
    assert text.index("```") < text.index("\n## "), "the commands come first"
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1].split()[-1] in ci, ".ci/run calls the README's test command"
