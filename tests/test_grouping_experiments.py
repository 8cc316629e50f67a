"""The Part III experiments ``textured_mnist`` and ``moving_mnist_grouping``: smoke runs train and evaluate
deterministically, paper configs take a step, metrics agree with independent computations, bad input."""
import numpy as np
import pytest
import torch

from rladder_nb.__main__ import compare_metrics
from rladder_nb.experiments import get_experiment
from rladder_nb.experiments import moving_mnist_grouping as mm
from rladder_nb.experiments import textured_mnist as tm
from rladder_nb.metrics import adjusted_mutual_information
from rladder_nb.models.tagger import Tagger, starting_masks
from rladder_nb.models.video import StaticClassifier


@pytest.fixture(scope="module")
def textured_runs():
    runs = {}
    for dataset in tm.DATASETS:
        for model in tm.MODELS:
            cfg = tm.config(model, "smoke", dataset)
            net, result = tm.train_model(model, cfg, seed=0, progress=False)
            runs[(dataset, model)] = (cfg, net, result, tm.evaluate(model, net, cfg, seed=0))
    return runs


@pytest.mark.parametrize("dataset", tm.DATASETS)
@pytest.mark.parametrize("model", tm.MODELS)
def test_textured_models_train_and_report_per_iteration_metrics(textured_runs, dataset, model):
    cfg, net, result, metrics = textured_runs[(dataset, model)]
    assert result.steps == cfg["n_steps"] and all(np.isfinite(h["loss"]) for h in result.history)
    assert isinstance(net, StaticClassifier if model == "convnet" else Tagger)
    n_values = 1 if model == "convnet" else cfg["n_iterations"]
    assert len(metrics["classification_error"]) == n_values
    assert all(0 <= e <= 100 for e in metrics["classification_error"])
    assert ("ami" in metrics) == (model != "convnet")
    if model != "convnet":
        assert len(metrics["ami"]) == cfg["n_iterations"] and all(-1 <= a <= 1 for a in metrics["ami"])
    assert metrics["n_test"] == cfg["n_test"] and metrics["ami_convention"] == "tagger"
    assert cfg["texture_source"] == "free" and cfg["texture_bank"] == "free"


def test_textured_metrics_agree_with_a_direct_computation(textured_runs):
    cfg, net, _, metrics = textured_runs[("supervised", "rtagger")]
    out = tm.predict(net, cfg)
    assert out["masks"].shape == (cfg["n_test"], cfg["n_iterations"], cfg["n_groups"], 28, 28)
    from sklearn.metrics import adjusted_mutual_info_score
    last = out["masks"][:, -1].argmax(1).reshape(len(out["labels"]), -1)
    true = out["true_masks"].argmax(1).reshape(len(out["labels"]), -1)
    scores = [adjusted_mutual_info_score(t, p) for t, p in zip(true, last) if len(np.unique(t)) > 1]
    assert np.isclose(np.mean(scores), metrics["ami"][-1], atol=1e-5)
    error = (out["class_probs"][:, -1].argmax(-1) != out["labels"]).mean() * 100
    assert np.isclose(error, metrics["classification_error"][-1])
    assert np.allclose(out["class_probs"].sum(-1), 1, atol=1e-5)


def test_predict_can_start_from_the_true_segmentation(textured_runs):
    cfg, net, _, _ = textured_runs[("supervised", "rtagger")]
    n = 5
    out = tm.predict(net, cfg, n=n, start="ground_truth")
    data = tm.load_data(cfg)["test"]
    g = torch.Generator().manual_seed(tm.TEST_SEED)
    noisy = data.images[:n] + cfg["noise_std"] * torch.randn(data.images[:n].shape, generator=g)
    with torch.no_grad():
        want = net(noisy, cfg["n_iterations"], initial_masks=starting_masks("ground_truth", data.masks[:n], cfg["n_groups"]))
    assert np.allclose(out["masks"], want["masks"].numpy(), atol=1e-6)
    assert not np.allclose(out["masks"], tm.predict(net, cfg, n=n)["masks"])   # the random start differs
    with pytest.raises(ValueError, match="unknown start"):
        tm.predict(net, cfg, n=n, start="oracle")
    with pytest.raises(ValueError, match="needs a Tagger model"):
        tm.predict(textured_runs[("supervised", "convnet")][1], tm.config("convnet", "smoke"), start="ground_truth")
    mcfg = mm.config("rtagger", "smoke")
    mnet = mm.build(mcfg)
    seq = mm.predict(mnet, mcfg, n=2, start="ground_truth")
    frames = torch.as_tensor(seq["frames"][:, :-1, None])
    with torch.no_grad():
        want = mnet(frames, initial_masks=starting_masks("ground_truth", seq["true_masks"][:, 0], mcfg["n_groups"]))
    assert np.allclose(seq["masks"], want["masks"].numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="unknown start"):
        mm.predict(mnet, mcfg, n=2, start="oracle")


