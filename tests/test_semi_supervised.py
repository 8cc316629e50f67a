"""The ``occluded_mnist_semi`` experiment (Table 2) and the Mean Teacher: every model trains in each of its
settings, the labelled / unlabelled split and batches are what they claim, unlabelled sequences send no class
gradient, the teacher is an exponential moving average, the consistency cost and its ramp-up match direct
computations, bad input is reported."""
import math

import numpy as np
import pytest
import torch

from rladder_nb.experiments import get_experiment
from rladder_nb.experiments import occluded_mnist as om
from rladder_nb.experiments import occluded_mnist_semi as semi
from rladder_nb.models.mean_teacher import MeanTeacher
from rladder_nb.models.video import StaticClassifier
from rladder_nb.training import load_checkpoint, save_checkpoint

RUNS = [(model, setting) for model in semi.MODELS for setting in semi.settings_of(model)]


@pytest.fixture(scope="module")
def smoke_runs():
    """Every (model, setting) trained for a few steps at smoke scale, and its metrics."""
    runs = {}
    for model, setting in RUNS:
        cfg = semi.config(model, "smoke", setting)
        net, result = semi.train_model(model, cfg, seed=0, progress=False)
        runs[(model, setting)] = (cfg, net, result, semi.evaluate(model, net, cfg, seed=0))
    return runs


@pytest.mark.parametrize("model, setting", RUNS)
def test_every_model_trains_in_each_setting_and_reports_its_metrics(smoke_runs, model, setting):
    cfg, net, result, metrics = smoke_runs[(model, setting)]
    assert result.steps == cfg["n_steps"] and all(np.isfinite(h["loss"]) for h in result.history)
    assert 0 <= metrics["classification_error"] <= 100 and metrics["n_test"] == cfg["n_test"]
    assert ("prediction_error" in metrics) == (model == "rladder")
    assert ("classification_error_teacher" in metrics) == (setting == "mean_teacher")
    assert isinstance(net, MeanTeacher) == (setting == "mean_teacher")
    assert ("consistency" in result.history[-1]) == (setting == "mean_teacher")


def test_settings_of_models_without_an_unsupervised_cost():
    assert semi.settings_of("rladder") == semi.DATASETS
    for model in semi.NO_UNSUPERVISED_COST:
        assert semi.settings_of(model) == ("labelled_only", "mean_teacher")
    assert get_experiment("occluded_mnist_semi") is semi


def test_labelled_and_unlabelled_digits_split_the_training_digits():
    cfg = semi.config("rladder", "smoke", "with_unlabelled")
    (lab_x, lab_y), (unl_x, unl_y) = semi.split_digits(cfg)
    images, labels = om.train_digits(cfg)
    assert len(lab_x) == cfg["n_labelled"] and len(lab_x) + len(unl_x) == len(images)
    rows = lambda a: {bytes(r) for r in a.reshape(len(a), -1)}  # noqa: E731
    assert rows(lab_x) | rows(unl_x) == rows(images)
    assert len(rows(lab_x) & rows(unl_x)) <= len(images) - len(rows(images))   # only duplicates of MNIST itself
    again = semi.split_digits(dict(cfg, setting="mean_teacher"))   # the split does not depend on the setting
    assert np.array_equal(again[0][0], lab_x) and np.array_equal(again[1][1], unl_y)
    assert len(np.unique(lab_y)) > 1


@pytest.mark.parametrize("setting", semi.DATASETS)
def test_batches_hold_the_setting_s_mix_and_are_a_function_of_the_step(setting):
    cfg = semi.config("rladder", "smoke", setting)
    _, make_batch, _ = semi.training_setup(cfg, seed=3)
    x, labels, step = make_batch(5)
    n_lab = cfg["labelled_per_batch"]      # the same labelled sequences per step in every setting
    assert x.shape[0] == (n_lab if setting == "labelled_only" else cfg["batch_size"]) and step == 5
    assert (labels[:n_lab] >= 0).all() and (labels[n_lab:] == -1).all()
    x2, labels2, _ = make_batch(5)
    assert torch.equal(x, x2) and torch.equal(labels, labels2)
    assert not torch.equal(make_batch(6)[0], x)


def test_unlabelled_sequences_send_no_class_gradient_and_train_the_prediction():
    cfg = semi.config("rladder", "smoke", "with_unlabelled")
    net = semi.build(cfg)
    _, make_batch, _ = semi.training_setup(cfg, seed=0)
    x, _, _ = make_batch(0)
    step = cfg["prediction_warmup"][1]
    loss, parts = semi.loss_terms(cfg, net, x, torch.full((len(x),), -1), step,
                                  torch.Generator().manual_seed(1))
    assert "class_ce" not in parts
    loss.backward()
    assert all(p.grad is None or not p.grad.any() for p in net.classifier.parameters())
    # the cost is exactly the prediction cost of the noisy input against the clean next frame
    noisy = x + cfg["noise_std"] * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        bottom = net(noisy)["bottom"]
    sse = ((bottom[:, :-1] - x[:, 1:]) ** 2).sum(dim=(2, 3, 4)).mean()
    assert loss.item() == pytest.approx(om.prediction_weight_at(cfg, step) * sse.item(), rel=1e-5)


def test_class_cost_reads_only_the_labelled_sequences():
    cfg = semi.config("gold_standard", "smoke", "labelled_only")
    net = semi.build(dict(cfg, noise_std=0.0))
    x = torch.rand(4, 1, 32, 32)
    labels = torch.tensor([3, -1, 7, -1])
    loss, parts = semi.loss_terms(dict(cfg, noise_std=0.0), net, x, labels, 0)
    with torch.no_grad():
        logits = net(x)["logits"]
    direct = torch.nn.functional.cross_entropy(logits[[0, 2]], labels[[0, 2]])
    assert loss.item() == pytest.approx(direct.item(), rel=1e-5) and parts["class_ce"] == pytest.approx(direct.item())


def test_teacher_is_an_exponential_moving_average_and_gets_no_gradient():
    cfg = semi.config("temporal_baseline", "smoke", "mean_teacher")
    net, make_batch, loss_fn = semi.training_setup(cfg, seed=0)
    with torch.no_grad():
        for p in net.student.parameters():
            p.add_(0.1)                                  # the student moved away from the teacher
    before = [p.clone() for p in net.teacher.parameters()]
    student = [p.clone() for p in net.student.parameters()]
    loss, parts = loss_fn(net, make_batch(4))
    decay = semi.teacher_decay_at(cfg, 4)
    for t0, s, t1 in zip(before, student, net.teacher.parameters()):
        assert torch.allclose(t1, decay * t0 + (1 - decay) * s, atol=1e-6)
    loss.backward()
    assert all(p.grad is None for p in net.teacher.parameters())
    assert all(not p.requires_grad for p in net.teacher.parameters())
    assert net.n_parameters() == net.student.n_parameters()


def test_consistency_cost_matches_a_direct_computation_and_vanishes_for_equal_networks():
    s, t = torch.randn(3, 5, 10), torch.randn(3, 5, 10)
    direct = ((s.softmax(-1) - t.softmax(-1)) ** 2).sum(-1).mean()
    assert semi.consistency_cost(s, t).item() == pytest.approx(direct.item())
    cfg = dict(semi.config("rladder", "smoke", "mean_teacher"), noise_std=0.0)
    net = semi.build(cfg)
    x = torch.rand(2, 5, 1, 32, 32)
    _, parts = semi.loss_terms(cfg, net, x, torch.tensor([1, -1]), 0)
    assert parts["consistency"] == pytest.approx(0.0, abs=1e-12)   # the teacher starts as a copy


