"""Set-up files stay consistent: environment.yml lists what pyproject.toml declares."""
from __future__ import annotations

import re
import tomllib

import yaml

from conftest import REPO


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req.strip(), maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject():
    py = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in py["dependencies"]}
    for extra in ("notebooks", "dev"):
        declared |= {_name(r) for r in py["optional-dependencies"][extra]}
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {_name(r) for r in pip}
    assert listed == declared
    assert any(d == "python=3.11" for d in env["dependencies"] if isinstance(d, str))
    text = (REPO / "environment.yml").read_text()
    assert re.search(r"#.*paddlepaddle-gpu", text), "environment.yml needs the commented GPU variant"


def test_readme_opens_with_the_two_commands():
    head = (REPO / "README.md").read_text().split("\n## ", 1)[0]
    assert "make demo" in head and "make test" in head