@pytest.fixture
def seen(monkeypatch):
    """The ``initial_masks`` of every Tagger forward pass while the test runs (None: the model's random start)."""
    calls = []
    forward = Tagger.forward

    def spy(self, x, *args, initial_masks=None, **kw):
        calls.append(initial_masks)
        return forward(self, x, *args, initial_masks=initial_masks, **kw)

    monkeypatch.setattr(Tagger, "forward", spy)
    return calls


def test_training_can_start_from_the_true_segmentation(seen, tmp_path):
    cfg = dict(tm.config("tagger", "smoke"), n_steps=1, batch_size=4, labelled_per_batch=4)
    assert cfg["train_start"] == "random"
    tm.train_model("tagger", cfg, seed=0, progress=False)
    assert seen == [None]                                   # Tagger's training: the model draws random masks
    seen.clear()
    tm.train_model("tagger", dict(cfg, train_start="ground_truth"), seed=0, progress=False)
    lab = tm.load_data(cfg)["labelled"]
    (masks,) = seen
    assert masks.shape == (4, cfg["n_groups"], 28, 28)
    # each example starts from a true segmentation of the training split: group 0 background, 1 digit
    starts = {bytes(m.argmax(0).numpy().astype(np.uint8)) for m in masks}
    truths = {bytes(t.argmax(0).numpy().astype(np.uint8)) for t in lab.masks}
    assert starts <= truths and float(masks[:, 2].max()) < 0.01
    with pytest.raises(ValueError, match="unknown start"):
        tm.train_model("tagger", dict(cfg, train_start="oracle"), progress=False)
    with pytest.raises(ValueError, match="needs a Tagger model"):
        tm.train_model("convnet", dict(tm.config("convnet", "smoke"), train_start="ground_truth"), progress=False)
    # a study run through the command line
    from rladder_nb.__main__ import main
    out = tmp_path / "run.json"
    main(["train", "textured_mnist", "--model", "tagger", "--scale", "smoke", "--set", "train_start=ground_truth",
          "--set", "n_steps=1", "--json", str(out), "--quiet"])
    import json
    assert json.loads(out.read_text())["overrides"] == {"train_start": "ground_truth", "n_steps": 1}


def test_masks_held_fixed_in_training_and_prediction():
    cfg = dict(tm.config("tagger", "smoke"), n_steps=1, batch_size=4, labelled_per_batch=4)
    assert cfg["hold_masks"] is False
    held = dict(cfg, hold_masks=True, train_start="ground_truth")
    net, _ = tm.train_model("tagger", held, seed=0, progress=False)
    assert net.mask_head.weight.grad is None          # the mask head never took part
    out = tm.predict(net, held, n=5, start="ground_truth")
    start = starting_masks("ground_truth", out["true_masks"], cfg["n_groups"]).numpy()
    assert all(np.allclose(out["masks"][:, i], start) for i in range(cfg["n_iterations"]))
    free = tm.predict(net, cfg, n=5, start="ground_truth")   # the same network, masks free
    assert not np.allclose(free["masks"][:, -1], start)
    study = tm.start_study(net, held, n=5)
    assert study["ground_truth"]["ami"] == [1.0] * cfg["n_iterations"]
    with pytest.raises(ValueError, match="hold_masks must be true or false"):
        tm.predict(net, dict(cfg, hold_masks="yes"), n=2)
    with pytest.raises(ValueError, match="needs a Tagger model"):
        tm.train_model("convnet", dict(tm.config("convnet", "smoke"), hold_masks=True), progress=False)


