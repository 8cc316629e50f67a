"""The command line and the book-build helper: clear errors, a working train/record/evaluate cycle."""
import subprocess
import sys

import pytest

from rladder_nb import bookbuild
from rladder_nb.__main__ import main


def test_cli_train_prints_metrics(capsys):
    assert main(["train", "toy_static", "--model", "rladder", "--scale", "smoke", "--quiet"]) == 0
    assert "mse_ratio_to_exact" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["train", "toy_nothing", "--model", "rladder", "--scale", "smoke"], "unknown experiment"),
    (["train", "toy_static", "--model", "gpt", "--scale", "smoke"], "unknown model"),
    (["train", "toy_static", "--model", "rladder", "--scale", "huge"], "unknown scale"),
])
def test_cli_bad_names_exit_2_with_a_clear_message(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "rladder_nb", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "build-book" in out.stdout


def test_book_cache_is_keyed_by_scale_and_package(tmp_path):
    (tmp_path / "rladder_nb").mkdir()
    (tmp_path / "rladder_nb" / "a.py").write_text("x = 1\n")
    (tmp_path / "_config.yml").write_text("execute:\n  execute_notebooks: cache\n  cache: somewhere\n")
    smoke = bookbuild.scaled_config("smoke", tmp_path).read_text()
    book = bookbuild.scaled_config("book", tmp_path).read_text()
    assert "_build/.jupyter_cache/smoke-" in smoke and "_build/.jupyter_cache/book-" in book
    h1 = bookbuild.package_hash(tmp_path)
    (tmp_path / "rladder_nb" / "a.py").write_text("x = 2\n")
    assert bookbuild.package_hash(tmp_path) != h1
    (tmp_path / "_config.yml").write_text("execute:\n  execute_notebooks: cache\n")
    with pytest.raises(ValueError, match="cache:"):
        bookbuild.scaled_config("book", tmp_path)
