"""Execute a book chapter (a MyST Markdown notebook) in a fresh kernel at a given scale.

Used by ``tests/test_chapters.py``; also handy by hand::

    python tests/chapters.py book/part1/02_static_message_passing.md --scale smoke
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def toc_chapters() -> list[Path]:
    """Every chapter that ``_toc.yml`` lists, as paths relative to the repository root."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    found: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if key in node:
                    found.append(node[key])
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    paths = []
    for f in found:
        for ext in (".md", ".ipynb"):
            p = ROOT / (f + ext if not f.endswith(ext) else f)
            if p.exists():
                paths.append(p.relative_to(ROOT))
                break
    return paths


def is_notebook(path: Path) -> bool:
    """True when the Markdown file carries a jupytext header (i.e. it has code to run)."""
    text = (ROOT / path).read_text()
    return text.startswith("---") and "jupytext:" in text.split("---", 2)[1]


def run_chapter(path, scale: str = "smoke", timeout: int = 600):
    """Run every code cell of ``path`` at ``scale``; return (notebook, seconds). A cell error raises."""
    import jupytext
    from nbclient import NotebookClient

    from rladder_nb import kernelpoll

    kernelpoll.install()  # a missed wake-up costs a second, not the cell's time limit (see that module)
    path = ROOT / path
    nb = jupytext.read(path)
    env_before = dict(os.environ)
    os.environ["RLADDER_NB_SCALE"] = scale
    os.environ.pop("MPLBACKEND", None)  # the kernel must use the inline backend, as in the book
    from nbclient.exceptions import DeadKernelError

    try:
        for attempt in (1, 2):
            client = NotebookClient(nb, timeout=timeout, kernel_name="python3", startup_timeout=180,
                                    resources={"metadata": {"path": str(path.parent)}})
            start = time.perf_counter()
            try:
                client.execute()
            except DeadKernelError as error:
                # the kernel process died (seen rarely on a busy 2-core machine, never reproduced alone):
                # run the whole chapter once more in a fresh kernel, and say so; a cell's own error
                # (CellExecutionError) is never retried
                if attempt == 2:
                    raise
                print(f"{path.name}: the kernel died ({error}); running the chapter again in a fresh kernel",
                      file=sys.stderr)
                nb = jupytext.read(path)
                continue
            return nb, time.perf_counter() - start
    finally:
        os.environ.clear()
        os.environ.update(env_before)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapter")
    parser.add_argument("--scale", default="smoke")
    args = parser.parse_args(argv)
    _, seconds = run_chapter(args.chapter, args.scale)
    print(f"{args.chapter}: ran at scale {args.scale} in {seconds:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
