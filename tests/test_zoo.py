"""The zoo: every recorded checkpoint is re-evaluated and must reproduce its manifest metrics."""
import json

import pytest

from conftest import SHARED_DATA
from rladder_nb import zoo
from rladder_nb.__main__ import compare_metrics
from rladder_nb.experiments import get_experiment

MANIFEST = zoo.load_manifest()


def recorded_config(entry):
    """An entry's config without the keys that name its data (which digits it saw), for comparing configs."""
    return {k: v for k, v in entry["config"].items() if k not in ("test_digits", "train_digits")}


def test_manifest_entries_are_complete_and_checksummed():
    for name, entry in MANIFEST.items():
        for field in zoo.REQUIRED_FIELDS:
            assert field in entry, f"{name} lacks {field}"
        assert name == zoo.entry_name(entry["experiment"], entry["model"], entry["scale"], entry["seed"],
                                      entry.get("dataset"))
        path = zoo.ZOO_DIR / entry["checkpoint"]
        assert path.is_file(), f"{name}: checkpoint {path} missing"
        from rladder_nb.training import sha256_of
        assert sha256_of(path) == entry["sha256"], f"{name}: checkpoint does not match its SHA-256"


@pytest.mark.zoo
@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_zoo_entry_reproduces_its_metrics(name, monkeypatch):
    # the book-scale runs were recorded with RLADDER_NB_DATA=../shared/data (their commands say so)
    if SHARED_DATA.is_dir():
        monkeypatch.setenv("RLADDER_NB_DATA", str(SHARED_DATA))
    entry = MANIFEST[name]
    exp = get_experiment(entry["experiment"])
    needs = getattr(exp, "evaluation_requirements", None)
    if needs is not None:
        missing = needs(entry["config"])
        if missing:
            pytest.skip(missing)
    net, _ = zoo.load(name)
    measured = exp.evaluate(entry["model"], net, entry["config"], entry["seed"])
    assert compare_metrics(entry["metrics"], measured) == []


def test_every_recorded_book_scale_rtagger_segments_better_after_its_last_iteration():
    # Part III's acceptance point, on every recorded run of Table 4 (both settings, every seed); the test
    # above checks that each checkpoint still scores what its entry says
    runs = zoo.find_entries(experiment="textured_mnist", model="rtagger", scale="book", manifest=MANIFEST)
    table4 = {name: entry for name, entry in runs.items() if entry.get("dataset", "supervised") in
              ("supervised", "semi_supervised")}
    assert table4, "no book-scale RTagger on textured MNIST in the zoo"
    for name, entry in table4.items():
        ami = entry["metrics"]["ami"]
        assert len(ami) == entry["config"]["n_iterations"] >= 2, name
        assert ami[-1] > ami[0], f"{name}: AMI {ami} does not rise from the first iteration to the last"


def test_table1_has_a_book_scale_entry_for_every_row_in_todays_config():
    # chapter 6 loads these by name: an entry left over from an earlier book config would be read as today's
    from rladder_nb.experiments import occluded_mnist as om
    for model in om.MODELS:
        entries = zoo.find_entries("occluded_mnist", model=model, scale="book", manifest=MANIFEST)
        assert "occluded_mnist/" + model + "/book/seed0" in entries, f"no book-scale seed 0 of Table 1's {model}"
        standard = om.config(model, "book")
        for name, entry in entries.items():
            assert recorded_config(entry) == standard, f"{name}: recorded with another config than today's book scale"
            assert entry["steps"] == standard["n_steps"], f"{name}: not a finished run"


def test_book_scale_rladder_classifies_better_than_the_temporal_baseline_and_the_hierarchical_rnn():
    # Part II's acceptance point, on the means over the recorded seeds (each re-evaluated above)
    errors = zoo.values_by_seed("occluded_mnist", "classification_error", "book", manifest=MANIFEST)
    mean = {model: sum(by_seed.values()) / len(by_seed) for model, by_seed in errors.items()}
    for other in ("temporal_baseline", "hierarchical_rnn"):
        assert mean["rladder"] < mean[other], f"RLadder {mean['rladder']:.2f} % vs {other} {mean[other]:.2f} %"


