"""The zoo: recorded training runs, so that the book loads models instead of retraining them.

Introduced in *Introduction* (``book/part1/01_introduction.md``).

* ``manifest.json`` maps an entry name to ``{experiment, model, scale, seed, metrics, checkpoint,
  sha256, config, command, code_version, wall_time_s, hardware, created}`` (+ ``dataset`` where the
  experiment has several). Checkpoints live in ``checkpoints/`` beside it.
* :func:`load_or_train` returns a recorded model (its checksum verified) or trains one: at ``smoke``
  scale always, at any scale when ``RLADDER_NB_RETRAIN=1`` or when no entry exists.
* :func:`record` (used by ``python -m rladder_nb train ... --record``) writes a checkpoint and its
  manifest entry atomically. ``tests/test_zoo.py`` re-evaluates every entry against its metrics.
* ``studies/NAME.json`` holds a *study*: diagnostic runs whose checkpoints were not kept (a lent GPU's
  runs, say), each entry as ``train --json`` writes it, with the study's ``command``, ``how``, ``data`` and
  ``hardware``. :func:`load_study` reads one (checked), :func:`study_entries` names its entries like the
  manifest's, so :func:`values_by_seed` and :func:`find_entries` work on it.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from .. import settings
from ..experiments import check_model, get_experiment
from ..training import atomic_write_bytes, load_checkpoint, save_checkpoint, sha256_of

ZOO_DIR = Path(__file__).resolve().parent
MANIFEST = ZOO_DIR / "manifest.json"
STUDIES_DIR = ZOO_DIR / "studies"
STUDY_FIELDS = ("name", "experiment", "scale", "summary", "command", "how", "data", "hardware", "created",
                "entries")
STUDY_ENTRY_FIELDS = ("experiment", "model", "scale", "seed", "metrics", "config", "steps", "wall_time_s",
                      "code_version")
REQUIRED_FIELDS = ("experiment", "model", "scale", "seed", "metrics", "checkpoint", "sha256", "command",
                   "code_version", "wall_time_s", "hardware", "created")


def entry_name(experiment: str, model: str, scale: str, seed: int = 0, dataset: str | None = None) -> str:
    """The manifest key of a run, e.g. ``toy_static/rladder/book/seed0``."""
    parts = [experiment] + ([dataset] if dataset else []) + [model, settings.check_scale(scale), f"seed{seed}"]
    return "/".join(parts)


def _read_json_object(path: Path, what: str, shape: str) -> dict:
    """The JSON object in ``path``; ``ValueError`` naming ``what`` if it is not valid JSON or not an object."""
    try:
        value = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} is not valid JSON: {err}") from err
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object {shape}")
    return value


def load_manifest(path=MANIFEST) -> dict:
    """The manifest as a dict (empty when there is no file); a malformed file raises ``ValueError``."""
    path = Path(path)
    if not path.exists():
        return {}
    manifest = _read_json_object(path, f"zoo manifest {path}", "mapping entry names to entries")
    for name, entry in manifest.items():
        missing = [f for f in REQUIRED_FIELDS if f not in entry]
        if missing:
            raise ValueError(f"zoo entry {name!r} lacks the fields {missing}")
    return manifest


def list_studies(folder=STUDIES_DIR) -> list:
    """The names of the recorded studies (files ``studies/NAME.json``)."""
    return sorted(p.stem for p in Path(folder).glob("*.json"))


def load_study(name: str, folder=STUDIES_DIR) -> dict:
    """The study ``name`` (see the module docstring), its fields and every entry's checked.

    An unknown name raises ``KeyError`` listing the recorded ones; a malformed file ``ValueError`` saying
    what is missing.
    """
    path = Path(folder) / f"{name}.json"
    if not path.is_file():
        raise KeyError(f"no study {name!r} in {folder}; recorded studies: {list_studies(folder) or 'none'}")
    study = _read_json_object(path, f"study file {path}", f"with the fields {list(STUDY_FIELDS)}")
    missing = [f for f in STUDY_FIELDS if f not in study]
    if missing:
        raise ValueError(f"study file {path} lacks the fields {missing}")
    if not isinstance(study["entries"], list) or not study["entries"]:
        raise ValueError(f"study file {path}: 'entries' must be a non-empty list of run entries")
    for i, entry in enumerate(study["entries"]):
        missing = [f for f in STUDY_ENTRY_FIELDS if not isinstance(entry, dict) or f not in entry]
        if missing:
            raise ValueError(f"study file {path}: entry {i} lacks the fields {missing}")
        if entry.get("finished") is False or entry["metrics"] is None:
            raise ValueError(f"study file {path}: entry {i} ({entry['model']}, seed {entry['seed']}) is an "
                             "unfinished run without metrics")
    return study


def study_entries(study: dict) -> dict:
    """A study's entries by manifest-style name (``EXPERIMENT[/DATASET]/MODEL/SCALE/seedN``), for
    :func:`find_entries` and :func:`values_by_seed` (``manifest=study_entries(study)``)."""
    named = {}
    for entry in study["entries"]:
        name = entry_name(entry["experiment"], entry["model"], entry["scale"], entry["seed"], entry.get("dataset"))
        if name in named:
            raise ValueError(f"study {study.get('name')!r} holds two entries named {name!r}")
        named[name] = entry
    return named


def find_entries(experiment=None, model=None, scale=None, dataset=None, manifest=None) -> dict:
    """The entries matching every filter that is given."""
    manifest = load_manifest() if manifest is None else manifest
    want = {"experiment": experiment, "model": model, "scale": scale, "dataset": dataset}
    return {k: e for k, e in manifest.items() if all(v is None or e.get(f) == v for f, v in want.items())}


def values_by_seed(experiment: str, metric: str, scale: str, dataset=None, manifest=None) -> dict:
    """``{model: {seed: value}}``: ``metric`` of every recorded run of ``experiment`` at ``scale`` (in
    setting ``dataset``, where the experiment has several). Runs whose metrics lack it are left out; a
    metric with one value per iteration gives its last."""
    values: dict = {}
    for entry in find_entries(experiment=experiment, scale=scale, dataset=dataset, manifest=manifest).values():
        value = (entry.get("metrics") or {}).get(metric)
        if isinstance(value, list):
            value = value[-1] if value else None
        if value is not None:
            values.setdefault(entry["model"], {})[int(entry["seed"])] = float(value)
    return {model: dict(sorted(per.items())) for model, per in sorted(values.items())}


def code_version(root=None) -> str:
    """``git describe`` of the code, ``-dirty`` if a tracked file other than the zoo's manifest and
    checkpoints has changed, else the package version. Those are left out of the check: recording an entry
    writes them before the entry is stamped, and they do not change what the code does."""
    from .. import __version__

    cwd = Path(root) if root is not None else ZOO_DIR
    try:
        out = subprocess.run(["git", "describe", "--always"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if out.returncode != 0 or not out.stdout.strip():
            return __version__
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)",
                                 ":(top,exclude)rladder_nb/zoo/manifest.json",
                                 ":(top,exclude)rladder_nb/zoo/checkpoints"], cwd=cwd, capture_output=True,
                                text=True, timeout=10)
        dirty = "-dirty" if status.returncode != 0 or status.stdout.strip() else ""
        return f"{__version__}+g{out.stdout.strip()}{dirty}"
    except (OSError, subprocess.SubprocessError):
        return __version__


def hardware() -> str:
    """A one-line description of where a run ran."""
    import torch

    dev = settings.get_device()
    gpu = f", {torch.cuda.get_device_name(dev)}" if dev.type == "cuda" else ""
    threads = torch.get_num_threads()
    return (f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores ({threads} torch threads)"
            f"{gpu}, torch {torch.__version__}, Python {platform.python_version()}")


def load(name: str, manifest=None):
    """Load the model of entry ``name``; return ``(model, entry)``. Missing or corrupt files raise."""
    manifest = load_manifest() if manifest is None else manifest
    if name not in manifest:
        raise KeyError(f"no zoo entry {name!r}; recorded entries: {sorted(manifest) or 'none'}")
    entry = manifest[name]
    model, _ = load_checkpoint(ZOO_DIR / entry["checkpoint"], expected_sha256=entry["sha256"])
    return model, entry


def run_config(exp, model: str, scale: str, dataset=None):
    """``(dataset, config)`` of a run: ``dataset`` defaults to the experiment module's ``DEFAULT_DATASET``
    (None for experiments with one data set), ``config`` is ``exp.config`` for it."""
    dataset = dataset or getattr(exp, "DEFAULT_DATASET", None)
    return dataset, (exp.config(model, scale) if dataset is None else exp.config(model, scale, dataset=dataset))


# what a run is: chosen by the train command's own arguments, never by an override
NOT_OVERRIDABLE = ("model", "scale", "dataset")


def apply_overrides(config: dict, overrides) -> dict:
    """A copy of ``config`` with some of its values replaced (a study run, e.g. more steps or another cell).

    Each key must be one of the config's own, other than those in :data:`NOT_OVERRIDABLE`, and each new
    value must have the type of the value it replaces (an integer may replace a float; anything may replace
    ``None``). Raises ``ValueError`` saying what was expected. Introduced in *Reproducing at paper scale*.
    """
    if overrides is None:
        return dict(config)
    if not isinstance(overrides, dict):
        raise ValueError(f"overrides must be a dict of config keys to values, got {type(overrides).__name__}")
    config = dict(config)
    for key, value in overrides.items():
        if key in NOT_OVERRIDABLE:
            raise ValueError(f"{key!r} cannot be overridden: choose it with the train command's own --{key} "
                             "argument (it names the run)")
        if key not in config:
            keys = ", ".join(k for k in sorted(config) if k not in NOT_OVERRIDABLE)
            raise ValueError(f"unknown config key {key!r} for this run; its keys are: {keys}")
        old = config[key]
        same_kind = (old is None or type(value) is type(old)
                     or (isinstance(old, float) and type(value) is int)
                     or (isinstance(old, (list, tuple)) and isinstance(value, (list, tuple))))
        if not same_kind:
            raise ValueError(f"config key {key!r} holds {old!r} (type {type(old).__name__}); got {value!r} "
                             f"(type {type(value).__name__})")
        config[key] = list(value) if isinstance(value, tuple) else value
    return config


def train(experiment: str, model: str, scale=None, seed: int = 0, dataset=None, progress=True,
          checkpoint_path=None, max_seconds=None, overrides=None):
    """Train one run; return ``(model, entry)`` where the entry is not recorded anywhere.

    With ``max_seconds`` training stops after that much time (the checkpoint keeps the progress and the
    same call continues it). A run stopped before its last step is *unfinished*: its entry has
    ``finished`` False and ``metrics`` None (it is not evaluated), and :func:`record` refuses it.
    ``overrides`` (a dict, see :func:`apply_overrides`) changes config values for a study run; the entry
    keeps them under ``overrides``, and :func:`record` refuses such a run.
    """
    exp = get_experiment(experiment)
    check_model(exp, model)
    scale = settings.get_scale(scale)
    dataset, config = run_config(exp, model, scale, dataset)
    config = apply_overrides(config, overrides)
    version = code_version()  # the code as the run starts (edits made while it trains do not count)
    net, result = exp.train_model(model, config, seed, progress=progress, checkpoint_path=checkpoint_path,
                                  max_seconds=max_seconds)
    n_steps = config.get("n_steps")
    finished = not result.stopped_early or (n_steps is not None and result.steps >= n_steps)
    metrics = exp.evaluate(model, net, config, seed) if finished else None
    entry = {"experiment": experiment, "model": model, "scale": scale, "seed": seed, "metrics": metrics,
             "config": config, "wall_time_s": round(result.wall_time_s, 1), "steps": result.steps,
             "code_version": version}
    if dataset is not None:
        entry["dataset"] = dataset
    if overrides:
        entry["overrides"] = dict(overrides)
    if not finished:
        entry["finished"] = False
    return net, entry


def record(net, entry: dict, command: str, manifest_path=MANIFEST) -> str:
    """Write ``net``'s checkpoint into the zoo and its entry into the manifest (both atomically).

    An unfinished run (stopped by a time limit, see :func:`train`) and a study run (one with ``overrides``)
    are refused with a ``ValueError``.
    """
    if entry.get("overrides"):
        raise ValueError(f"not recorded: this run overrides its config ({', '.join(sorted(entry['overrides']))}), "
                         "and a zoo entry holds its scale's standard config, which the chapters rely on; keep the "
                         "result with --json PATH instead")
    if entry.get("finished") is False or entry.get("metrics") is None:
        raise ValueError(f"not recorded: the run stopped after {entry.get('steps')} of "
                         f"{entry.get('config', {}).get('n_steps')} steps, and only finished runs go into the zoo; "
                         "continue it from its checkpoint first")
    name = entry_name(entry["experiment"], entry["model"], entry["scale"], entry["seed"], entry.get("dataset"))
    rel = Path("checkpoints") / (name.replace("/", "__") + ".pt")
    path = Path(manifest_path).parent / rel
    save_checkpoint(path, net)
    full = dict(entry, checkpoint=rel.as_posix(), sha256=sha256_of(path), command=command,
                code_version=entry.get("code_version") or code_version(), hardware=hardware(),
                created=datetime.now(timezone.utc).replace(microsecond=0).isoformat())
    with _manifest_lock(manifest_path):  # several trainings may finish at once
        manifest = load_manifest(manifest_path)
        manifest[name] = full
        text = json.dumps(dict(sorted(manifest.items())), indent=2, sort_keys=False) + "\n"
        atomic_write_bytes(manifest_path, text.encode())
    return name


@contextlib.contextmanager
def _manifest_lock(manifest_path):
    """An exclusive lock on ``<manifest>.lock`` (where the platform has ``fcntl``)."""
    lock_path = Path(manifest_path).with_suffix(".lock")
    try:
        import fcntl
    except ImportError:  # Windows: no concurrent recording there
        yield
        return
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_or_train(experiment: str, model: str, scale=None, seed: int = 0, dataset=None, retrain=None,
                  progress=True):
    """The recorded model of this run if the zoo has it, else a freshly trained one.

    Returns ``(model, entry)``. At ``smoke`` scale (tests) it always trains; with ``retrain=True`` or
    ``RLADDER_NB_RETRAIN=1`` it trains instead of loading. It always says which it did.
    """
    scale = settings.get_scale(scale)
    exp = get_experiment(experiment)
    check_model(exp, model)
    dataset = dataset or getattr(exp, "DEFAULT_DATASET", None)
    retrain = settings.retrain_requested() if retrain is None else retrain
    name = entry_name(experiment, model, scale, seed, dataset)
    manifest = load_manifest()
    if not retrain and name in manifest:
        net, entry = load(name, manifest)
        settings.report(f"loaded zoo entry {name} (trained in {entry['wall_time_s']:.0f} s on {entry['hardware']})")
        return net, entry
    why = ("retraining was asked for" if retrain else
           "smoke scale trains in seconds" if scale == "smoke" else "the zoo has no such entry")
    settings.report(f"training {name} now ({why})")
    return train(experiment, model, scale, seed, dataset, progress=progress)
