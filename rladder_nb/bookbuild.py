"""Build the rendered book with every chapter executed, caching executions per scale and code version.

Called by ``make book`` (``python -m rladder_nb build-book``). Jupyter Book's execution cache keys only
on a chapter's code cells, so this module keys the cache *folder* by the scale and by a hash of the
package (its code, zoo manifest and checkpoints): a change to ``rladder_nb/`` re-executes every chapter,
and a smoke run never fills the book-scale cache.
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

from . import settings

ROOT = Path(__file__).resolve().parents[1]


def package_hash(root: Path = ROOT) -> str:
    """A short hash of every ``.py``, ``.json`` and ``.pt`` file of the package."""
    h = hashlib.sha256()
    pkg = root / "rladder_nb"
    for path in sorted(p for p in pkg.rglob("*") if p.suffix in {".py", ".json", ".pt"} and p.is_file()):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def scaled_config(scale: str, root: Path = ROOT) -> Path:
    """Write ``_build/_config.<scale>.yml``: ``_config.yml`` with the cache folder for this scale and code."""
    text = (root / "_config.yml").read_text()
    cache = f"_build/.jupyter_cache/{scale}-{package_hash(root)}"
    new, n = re.subn(r"(?m)^(\s*cache\s*:).*$", rf"\1 {cache}", text)
    if n != 1:
        raise ValueError("_config.yml must have exactly one 'cache:' line under 'execute:'")
    out = root / "_build" / f"_config.{scale}.yml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(new)
    return out


def build(scale: str | None = None, root: Path = ROOT, extra_args=()) -> int:
    """Run ``jupyter-book build`` at ``scale``; return its exit code. Output: ``_build/html`` (book scale)."""
    scale = settings.get_scale(scale)
    cfg = scaled_config(scale, root)
    env = dict(os.environ, RLADDER_NB_SCALE=scale)
    env.pop("MPLBACKEND", None)  # kernels must use IPython's inline backend, or figures render as text
    if env.get("RLADDER_NB_DATA"):  # kernels run in each chapter's folder: a relative path would move
        env["RLADDER_NB_DATA"] = os.path.abspath(env["RLADDER_NB_DATA"])
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(root), "--config", str(cfg), "--toc",
           str(root / "_toc.yml"), "-W", "--keep-going"]
    if scale != "book":
        cmd += ["--path-output", str(root / "_build" / scale)]
    cmd += list(extra_args)
    settings.report(f"building the book at scale {scale!r} (cache {cfg.name}) ...")
    return subprocess.call(cmd, cwd=root, env=env)