def test_compare_metrics_can_fail():
    assert compare_metrics({"a": 1.0, "b": [1.0, 2.0]}, {"a": 1.0, "b": [1.0, 2.0]}) == []
    assert compare_metrics({"a": 1.0}, {"a": 1.1})
    assert compare_metrics({"b": [1.0, 2.0]}, {"b": [1.0]})
    assert compare_metrics({"a": 1.0}, {})


def test_record_and_load_roundtrip(tmp_path, monkeypatch):
    net, entry = zoo.train("toy_static", "rladder", "smoke", seed=0, progress=False)
    manifest_path = tmp_path / "manifest.json"
    name = zoo.record(net, entry, "python -m rladder_nb train toy_static --model rladder --scale smoke",
                      manifest_path=manifest_path)
    manifest = json.loads(manifest_path.read_text())
    assert name == "toy_static/rladder/smoke/seed0" and manifest[name]["metrics"] == entry["metrics"]
    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path)
    loaded, _ = zoo.load(name, manifest)
    exp = get_experiment("toy_static")
    assert compare_metrics(entry["metrics"], exp.evaluate("rladder", loaded, entry["config"], 0)) == []


def test_missing_and_corrupt_entries_are_reported(tmp_path, monkeypatch):
    with pytest.raises(KeyError, match="no zoo entry"):
        zoo.load("toy_static/rladder/book/seed99", {})
    bad = tmp_path / "manifest.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        zoo.load_manifest(bad)
    bad.write_text(json.dumps({"x": {"experiment": "toy_static"}}))
    with pytest.raises(ValueError, match="lacks the fields"):
        zoo.load_manifest(bad)
    # a checkpoint that does not match its recorded checksum
    net, entry = zoo.train("toy_static", "rladder", "smoke", progress=False)
    good = tmp_path / "good.json"
    name = zoo.record(net, entry, "test", manifest_path=good)
    manifest = json.loads(good.read_text())
    ckpt = tmp_path / manifest[name]["checkpoint"]
    ckpt.write_bytes(ckpt.read_bytes()[:-10] + b"0123456789")
    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path)
    with pytest.raises(ValueError, match="SHA-256"):
        zoo.load(name, manifest)


def test_load_or_train_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown experiment"):
        zoo.load_or_train("toy_nonexistent", "rladder", "smoke")
    with pytest.raises(ValueError, match="unknown model"):
        zoo.load_or_train("toy_static", "transformer", "smoke")
    with pytest.raises(ValueError, match="unknown scale"):
        zoo.load_or_train("toy_static", "rladder", "galactic")


def test_code_version_marks_changed_code_but_not_the_zoo(tmp_path):
    """``-dirty`` means changed code: a changed zoo file (recording writes one before stamping) does not count."""
    import subprocess

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "rladder_nb" / "zoo" / "checkpoints").mkdir(parents=True)
    (tmp_path / "rladder_nb" / "zoo" / "__init__.py").write_text("x = 1\n")
    (tmp_path / "rladder_nb" / "zoo" / "checkpoints" / "a.pt").write_bytes(b"1")
    (tmp_path / "rladder_nb" / "zoo" / "manifest.json").write_text("{}\n")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "start")
    clean = zoo.code_version(tmp_path)
    assert "+g" in clean and not clean.endswith("-dirty")
    (tmp_path / "rladder_nb" / "zoo" / "manifest.json").write_text('{"new": 1}\n')
    (tmp_path / "rladder_nb" / "zoo" / "checkpoints" / "a.pt").write_bytes(b"2")
    assert zoo.code_version(tmp_path) == clean
    (tmp_path / "rladder_nb" / "zoo" / "__init__.py").write_text("x = 2\n")
    assert zoo.code_version(tmp_path) == clean + "-dirty"


def test_values_by_seed_gathers_every_seed_of_a_setting():
    def entry(experiment, model, seed, metrics, dataset=None):
        e = {f: None for f in zoo.REQUIRED_FIELDS}
        e.update(experiment=experiment, model=model, scale="book", seed=seed, metrics=metrics)
        return e if dataset is None else dict(e, dataset=dataset)

    manifest = {"a": entry("x", "m1", 1, {"err": 3.0}), "b": entry("x", "m1", 0, {"err": 5.0}),
                "c": entry("x", "m2", 0, {"err": [9.0, 7.0], "ami": [0.1]}), "d": entry("x", "m3", 0, {"ami": 1}),
                "e": entry("y", "m1", 2, {"err": 1.0}), "f": entry("x", "m1", 4, {"err": 2.0}, dataset="semi")}
    assert zoo.values_by_seed("x", "err", "book", manifest=manifest) == {"m1": {0: 5.0, 1: 3.0, 4: 2.0},
                                                                        "m2": {0: 7.0}}
    assert list(zoo.values_by_seed("x", "err", "book", manifest=manifest)["m1"]) == [0, 1, 4]
    assert zoo.values_by_seed("x", "err", "book", dataset="semi", manifest=manifest) == {"m1": {4: 2.0}}
    assert zoo.values_by_seed("x", "err", "paper", manifest=manifest) == {}
    assert zoo.values_by_seed("x", "ami", "book", manifest=manifest) == {"m2": {0: 0.1}, "m3": {0: 1.0}}


@pytest.mark.parametrize("name", zoo.list_studies())
def test_recorded_study_matches_its_experiments_config(name):
    # each run of a study is its scale's standard config with the study's overrides, finished and evaluated:
    # a change to the experiment's config (or a hand-edited entry) makes the study stale, and this fails
    study = zoo.load_study(name)
    named = zoo.study_entries(study)
    assert len(named) == len(study["entries"])
    for entry_name, entry in named.items():
        assert (entry["experiment"], entry["scale"]) == (study["experiment"], study["scale"]), entry_name
        exp = get_experiment(entry["experiment"])
        _, standard = zoo.run_config(exp, entry["model"], entry["scale"], entry.get("dataset"))
        expected = zoo.apply_overrides(standard, entry.get("overrides"))
        recorded = recorded_config(entry)
        # a key added to the config after the study, at a default (None, False) that builds what was built before
        expected = {k: v for k, v in expected.items() if k in recorded or v not in (None, False)}
        assert recorded == expected, f"{entry_name}: config differs from the experiment's {entry['scale']} config"
        assert entry["steps"] == entry["config"]["n_steps"], f"{entry_name}: not a finished run"
        assert entry["metrics"], f"{entry_name}: no metrics"
    # every run is found by values_by_seed under one of its metrics (a row without a classifier has none of that)
    found = {(model, seed) for metric in {m for entry in named.values() for m in entry["metrics"]}
             for model, per in zoo.values_by_seed(study["experiment"], metric, study["scale"], manifest=named).items()
             for seed in per}
    assert len(found) == len(named)


def test_load_study_reports_missing_and_malformed_files(tmp_path):
    with pytest.raises(KeyError, match="no study 'nope'.*recorded studies: none"):
        zoo.load_study("nope", tmp_path)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        zoo.load_study("bad", tmp_path)
    (tmp_path / "bad.json").write_text(json.dumps({"name": "bad", "entries": []}))
    with pytest.raises(ValueError, match="lacks the fields .*'summary'"):
        zoo.load_study("bad", tmp_path)
    study = {f: "x" for f in zoo.STUDY_FIELDS}
    entry = {"experiment": "toy_static", "model": "rladder", "scale": "smoke", "seed": 0, "metrics": None,
             "config": {}, "steps": 2, "wall_time_s": 1.0, "code_version": "0"}
    for entries, message in (([], "non-empty list"), ([{"model": "rladder"}], "entry 0 lacks the fields"),
                             ([entry], "unfinished run")):
        (tmp_path / "bad.json").write_text(json.dumps(dict(study, entries=entries)))
        with pytest.raises(ValueError, match=message):
            zoo.load_study("bad", tmp_path)
    assert zoo.list_studies(tmp_path) == ["bad"]
    twice = dict(entry, metrics={"mse": 1.0})
    with pytest.raises(ValueError, match="two entries named"):
        zoo.study_entries({"name": "t", "entries": [twice, twice]})
