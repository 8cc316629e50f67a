"""Explicit hierarchical linear-Gaussian models and their exact inference (Part I of the book).

* :mod:`~rladder_nb.gaussian.static` — the static hierarchy ``z -> y -> x`` (paper's Figure 1b), its
  joint Gaussian and closed-form posterior, and direct conditioning of any Gaussian (chapter 2);
* :mod:`~rladder_nb.gaussian.messages` — iterative bottom-up / top-down / lateral message passing
  and the exact two-sweep schedule, with its convergence analysis (chapter 2);
* :mod:`~rladder_nb.gaussian.temporal` — the two-level latent dynamics observed at the bottom
  (paper's Figure 1c), the Kalman filter read as messages, and batch conditioning of a whole
  sequence (chapter 3).

Chapter 4 trains RLadders on samples of these models and compares them with the exact answers.
"""
from .static import StaticGaussianModel, condition_gaussian  # first: static.py re-exports message_passing
from .messages import (convergence_rate, iteration_matrix, iterations_needed, message_passing,  # noqa: I001
                       relative_errors, two_sweep_inference)
from .temporal import TemporalGaussianModel, batch_posterior, kalman_filter

__all__ = [
    "StaticGaussianModel", "condition_gaussian", "message_passing", "two_sweep_inference",
    "iteration_matrix", "convergence_rate", "iterations_needed", "relative_errors",
    "TemporalGaussianModel", "kalman_filter", "batch_posterior",
]
