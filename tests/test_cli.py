"""The command line and the book-build helper: clear errors, a working train/record/evaluate cycle."""
import io
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


def test_build_watchdog_restarts_a_silent_command_and_gives_up(tmp_path, capsys):
    marker = tmp_path / "attempts"
    script = ("import pathlib, sys, time; p = pathlib.Path(sys.argv[1]); n = int(p.read_text()) if p.exists() else 0; "
              "p.write_text(str(n + 1)); print('attempt', n + 1, flush=True); "
              "time.sleep(60) if n < int(sys.argv[2]) else print('done', flush=True)")
    out = io.StringIO()
    # hangs once, then finishes: one restart
    code = bookbuild.run_with_watchdog([sys.executable, "-c", script, str(marker), "1"], tmp_path,
                                       stall_seconds=1.5, restarts=2, out=out)
    assert code == 0 and marker.read_text() == "2" and "done" in out.getvalue()
    assert "printed nothing for 2 s" in capsys.readouterr().out
    # hangs every time: gives up after the restarts with exit code 124
    marker.unlink()
    code = bookbuild.run_with_watchdog([sys.executable, "-c", script, str(marker), "99"], tmp_path,
                                       stall_seconds=1.0, restarts=1, out=io.StringIO())
    assert code == 124 and marker.read_text() == "2"
    # a failing command is not restarted, and a silent limit of 0 is no watchdog
    code = bookbuild.run_with_watchdog([sys.executable, "-c", "import sys; sys.exit(3)"], tmp_path,
                                       stall_seconds=0, out=io.StringIO())
    assert code == 3


def test_build_watchdog_setting(monkeypatch):
    monkeypatch.delenv("RLADDER_NB_RETRAIN", raising=False)
    monkeypatch.delenv("RLADDER_NB_BUILD_STALL_SECONDS", raising=False)
    assert bookbuild.stall_seconds_from_env() == bookbuild.STALL_SECONDS
    monkeypatch.setenv("RLADDER_NB_BUILD_STALL_SECONDS", "30")
    assert bookbuild.stall_seconds_from_env() == 30.0
    monkeypatch.setenv("RLADDER_NB_RETRAIN", "1")
    assert bookbuild.stall_seconds_from_env() == 0.0
    monkeypatch.delenv("RLADDER_NB_RETRAIN")
    monkeypatch.setenv("RLADDER_NB_BUILD_STALL_SECONDS", "soon")
    with pytest.raises(ValueError, match="number of seconds"):
        bookbuild.stall_seconds_from_env()


def _entry_json(out):
    """The JSON object that ``train`` prints first."""
    import json
    return json.loads(out[out.index("{"):out.index("\n}") + 2])


def test_cli_max_minutes_stops_a_run_that_the_same_command_continues(tmp_path, capsys):
    import torch

    ckpt = tmp_path / "run.pt"
    argv = ["train", "toy_static", "--model", "rladder", "--scale", "smoke", "--quiet", "--checkpoint", str(ckpt)]
    # a limit of a microsecond stops the run after its first step: unfinished, not evaluated, checkpointed
    assert main(argv + ["--max-minutes", "1e-8"]) == 0
    out = capsys.readouterr().out
    first = _entry_json(out)
    assert first["metrics"] is None and first["steps"] == 1
    assert "stopped by the time limit after 1 of 40 steps" in out and str(ckpt) in out
    assert torch.load(ckpt, weights_only=False)["step"] == 1
    # --record refuses an unfinished run (exit code 3) and writes nothing
    assert main(argv + ["--max-minutes", "1e-8", "--record"]) == 3
    assert "not recorded" in capsys.readouterr().err
    assert torch.load(ckpt, weights_only=False)["step"] == 2
    # the same command without a limit continues from step 2 to the end and evaluates
    assert main(argv) == 0
    done = _entry_json(capsys.readouterr().out)
    assert done["steps"] == 40 and "mse_ratio_to_exact" in done["metrics"]


@pytest.mark.parametrize("extra, message", [
    (["--max-minutes", "5"], "needs --checkpoint"),
    (["--max-minutes", "0", "--checkpoint", "x.pt"], "positive"),
])
def test_cli_max_minutes_bad_use_is_a_clear_error(extra, message, capsys):
    assert main(["train", "toy_static", "--model", "rladder", "--scale", "smoke", "--quiet"] + extra) == 2
    assert message in capsys.readouterr().err


def test_zoo_refuses_to_record_an_unfinished_run(tmp_path):
    from rladder_nb import zoo

    net, entry = zoo.train("toy_static", "rladder", "smoke", progress=False, max_seconds=1e-9)
    assert entry["finished"] is False and entry["metrics"] is None and entry["steps"] == 1
    with pytest.raises(ValueError, match="only finished runs"):
        zoo.record(net, entry, "test", manifest_path=tmp_path / "manifest.json")
    assert not (tmp_path / "manifest.json").exists()


