"""Build the rendered book with every chapter executed, caching executions per scale and code version.

Called by ``make book`` (``python -m rladder_nb build-book``). Jupyter Book's execution cache keys only
on a chapter's code cells, so this module keys the cache *folder* by the scale and by a hash of the
package (its code, zoo manifest and checkpoints): a change to ``rladder_nb/`` re-executes every chapter,
and a smoke run never fills the book-scale cache.

The build's notebook client waits for kernel messages in short slices (:mod:`rladder_nb.kernelpoll`):
before that, a chapter that runs in seconds now and then stalled, with no CPU use, for as long as the
per-cell time limit. A *watchdog* remains as a second guard, against a kernel that really hangs.
When the build prints nothing for ``RLADDER_NB_BUILD_STALL_SECONDS`` (default
:data:`STALL_SECONDS`; 0 turns the watchdog off, as does ``RLADDER_NB_RETRAIN=1``, since a chapter that
trains may be silent for long), the build is stopped and started again, at most :data:`RESTARTS` times.
Chapters executed before the stall are in the execution cache, so a restart runs only the rest.
"""
from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from . import settings

ROOT = Path(__file__).resolve().parents[1]
STALL_SECONDS = 900   # no output for this long: the build is stuck (a book-scale chapter runs in < 5 minutes)
RESTARTS = 2


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
    # kernelpoll: the build's notebook client waits for kernel messages in short slices (see that module)
    launch = "from rladder_nb import kernelpoll; kernelpoll.install(); from jupyter_book.cli.main import main; main()"
    cmd = [sys.executable, "-c", launch, "build", str(root), "--config", str(cfg), "--toc", str(root / "_toc.yml"),
           "-W", "--keep-going"]
    if scale != "book":
        cmd += ["--path-output", str(root / "_build" / scale)]
    cmd += list(extra_args)
    settings.report(f"building the book at scale {scale!r} (cache {cfg.name}) ...")
    return run_with_watchdog(cmd, root, env, stall_seconds=stall_seconds_from_env())


def stall_seconds_from_env() -> float:
    """The watchdog's silence limit: ``RLADDER_NB_BUILD_STALL_SECONDS``, or 0 (off) when retraining."""
    if settings.retrain_requested():
        return 0.0
    raw = os.environ.get("RLADDER_NB_BUILD_STALL_SECONDS", "").strip()
    if not raw:
        return float(STALL_SECONDS)
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"RLADDER_NB_BUILD_STALL_SECONDS must be a number of seconds (0: no watchdog), got {raw!r}")
    if value < 0:
        raise ValueError(f"RLADDER_NB_BUILD_STALL_SECONDS must be >= 0, got {raw!r}")
    return value


def run_with_watchdog(cmd, cwd, env=None, stall_seconds: float = STALL_SECONDS, restarts: int = RESTARTS,
                      out=None) -> int:
    """Run ``cmd``, echoing its output to ``out`` (default: stdout); return its exit code.

    If it prints nothing for ``stall_seconds`` (0: never), kill its process group and run it again, at
    most ``restarts`` times; after the last restart a stall returns exit code 124.
    """
    out = out or sys.stdout
    for attempt in range(restarts + 1):
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        last = [time.monotonic()]

        def pump():
            for line in iter(proc.stdout.readline, b""):
                last[0] = time.monotonic()
                out.write(line.decode(errors="replace"))
                out.flush()

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        stalled = False
        try:
            while proc.poll() is None:
                time.sleep(0.2)
                if stall_seconds and time.monotonic() - last[0] > stall_seconds:
                    stalled = True
                    _kill_group(proc)
                    break
        except BaseException:          # Ctrl-C: the build runs in its own session, so stop it too
            _kill_group(proc)
            raise
        reader.join(timeout=5)
        if not stalled:
            return proc.returncode
        what = "starting it again" if attempt < restarts else "giving up"
        settings.report(f"the book build printed nothing for {stall_seconds:.0f} s (a hung kernel?): stopped it, "
                        f"{what} (restart {attempt + 1} of {restarts}; executed chapters are cached)")
    return 124


def _kill_group(proc):
    """Stop ``proc`` and everything in its process group (kernels exit when their parent does)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue
