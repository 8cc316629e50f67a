"""Shared test set-up: one torch thread (the models under test are tiny, and CI has 2 cores), Agg plots,
and notebook clients that wait for kernel messages in short slices."""
import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

from rladder_nb import kernelpoll  # noqa: E402

torch.set_num_threads(1)
kernelpoll.install()  # every notebook the tests run waits for kernel messages in short slices (see that module)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data():
    """``../shared/data`` beside the repository (benchmark data for tests); skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA
