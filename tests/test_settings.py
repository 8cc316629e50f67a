import os
import sys

import numpy as np
import pytest
import torch

from rladder_nb import settings


def test_scale_from_env_and_argument(monkeypatch):
    monkeypatch.delenv("RLADDER_NB_SCALE", raising=False)
    assert settings.get_scale() == "book"
    monkeypatch.setenv("RLADDER_NB_SCALE", "smoke")
    assert settings.get_scale() == "smoke"
    assert settings.get_scale("Paper") == "paper"


@pytest.mark.parametrize("bad", ["huge", "", "bookish", 3])
def test_unknown_scale_is_rejected_with_the_valid_names(bad, monkeypatch):
    with pytest.raises(ValueError, match="smoke, book, paper"):
        settings.check_scale(bad)


def test_unknown_scale_in_environment(monkeypatch):
    monkeypatch.setenv("RLADDER_NB_SCALE", "gigantic")
    with pytest.raises(ValueError, match="RLADDER_NB_SCALE"):
        settings.get_scale()


def test_device(monkeypatch):
    monkeypatch.setenv("RLADDER_NB_DEVICE", "cpu")
    assert settings.get_device().type == "cpu"
    with pytest.raises(ValueError, match="unknown device"):
        settings.get_device("warp-drive")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            settings.get_device("cuda")


def test_seeding_makes_runs_repeatable():
    settings.seed_everything(3)
    a = (np.random.rand(3), torch.rand(3))
    settings.seed_everything(3)
    b = (np.random.rand(3), torch.rand(3))
    assert np.array_equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="non-negative integer"):
        settings.seed_everything(-1)


def test_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("RLADDER_NB_DATA", str(tmp_path))
    assert settings.data_dir() == tmp_path
    monkeypatch.delenv("RLADDER_NB_DATA")
    assert settings.data_dir().name == "rladder_nb"


def test_retrain_flag(monkeypatch):
    monkeypatch.setenv("RLADDER_NB_RETRAIN", "1")
    assert settings.retrain_requested()
    monkeypatch.setenv("RLADDER_NB_RETRAIN", "0")
    assert not settings.retrain_requested()


def test_report_prints_a_message_once_per_notebook_cell(monkeypatch, capsys):
    import types

    shell = types.SimpleNamespace(execution_count=1)
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    for _ in range(3):
        settings.report("MNIST test: from the IDX files")
    settings.report("loaded zoo entry x")
    assert capsys.readouterr().out.splitlines() == ["[rladder_nb] MNIST test: from the IDX files",
                                                     "[rladder_nb] loaded zoo entry x"]
    shell.execution_count = 2          # the next cell says it again
    settings.report("MNIST test: from the IDX files")
    assert capsys.readouterr().out.count("MNIST test") == 1
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    settings.report("loaded zoo entry x")   # no kernel (command line, tests): every call prints
    settings.report("loaded zoo entry x")
    assert capsys.readouterr().out.count("loaded zoo entry x") == 2