def test_binary_study_option_binarises_flips_bits_and_uses_the_binary_cost():
    cfg = dict(tm.config("tagger", "smoke", "gratings"), n_steps=2, batch_size=4, labelled_per_batch=4)
    assert cfg["likelihood"] == "gaussian"
    binary = dict(cfg, likelihood="bernoulli", flip_prob=0.25)
    net, result = tm.train_model("tagger", binary, seed=0, progress=False)
    assert net.likelihood == "bernoulli" and net.flip_prob == 0.25
    out = tm.predict(net, binary, n=20)
    raw = tm.load_data(cfg)["test"].images[:20].numpy()
    assert set(np.unique(out["images"])) == {0.0, 1.0}
    assert np.array_equal(out["images"], (raw > 0.5).astype(np.float32))     # binarised at 0.5
    assert set(np.unique(out["noisy"])) <= {0.0, 1.0}                       # bit flips, no Gaussian noise
    flipped = (out["noisy"] != out["images"]).mean()
    assert 0.2 < flipped < 0.3
    assert ((out["z"] >= 0) & (out["z"] <= 1)).all()                        # probabilities
    cost = tm.start_study(net, binary, n=20)["random"]["cost"]
    from rladder_nb.models.tagger import bernoulli_tagger_cost
    direct = bernoulli_tagger_cost(torch.as_tensor(out["images"]), torch.as_tensor(out["z"]),
                                   torch.as_tensor(out["masks"])).mean(0)
    assert np.allclose(cost, direct.numpy(), atol=1e-4)
    assert np.isfinite(tm.evaluate("tagger", net, binary)["ami"]).all()
    gaussian = tm.predict(tm.train_model("tagger", cfg, seed=0, progress=False)[0], cfg, n=20)
    assert np.array_equal(gaussian["images"], raw) and len(np.unique(gaussian["noisy"])) > 2
    with pytest.raises(ValueError, match="unknown likelihood 'poisson'"):
        tm.build(dict(cfg, likelihood="poisson"))


def test_moving_training_can_start_from_frame_0s_true_segmentation(seen):
    cfg = dict(mm.config("rtagger", "smoke"), n_steps=1)
    assert cfg["train_start"] == "random"
    mm.train_model("rtagger", cfg, seed=0, progress=False)
    assert seen == [None]
    seen.clear()
    mm.train_model("rtagger", dict(cfg, train_start="ground_truth"), seed=0, progress=False)
    (masks,) = seen
    assert masks.shape == (cfg["batch_size"], cfg["n_groups"], cfg["canvas"], cfg["canvas"])
    from rladder_nb.data.mnist import load_mnist
    from rladder_nb.data.moving_mnist import generate_moving_mnist
    digits = load_mnist("train")                      # the first batch again: frame 0's true masks
    first = generate_moving_mnist(digits.images, digits.labels, n=cfg["batch_size"], n_frames=cfg["n_frames"],
                                  canvas=cfg["canvas"], digit_size=cfg["digit_size"], n_digits=2,
                                  speed_range=tuple(cfg["speed_range"]),
                                  seed=int(np.random.default_rng([0, 0]).integers(2**62)))
    assert torch.allclose(masks, starting_masks("ground_truth", first["masks"][:, 0], cfg["n_groups"]))
    with pytest.raises(ValueError, match="unknown start"):
        mm.train_model("rtagger", dict(cfg, train_start="oracle"), progress=False)


def test_textured_evaluation_is_deterministic_and_registered(textured_runs):
    assert get_experiment("textured_mnist") is tm and get_experiment("moving_mnist_grouping") is mm
    cfg, net, _, metrics = textured_runs[("semi_supervised", "rtagger")]
    assert compare_metrics(metrics, tm.evaluate("rtagger", net, cfg, seed=0)) == []
    again, _ = tm.train_model("rtagger", cfg, seed=0, progress=False)
    assert compare_metrics(metrics, tm.evaluate("rtagger", again, cfg, seed=0)) == []
    assert compare_metrics({"ami_convention": "tagger"}, {"ami_convention": "other"})


def test_semi_supervised_batches_mix_labelled_and_unlabelled(textured_runs):
    cfg, _, result, _ = textured_runs[("semi_supervised", "rtagger")]
    data = tm.load_data(cfg)
    assert len(data["unlabelled"]) == cfg["n_unlabelled"] > 0 and (data["unlabelled"].labels == -1).all()
    assert "class_ce" in result.history[0] and "tagger_cost" in result.history[0]


