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
    for extra in ("notebooks", "ray", "runtimes", "dev"):
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


def test_oracle_extra_is_installed_without_its_dependencies():
    """The test oracle's pins conflict with Paddle 3: the Makefile and environment.yml install it --no-deps."""
    py = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    oracle = py["optional-dependencies"]["oracle"]
    make = (REPO / "Makefile").read_text()
    pins = re.findall(r"^ORACLE\s*:=\s*(.+)$", make, re.M)
    assert [p.strip() for p in pins] == [" ".join(oracle)]
    assert "--no-deps '$(ORACLE)'" in make
    env = (REPO / "environment.yml").read_text()
    for req in oracle:
        assert re.search(rf"#.*pip install --no-deps {re.escape(req)}", env), req
        assert req not in yaml.safe_load(env)["dependencies"][-1]["pip"]


def test_make_installs_the_extras_the_suite_needs():
    """``make test`` on a fresh machine installs what the tests use: notebooks, ray and dev."""
    extras = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    m = re.search(r"pip install -q -e '\.\[([a-z,]+)\]'", (REPO / "Makefile").read_text())
    assert m and {"notebooks", "ray", "runtimes", "dev"} <= set(m.group(1).split(",")) <= extras


def test_one_exception_tree_every_error_at_the_top_level():
    """Every exception clsviz raises is a ClsvizError, importable as ``clsviz.<Name>``."""
    import inspect as _inspect

    import clsviz
    from clsviz import errors

    classes = {n: c for n, c in vars(errors).items() if _inspect.isclass(c) and issubclass(c, Exception)
               and c.__module__ == errors.__name__}
    assert classes and all(issubclass(c, clsviz.ClsvizError) for c in classes.values())
    missing = sorted(n for n in classes if getattr(clsviz, n, None) is not classes[n] or n not in clsviz.__all__)
    assert not missing, missing
