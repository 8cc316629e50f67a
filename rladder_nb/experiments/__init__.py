"""One module per experiment of the paper; the CLI, the zoo and the chapters call the same functions.

Each experiment module defines:

* ``NAME`` and ``MODELS`` — the experiment's name and the model names it knows;
* ``config(model, scale) -> dict`` — every size and hyper-parameter of a run at a scale;
* ``train_model(model, config, seed, progress=True, checkpoint_path=None, max_seconds=None) ->
  (nn.Module, TrainResult)`` -- ``max_seconds`` stops training after that much time (``TrainResult.stopped_early``);
* ``evaluate(model_name, model, config, seed) -> {metric: value}`` — deterministic given the seed.
"""
from __future__ import annotations

import importlib

EXPERIMENTS = {
    "toy_static": "rladder_nb.experiments.toy_static",
    "toy_temporal": "rladder_nb.experiments.toy_temporal",
    "music": "rladder_nb.experiments.music",
    "occluded_mnist": "rladder_nb.experiments.occluded_mnist",
    "occluded_mnist_semi": "rladder_nb.experiments.occluded_mnist_semi",
    "textured_mnist": "rladder_nb.experiments.textured_mnist",
    "moving_mnist_grouping": "rladder_nb.experiments.moving_mnist_grouping",
    "shapes": "rladder_nb.experiments.shapes",
}


def get_experiment(name: str):
    """The experiment module called ``name``; a ``ValueError`` lists the known ones."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}: expected one of {', '.join(sorted(EXPERIMENTS))}")
    return importlib.import_module(EXPERIMENTS[name])


def check_model(experiment, model: str) -> str:
    """Return ``model`` if the experiment module knows it, else raise a ``ValueError`` listing its models."""
    if model not in experiment.MODELS:
        raise ValueError(f"unknown model {model!r} for experiment {experiment.NAME!r}: "
                         f"expected one of {', '.join(experiment.MODELS)}")
    return model
