"""environment.yml, requirements.txt and pyproject.toml agree; the README's commands are what CI runs."""
import importlib.util
import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lines):
    pins = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        name, _, version = line.partition("==")
        assert version, f"not an exact pin: {line!r}"
        pins[_norm(name)] = version
    return pins


def _lock():
    return _pins((ROOT / "requirements.txt").read_text().splitlines())


def _conda_pins():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return env, _pins(pip)


def _pyproject_requirements():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"])
    for extra in meta["optional-dependencies"].values():
        reqs += extra
    return [Requirement(r) for r in reqs]


def test_environment_yml_pins_match_the_lock_file():
    lock = _lock()
    _, conda = _conda_pins()
    for name, version in conda.items():
        assert lock.get(name) == version, f"environment.yml pins {name}=={version}, requirements.txt has {lock.get(name)}"


def test_every_declared_dependency_is_pinned_in_both_and_satisfies_its_bound():
    lock = _lock()
    _, conda = _conda_pins()
    for req in _pyproject_requirements():
        name = _norm(req.name)
        assert name in lock, f"{name} is declared in pyproject.toml but not pinned in requirements.txt"
        assert name in conda, f"{name} is declared in pyproject.toml but missing from environment.yml"
        assert req.specifier.contains(Version(lock[name]), prereleases=True), \
            f"requirements.txt pins {name}=={lock[name]}, outside pyproject's {req.specifier}"


def test_python_versions_agree():
    env, _ = _conda_pins()
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    from packaging.specifiers import SpecifierSet
    assert Version(python.split("=")[-1]) in SpecifierSet(meta["requires-python"])


def test_jupyter_book_is_pinned_below_2():
    assert Version(_lock()["jupyter-book"]) < Version("2")


def test_ci_runs_the_readmes_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make book" in readme
    assert re.search(r"^make test$", ci, re.M)


def _book_extensions():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    return cfg["sphinx"]["extra_extensions"]


def test_every_book_extension_is_installed():
    for name in _book_extensions():
        assert importlib.util.find_spec(name) is not None, f"_config.yml loads Sphinx extension {name!r}, not installed"


def test_the_book_serves_mathjax_itself():
    """Equations render without a network: MathJax is copied into the book's _static, not read from a CDN."""
    assert "sphinx-mathjax-offline" in _book_extensions()
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    assert (Path(spec.origin).parent / "static" / "mathjax" / "tex-chtml.js").is_file()