def test_moving_mnist_smoke_run_and_metric():
    cfg = mm.config("rtagger", "smoke")
    net, result = mm.train_model("rtagger", cfg, seed=0, progress=False)
    assert result.steps == cfg["n_steps"] and np.isfinite(result.history[-1]["loss"])
    metrics = mm.evaluate("rtagger", net, cfg, seed=0)
    assert len(metrics["ami"]) == cfg["n_frames"] - 1
    assert compare_metrics(metrics, mm.evaluate("rtagger", net, cfg, seed=0)) == []
    assert mm.evaluation_requirements(cfg) is None and mm.evaluation_requirements(dict(cfg, test_digits="x"))
    out = mm.predict(net, cfg, n=cfg["n_test"])
    t = 2  # prediction 2 is of frame 3: an independent re-computation with the metric's convention
    want = adjusted_mutual_information(out["true_masks"][:, t + 1], out["masks"][:, t], convention="all",
                                       valid=(~out["overlap"][:, t + 1]) & (out["true_masks"][:, t + 1, 0] < 0.5))
    assert np.isclose(want, metrics["ami"][t], atol=1e-5, equal_nan=True)
    fig7 = mm.predict(net, cfg, n=2, n_observed=3, n_generate=2)
    assert fig7["frames"].shape[1] == 5 and fig7["masks"].shape[1] == 4 and fig7["prediction"].shape[1] == 4


@pytest.mark.parametrize("model", tm.MODELS)
def test_textured_paper_configs_take_a_training_step(model):
    cfg = dict(tm.config(model, "paper"), batch_size=2, labelled_per_batch=1, n_steps=1, n_labelled=4,
               n_unlabelled=0, n_test=2)
    assert cfg["texture_source"] == "auto" and cfg["n_iterations"] == 3 and cfg["n_groups"] == 3
    net, result = tm.train_model(model, cfg, seed=0, progress=False)
    assert result.steps == 1 and np.isfinite(result.history[-1]["loss"])


def test_moving_paper_config_takes_a_training_step():
    cfg = dict(mm.config("rtagger", "paper"), batch_size=1, n_steps=1, n_frames=3, canvas=32, digit_size=14)
    net, result = mm.train_model("rtagger", cfg, seed=0, progress=False)
    assert result.steps == 1 and np.isfinite(result.history[-1]["loss"])
    assert mm.config("rtagger", "paper")["n_frames"] == 20


def test_bad_input_is_reported():
    with pytest.raises(ValueError, match="unknown model"):
        tm.config("resnet", "smoke")
    with pytest.raises(ValueError, match="unknown dataset"):
        tm.config("rtagger", "smoke", "fully_unsupervised")
    with pytest.raises(ValueError, match="scale"):
        tm.config("rtagger", "huge")
    with pytest.raises(ValueError, match="unknown model"):
        mm.config("tagger", "smoke")
    with pytest.raises(ValueError, match="does not match"):
        tm.train_model("tagger", tm.config("rtagger", "smoke"), progress=False)
    with pytest.raises(ValueError, match="cfg must be"):
        tm.build({"model": "rtagger"})
    with pytest.raises(ValueError, match="cfg must be"):
        mm.evaluate("rtagger", None, {})
    net = tm.build(tm.config("rtagger", "smoke"))
    with pytest.raises(ValueError, match="n must be"):
        tm.predict(net, tm.config("rtagger", "smoke"), n=0)
    with pytest.raises(ValueError, match="n_observed"):
        mm.predict(mm.build(mm.config("rtagger", "smoke")), mm.config("rtagger", "smoke"), n_observed=0)
    torch.manual_seed(0)


def test_table4_puts_the_papers_numbers_beside_ours():
    ours = {("supervised", "rtagger"): {"ami": [0.1, 0.2, 0.3], "classification_error": [50.0, 40.0, 30.0]},
            ("supervised", "convnet"): {"classification_error": [60.0]}}
    table = tm.table4_markdown(ours, "book")
    assert "| supervised | rtagger | 0.55 / 0.75 / 0.80 ± 0.01 | 0.100 / 0.200 / 0.300 | 18.2 / 8.0 / 5.9 ± 0.2 " \
           "| 50.0 / 40.0 / 30.0 |" in table
    assert "| supervised | convnet | – | – | 14.3 ± 0.46 | 60.0 |" in table
    assert "| semi_supervised | tagger | – | – | – | not run |" in table