def test_cli_benchmark_measures_every_model(tmp_path, capsys):
    import json

    out_json = tmp_path / "bench.json"
    assert main(["benchmark", "toy_temporal", "--scale", "smoke", "--seconds", "0.2", "--quiet",
                 "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "benchmark toy_temporal at scale smoke on cpu" in out
    rows = json.loads(out_json.read_text())["rows"]
    from rladder_nb.experiments import toy_temporal
    assert [r["model"] for r in rows] == list(toy_temporal.MODELS)
    for r in rows:
        batch = toy_temporal.config(r["model"], "smoke")["batch_size"]
        assert r["steps"] >= 1 and r["seconds"] > 0
        assert r["steps_per_s"] == pytest.approx(r["steps"] / r["seconds"], rel=0.05)
        assert r["full_run_minutes"] == pytest.approx(r["n_steps"] / r["steps_per_s"] / 60, rel=0.01, abs=1e-3)
        assert r["examples_per_s"] == pytest.approx(r["steps_per_s"] * batch, rel=0.01)


@pytest.mark.parametrize("argv, message", [
    (["benchmark", "toy_static", "--scale", "smoke", "--seconds", "0"], "seconds must be a positive number"),
    (["benchmark", "toy_static", "--scale", "smoke", "--models", "gpt"], "unknown model"),
    (["benchmark", "nothing", "--scale", "smoke"], "unknown experiment"),
])
def test_cli_benchmark_bad_input(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_set_overrides_config_values_for_a_study_run(tmp_path, capsys):
    import json

    out_json = tmp_path / "runs" / "study.json"
    argv = ["train", "toy_static", "--model", "rladder", "--scale", "smoke", "--quiet",
            "--set", "n_steps=5", "--set", "lr=2e-3", "--json", str(out_json)]
    assert main(argv) == 0
    printed = _entry_json(capsys.readouterr().out)
    assert printed["steps"] == 5 and printed["overrides"] == {"n_steps": 5, "lr": 0.002}
    written = json.loads(out_json.read_text())
    assert written["config"]["n_steps"] == 5 and written["config"]["lr"] == 0.002
    assert written["metrics"] == printed["metrics"] and "mse_ratio_to_exact" in written["metrics"]
    assert [p.name for p in out_json.parent.iterdir()] == ["study.json"]   # no temporary file left behind


@pytest.mark.parametrize("extra, message", [
    (["--set", "foo=1"], "unknown config key 'foo'"),
    (["--set", "n_steps=abc"], "config key 'n_steps' holds 40 (type int); got 'abc' (type str)"),
    (["--set", "n_steps=true"], "got True (type bool)"),
    (["--set", "scale=book"], "'scale' cannot be overridden"),
    (["--set", "n_steps"], "--set expects KEY=VALUE"),
    (["--set", "n_steps=3", "--record"], "--record and --set do not go together"),
])
def test_cli_bad_overrides_exit_2_before_training(extra, message, capsys):
    assert main(["train", "toy_static", "--model", "rladder", "--scale", "smoke", "--quiet"] + extra) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "{" not in captured.out   # nothing was trained


def test_zoo_record_refuses_a_study_run(tmp_path):
    from rladder_nb import zoo

    net, entry = zoo.train("toy_static", "rladder", "smoke", progress=False, overrides={"n_steps": 2})
    assert entry["overrides"] == {"n_steps": 2} and entry["steps"] == 2
    with pytest.raises(ValueError, match="overrides its config"):
        zoo.record(net, entry, "test", manifest_path=tmp_path / "manifest.json")
    assert not (tmp_path / "manifest.json").exists()
    # an integer may replace a float, anything may replace None; the config itself is not changed in place
    config = {"lr": 1e-3, "extra": None, "layers": [1, 2]}
    assert zoo.apply_overrides(config, {"lr": 1, "extra": "x", "layers": (3,)}) == {"lr": 1, "extra": "x", "layers": [3]}
    assert config == {"lr": 1e-3, "extra": None, "layers": [1, 2]}


def test_recorded_commands_hold_no_path_of_this_machine():
    from rladder_nb.__main__ import recorded_command
    argv = ["train", "shapes", "--model", "tagger", "--record", "--quiet", "--checkpoint", "/home/me/runs/t.pt",
            "--json=/tmp/x/t.json"]
    got = recorded_command(argv, "/home/me/data")
    assert "/home" not in got and "/tmp" not in got and "--quiet" not in got
    assert got == ("RLADDER_NB_DATA='<your data folder>' python -m rladder_nb train shapes --model tagger --record "
                   "--checkpoint '<your runs folder>/t.pt' '--json=<your runs folder>/t.json'")
    assert recorded_command(["train", "x", "--checkpoint", "runs/t.pt"], "data") == \
        "RLADDER_NB_DATA=data python -m rladder_nb train x --checkpoint runs/t.pt"
