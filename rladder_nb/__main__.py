"""The command line: ``python -m rladder_nb COMMAND ...`` (also installed as ``rladder-nb``).

Commands
--------
train EXPERIMENT --model M [--scale S] [--seed N] [--record] [--checkpoint PATH] [--max-minutes M] [--set K=V]
    Train one run (resumable through --checkpoint); --record writes it into the zoo; --max-minutes stops
    after M minutes, to be continued by the same command; --set changes a config value for a study run
    (e.g. --set n_steps=30000; such runs are not recorded); --json PATH writes the run's entry there.
benchmark EXPERIMENT [--models M ...] [--scale S] [--seconds N] [--json PATH]
    How fast each model trains here, and how long the scale's full run would take.
reproduce EXPERIMENT [--scale S] [--seeds 0 1 ...]
    Print the experiment's table: every model, from the zoo where recorded, else trained now.
evaluate [EXPERIMENT]
    Re-evaluate recorded zoo entries and compare with their recorded metrics.
zoo
    List the recorded runs (and the recorded studies).
build-book [--scale S]
    Build the rendered book with every chapter executed at that scale.
export-notebooks OUTDIR [--kind student|instructor|both] [--chapters PATTERN ...]
    Write student (solutions blanked) and/or instructor notebooks of the chapters.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys

from . import settings


def parse_overrides(items) -> dict:
    """``["key=value", ...]`` from ``--set`` into a dict; each value is read as JSON where it parses
    (``30000``, ``2e-3``, ``true``, ``[[\"conv\", 32, 2, 3]]``), else kept as a string (``layer``)."""
    overrides = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE (e.g. --set n_steps=30000), got {item!r}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        overrides[key.strip()] = value
    return overrides


def _cmd_train(args):
    from . import zoo
    from .fileio import atomic_write_bytes

    overrides = parse_overrides(args.set)
    if overrides and args.record:
        raise ValueError("--record and --set do not go together: a zoo entry holds its scale's standard config, "
                         "which the chapters rely on; keep a study run's result with --json PATH")
    max_seconds = None
    if args.max_minutes is not None:
        if not args.max_minutes > 0:
            raise ValueError(f"--max-minutes must be a positive number, got {args.max_minutes}")
        if args.checkpoint is None:
            raise ValueError("--max-minutes needs --checkpoint PATH: a run stopped by the time limit continues "
                             "from its checkpoint, and without one its progress would be lost")
        max_seconds = 60.0 * args.max_minutes
    net, entry = zoo.train(args.experiment, args.model, args.scale, args.seed, args.dataset,
                           progress=not args.quiet, checkpoint_path=args.checkpoint, max_seconds=max_seconds,
                           overrides=overrides)
    print(json.dumps({k: entry[k] for k in ("experiment", "model", "scale", "seed", "metrics", "wall_time_s",
                                            "steps", "overrides") if k in entry}, indent=2))
    if args.json:  # the whole entry, config included (written atomically: a failed write leaves no half file)
        path = atomic_write_bytes(args.json, (json.dumps(entry, indent=2, default=str) + "\n").encode())
        print(f"wrote {path}")
    if entry.get("finished") is False:
        print(f"stopped by the time limit after {entry['steps']} of {entry['config']['n_steps']} steps "
              f"({entry['wall_time_s'] / 60:.1f} min of training so far); not evaluated. The checkpoint "
              f"{args.checkpoint} holds the run: start the same command again to continue it.")
        if args.record:
            print("not recorded: only finished runs go into the zoo", file=sys.stderr)
            return 3
        return 0
    if args.record:
        name = zoo.record(net, entry, recorded_command(sys.argv[1:], os.environ.get("RLADDER_NB_DATA")))
        print(f"recorded zoo entry {name}")
    return 0


PATH_OPTIONS = ("--checkpoint", "--json")   # their values are files of the machine a run ran on


def recorded_command(argv, data_folder=None) -> str:
    """The command a zoo entry records for ``argv`` (the arguments after ``python -m rladder_nb``): without
    ``--quiet``, with absolute paths of this machine replaced by placeholders (``--checkpoint /a/b/run.pt``
    becomes ``--checkpoint '<your runs folder>/run.pt'``) and, when ``data_folder`` is set, prefixed with
    ``RLADDER_NB_DATA`` (a relative folder as it is, an absolute one as ``'<your data folder>'``)."""
    shown, previous = [], None
    for arg in argv:
        if arg == "--quiet":
            continue
        if previous in PATH_OPTIONS and os.path.isabs(arg):
            arg = f"<your runs folder>/{os.path.basename(arg)}"
        for option in PATH_OPTIONS:
            if arg.startswith(option + "=") and os.path.isabs(arg[len(option) + 1:]):
                arg = f"{option}=<your runs folder>/{os.path.basename(arg[len(option) + 1:])}"
        shown.append(arg)
        previous = arg
    command = "python -m rladder_nb " + " ".join(shlex.quote(a) for a in shown)
    if data_folder:  # the data a run saw is part of how to reproduce it (no absolute paths of this machine)
        folder = data_folder if not os.path.isabs(data_folder) else "<your data folder>"
        command = f"RLADDER_NB_DATA={shlex.quote(folder)} {command}"
    return command


def _cmd_benchmark(args):
    from . import benchmark

    scale = settings.get_scale(args.scale)
    rows = benchmark.benchmark(args.experiment, args.models, scale, args.dataset, seconds=args.seconds,
                               progress=not args.quiet)
    print(benchmark.report(args.experiment, scale, rows))
    if args.json:
        print(f"wrote {benchmark.write_json(args.json, args.experiment, scale, rows)}")
    return 0


def _fmt(v):
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _cmd_reproduce(args):
    from . import zoo
    from .experiments import get_experiment

    exp = get_experiment(args.experiment)
    scale = settings.get_scale(args.scale)
    if hasattr(exp, "reproduce_table") and args.dataset is None:  # the experiment prints its own table
        table = exp.reproduce_table(scale, args.seeds, progress=not args.quiet)
        print(f"{args.experiment} at scale {scale}:\n{table}")
        return 0
    rows = []
    for model in exp.MODELS:
        for seed in args.seeds:
            _, entry = zoo.load_or_train(args.experiment, model, scale, seed, args.dataset, progress=not args.quiet)
            rows.append((model, seed, entry["metrics"]))
    print(f"{args.experiment} at scale {scale}:")
    for model, seed, metrics in rows:
        print(f"  {model:32s} seed {seed}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in metrics.items()))
    return 0


def compare_metrics(recorded: dict, measured: dict, rtol: float = 1e-3, atol: float = 1e-6) -> list[str]:
    """The names of metrics whose re-evaluated value differs from the recorded one."""
    bad = []
    for key, want in recorded.items():
        got = measured.get(key)
        wants, gots = (want, got) if isinstance(want, list) else ([want], [got])
        if isinstance(want, str):  # a label such as an AMI convention: must be equal
            if got != want:
                bad.append(f"{key}: recorded {want!r}, measured {got!r}")
            continue
        if got is None or len(wants) != len(gots) or not all(
                isinstance(g, (int, float)) and math.isclose(g, w, rel_tol=rtol, abs_tol=atol)
                for w, g in zip(wants, gots)):
            bad.append(f"{key}: recorded {want}, measured {got}")
    return bad


def _cmd_evaluate(args):
    from . import zoo
    from .experiments import get_experiment

    entries = zoo.find_entries(experiment=args.experiment)
    failures = 0
    for name, entry in entries.items():
        exp = get_experiment(entry["experiment"])
        problem = getattr(exp, "evaluation_requirements", lambda cfg: None)(entry["config"])
        if problem:
            print(f"skip {name}: {problem}")
            continue
        net, _ = zoo.load(name)
        measured = exp.evaluate(entry["model"], net, entry["config"], entry["seed"])
        bad = compare_metrics(entry["metrics"], measured)
        failures += bool(bad)
        print(f"{'FAIL' if bad else 'ok  '} {name}" + ("".join(f"\n     {b}" for b in bad)))
    if not entries:
        print("no zoo entries" + (f" for {args.experiment}" if args.experiment else ""))
    return 1 if failures else 0


def _cmd_zoo(args):
    from . import zoo

    for name, entry in zoo.load_manifest().items():
        headline = {k: v for k, v in entry["metrics"].items() if not isinstance(v, list)}
        print(f"{name:60s} {entry['wall_time_s']:8.0f} s  " + ", ".join(f"{k}={_fmt(v)}" for k, v in headline.items()))
    studies = zoo.list_studies()
    if studies:
        print("\nstudies (diagnostic runs without kept checkpoints; rladder_nb/zoo/studies/NAME.json):")
    for name in studies:
        study = zoo.load_study(name)
        print(f"  {name} ({len(study['entries'])} runs, {study['created']}): {study['summary']}")
    return 0


def _cmd_build_book(args):
    from .bookbuild import build

    return build(args.scale)


def _cmd_export_notebooks(args):
    from . import course

    for path in course.export(args.outdir, kind=args.kind, chapters=args.chapters):
        print(path)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rladder_nb", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one run")
    p.add_argument("experiment")
    p.add_argument("--model", required=True)
    p.add_argument("--scale", default=None, help="smoke, book or paper (default: $RLADDER_NB_SCALE or book)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dataset", default=None)
    p.add_argument("--checkpoint", default=None, help="resumable checkpoint file for this run")
    p.add_argument("--record", action="store_true", help="write the result into the zoo")
    p.add_argument("--max-minutes", type=float, default=None, metavar="M",
                   help="stop training after M minutes (needs --checkpoint; the same command continues the run)")
    p.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                   help="change one config value for a study run, e.g. --set n_steps=30000 (repeatable; "
                        "not with --record)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the run's entry to PATH as JSON")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("benchmark", help="how fast each model trains here")
    p.add_argument("experiment")
    p.add_argument("--models", nargs="+", default=None, metavar="MODEL", help="default: every model")
    p.add_argument("--scale", default=None, help="smoke, book or paper (default: $RLADDER_NB_SCALE or book)")
    p.add_argument("--dataset", default=None)
    p.add_argument("--seconds", type=float, default=20.0, help="training time per model (default: 20)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the results to PATH as JSON")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_benchmark)

    p = sub.add_parser("reproduce", help="print an experiment's table")
    p.add_argument("experiment")
    p.add_argument("--scale", default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--dataset", default=None)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser("evaluate", help="re-evaluate zoo entries")
    p.add_argument("experiment", nargs="?", default=None)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("zoo", help="list zoo entries and studies")
    p.set_defaults(func=_cmd_zoo)

    p = sub.add_parser("build-book", help="build the rendered book")
    p.add_argument("--scale", default=None)
    p.set_defaults(func=_cmd_build_book)

    p = sub.add_parser("export-notebooks", help="write student / instructor notebooks")
    p.add_argument("outdir")
    p.add_argument("--kind", choices=("student", "instructor", "both"), default="student")
    p.add_argument("--chapters", nargs="+", default=None, metavar="PATTERN",
                   help="chapter files or patterns such as 'book/part1/*' (default: every chapter)")
    p.set_defaults(func=_cmd_export_notebooks)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, KeyError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