def test_cli_reproduce_prints_the_experiments_table(capsys):
    from rladder_nb.__main__ import main

    assert main(["reproduce", "moving_mnist_grouping", "--scale", "smoke", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "| rtagger | 0 |" in out and "0.75" in out and "exclude_background" in out


def test_engine_options_reach_the_rladder_and_texture_scale_is_a_config_choice():
    cfg = tm.config("rtagger", "smoke")
    cfg.update(cell="reslstm", gate_decoder_to_encoder=True)
    net = tm.build(cfg)
    assert net.engine.d2e_gates is not None and net.engine.config["cell"] == "reslstm"
    assert tm.build(tm.config("tagger", "smoke")).engine.d2e_gates is None   # Tagger: no links to gate
    default = tm.load_data(tm.config("rtagger", "smoke"))["test"].images
    cfg["texture_scale_range"] = [0.25, 0.5]                                # finer textures, same digits
    fine = tm.load_data(cfg)["test"]
    assert fine.images.shape == default.shape and not torch.equal(fine.images, default)
    assert torch.equal(fine.masks, tm.load_data(tm.config("rtagger", "smoke"))["test"].masks)


def test_generator_options_are_config_choices_and_gratings_a_texture_source():
    """The gratings control of chapter 9: Tagger's own textures, thin digits, soft masks, no rotation."""
    base = tm.config("rtagger", "smoke")
    assert {k: base[k] for k in tm.GENERATOR_DEFAULTS} == tm.GENERATOR_DEFAULTS
    old_entry = {k: v for k, v in base.items() if k not in tm.GENERATOR_DEFAULTS}   # recorded before these keys
    assert torch.equal(tm.load_data(old_entry)["test"].images, tm.load_data(base)["test"].images)
    control = dict(base, texture_source="gratings", thicken=0, soft_masks=True, rotate=False,
                   texture_scale_range=[1, 1])
    data = tm.load_data(control)
    assert data["texture_source"] == "gratings"
    thick, thin = tm.load_data(base)["test"].masks[:, 1], data["test"].masks[:, 1]
    assert thin.sum() < thick.sum()                                     # no thickening: fewer digit pixels
    assert ((thin > 0) & (thin < 1)).any() and not ((thick > 0) & (thick < 1)).any()   # soft masks
    # far from the digit, each image is one pure grating: a single spatial frequency (plus the mean)
    image = data["test"].images[0, 0].numpy()
    corner = image[:6, :6] if data["test"].masks[0, 1, :6, :6].sum() == 0 else image[-6:, -6:]
    assert corner.min() >= 0 and corner.max() <= 1 and corner.std() > 0.05


def test_the_gratings_control_is_a_dataset_of_its_own():
    cfg = tm.config("rtagger", "smoke", "gratings")
    sup = tm.config("rtagger", "smoke", "supervised")
    assert {k: cfg[k] for k in tm.CONTROLS["gratings"]} == tm.CONTROLS["gratings"]
    assert cfg["n_labelled"] == sup["n_labelled"] and cfg["n_unlabelled"] == 0    # fully supervised sizes
    assert tm.load_data(cfg)["texture_source"] == "gratings"
    with pytest.raises(ValueError, match="gratings"):                              # the error lists it
        tm.config("rtagger", "smoke", "stripes")


def test_the_flat_control_differs_from_the_data_in_brightness_only():
    cfg, base = tm.config("tagger", "smoke", "flat"), tm.config("tagger", "smoke", "supervised")
    assert cfg["texture_source"] == "flat" and {k: v for k, v in cfg.items() if k not in ("dataset", "texture_source")} \
        == {k: v for k, v in base.items() if k not in ("dataset", "texture_source")}
    data, real = tm.load_data(cfg), tm.load_data(base)
    assert data["texture_source"] == "flat"
    test = data["test"]
    assert torch.equal(test.masks, real["test"].masks)               # the same digits where they were
    for image, masks in zip(test.images[:10, 0], test.masks[:10]):
        for region in masks.bool():                                  # each region a single grey level
            assert float(image[region].max() - image[region].min()) < 1e-5


def test_study_run_of_the_gratings_control_through_the_cli(tmp_path, capsys):
    import json

    from rladder_nb.__main__ import main

    argv = ["train", "textured_mnist", "--model", "tagger", "--scale", "smoke", "--quiet",
            "--set", "texture_source=gratings", "--set", "thicken=0", "--set", "soft_masks=true",
            "--set", "rotate=false", "--set", "texture_scale_range=[1, 1]", "--json", str(tmp_path / "r.json")]
    assert main(argv) == 0
    entry = json.loads((tmp_path / "r.json").read_text())
    assert entry["config"]["texture_bank"] == "gratings" and entry["overrides"]["thicken"] == 0
    assert len(entry["metrics"]["ami"]) == entry["config"]["n_iterations"]


def test_configs_do_not_share_mutable_values():
    a, b = tm.config("rtagger", "smoke"), tm.config("tagger", "smoke")
    a["texture_scale_range"][0] = 0.1
    assert b["texture_scale_range"] == tm.GENERATOR_DEFAULTS["texture_scale_range"] == [0.6, 1.2]