def test_consistency_ramp_up_and_teacher_decay_schedules():
    cfg = semi.config("rladder", "book", "mean_teacher")
    w, ramp = cfg["consistency_weight"], cfg["consistency_rampup"]
    assert semi.consistency_weight_at(cfg, None) == 0.0 == semi.consistency_weight_at(cfg, -1)
    assert semi.consistency_weight_at(cfg, 0) == pytest.approx(w * math.exp(-5))
    assert semi.consistency_weight_at(cfg, ramp // 2) == pytest.approx(w * math.exp(-5 / 4), rel=1e-3)
    weights = [semi.consistency_weight_at(cfg, s) for s in range(0, 2 * ramp, 100)]
    assert all(a <= b for a, b in zip(weights, weights[1:]))
    assert semi.consistency_weight_at(cfg, ramp) == w == semi.consistency_weight_at(cfg, 10 * ramp)
    assert semi.consistency_weight_at(semi.config("rladder", "book", "with_unlabelled"), ramp) == 0.0
    assert semi.teacher_decay_at(cfg, 0) == 0.0 and semi.teacher_decay_at(cfg, 9) == pytest.approx(0.9)
    assert semi.teacher_decay_at(cfg, 10**6) == cfg["ema_decay"]


def test_consistency_cost_starts_when_the_class_cost_leaves_its_plateau():
    mt = MeanTeacher.around(StaticClassifier((1, 32, 32), [["dense", 8, 1, 3]]))
    assert int(mt.consistency_start) == -1
    for step in range(50):
        mt.track_class_cost(2.30, step, threshold=2.0)          # at chance: no start
    mt.track_class_cost(None, 50, threshold=2.0)                # a batch without labels changes nothing
    assert int(mt.consistency_start) == -1 and float(mt.class_cost_average) == pytest.approx(2.30)
    step = 51
    while int(mt.consistency_start) < 0:
        mt.track_class_cost(1.0, step, threshold=2.0)
        step += 1
    # a running average with momentum 0.99 from 2.30 towards 1.0 crosses 2.0 after about 26 steps
    assert int(mt.consistency_start) == step - 1 and 20 < step - 51 < 35
    mt.track_class_cost(2.30, step, threshold=2.0)
    assert int(mt.consistency_start) == step - 1                 # it never starts again
    # in training: no consistency weight before the start, the ramp after it
    cfg = semi.config("rladder", "smoke", "mean_teacher")
    net, make_batch, loss_fn = semi.training_setup(dict(cfg, consistency_start_cost=-1.0), seed=0)
    loss_fn(net, make_batch(0))
    assert int(net.consistency_start) == -1
    net, make_batch, loss_fn = semi.training_setup(dict(cfg, consistency_start_cost=99.0), seed=0)
    loss_fn(net, make_batch(3))
    assert int(net.consistency_start) == 3


def test_mean_teacher_round_trips_through_a_checkpoint(tmp_path, smoke_runs):
    cfg, net, _, _ = smoke_runs[("rladder", "mean_teacher")]
    with torch.no_grad():
        for p in net.teacher.parameters():
            p.mul_(0.5)                                  # make teacher and student differ
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "mt.pt", net))
    x = torch.rand(2, 5, 1, 32, 32)
    net.eval()
    for a, b in ((loaded.student, net.student), (loaded.teacher, net.teacher)):
        assert torch.allclose(a(x)["logits"], b(x)["logits"], atol=1e-6)
    assert not torch.allclose(loaded.student(x)["logits"], loaded.teacher(x)["logits"])


@pytest.mark.parametrize("model", semi.MODELS)
def test_paper_scale_configs_take_a_training_step(model):
    cfg = dict(semi.config(model, "paper", "mean_teacher"), batch_size=3, labelled_per_batch=1, n_labelled=4,
               n_steps=1, n_train=10)
    net, result = semi.train_model(model, cfg, seed=0, progress=False)
    assert result.steps == 1 and np.isfinite(result.history[-1]["loss"]) and isinstance(net, MeanTeacher)


def test_table2_markdown_shows_ours_beside_the_paper_s():
    results = {("labelled_only", "gold_standard"): {"classification_error": 12.5},
               ("mean_teacher", "rladder"): {"classification_error": 3.25}}
    text = semi.table2_markdown(results, "book")
    gold = next(line for line in text.splitlines() if "gold_standard" in line)
    assert "12.50 (paper 3.50)" in gold and "12.50 (=) (paper 3.50)" in gold and "– (paper 1.34)" in gold
    assert "3.25 (paper 1.69)" in text


def test_bad_input_is_reported():
    with pytest.raises(ValueError, match="unknown setting"):
        semi.config("rladder", "smoke", "fully_supervised")
    with pytest.raises(ValueError, match="no unsupervised cost"):
        semi.config("temporal_baseline", "book", "with_unlabelled")
    with pytest.raises(ValueError, match="unknown model"):
        semi.config("rladder_no_prediction", "book")
    with pytest.raises(ValueError, match="unknown scale"):
        semi.config("rladder", "huge")
    with pytest.raises(ValueError, match="leaves no unlabelled"):
        semi.split_digits(dict(semi.config("rladder", "smoke"), n_labelled=10**6))
    with pytest.raises(ValueError, match="made by occluded_mnist_semi.config"):
        semi.build(om.config("rladder", "smoke"))
    with pytest.raises(ValueError, match="unknown student class"):
        MeanTeacher("ResNet50", {})
    with pytest.raises(ValueError, match="does not match"):
        semi.train_model("rladder", semi.config("gold_standard", "smoke"), progress=False)
    assert isinstance(MeanTeacher.around(StaticClassifier((1, 32, 32), [["dense", 8, 1, 3]])).teacher,
                      StaticClassifier)
