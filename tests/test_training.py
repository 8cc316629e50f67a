"""The training loop and checkpoints: resume reproduces an uninterrupted run; bad files are reported."""
import pytest
import torch

from rladder_nb import training
from rladder_nb.models.rladder import RLadder, dense


def _setup(seed=0):
    torch.manual_seed(seed)
    net = RLadder((4,), [dense(8)], bottom_output=True)

    def make_batch(step):
        g = torch.Generator().manual_seed(step)
        return torch.randn(16, 3, 4, generator=g)

    def loss_fn(model, x):
        loss = ((model(x)["bottom"] - x) ** 2).mean()
        return loss, {}

    return net, make_batch, loss_fn


def test_training_reduces_the_loss():
    net, make_batch, loss_fn = _setup()
    before = loss_fn(net, make_batch(999))[0].item()
    training.train(net, make_batch, loss_fn, 150, lr=1e-2, progress=False)
    after = loss_fn(net, make_batch(999))[0].item()
    assert after < 0.5 * before


def test_resume_equals_an_uninterrupted_run(tmp_path):
    net_a, make_batch, loss_fn = _setup()
    training.train(net_a, make_batch, loss_fn, 40, progress=False)

    ckpt = tmp_path / "run.pt"
    net_b, _, _ = _setup()
    r1 = training.train(net_b, make_batch, loss_fn, 40, progress=False, checkpoint_path=ckpt, max_seconds=0.0)
    assert r1.stopped_early and 0 < r1.steps < 40
    net_c, _, _ = _setup(seed=123)  # different initial weights: everything must come from the checkpoint
    r2 = training.train(net_c, make_batch, loss_fn, 40, progress=False, checkpoint_path=ckpt)
    assert r2.steps == 40
    for p, q in zip(net_a.parameters(), net_c.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_best_weights_and_evaluations_survive_a_resume(tmp_path):
    """keep_best: a run killed after its best check and continued from its checkpoint ends with the same
    evaluations and the same best weights as an uninterrupted run."""
    net_a, make_batch, loss_fn = _setup()
    scores = {4: 5.0, 8: 3.0, 12: 4.0, 16: 6.0}     # the evaluation after each 4th step: best at step 8
    last, kill_at = {}, {}

    def batches(step):
        last["step"] = step
        if step == kill_at.get("step"):
            raise RuntimeError("killed")
        return make_batch(step)

    def evaluate(model):
        return {"score": scores[last["step"] + 1], "other": 1.0}

    def run(net, **kw):
        return training.train(net, batches, loss_fn, 16, progress=False, evaluate=evaluate, eval_every=4,
                              keep_best="score", **kw)

    whole = run(net_a)
    assert (whole.best["step"], whole.best["value"], whole.best["metric"]) == (8, 3.0, "score")
    assert [e["step"] for e in whole.evaluations] == [4, 8, 12, 16]

    ckpt = tmp_path / "run.pt"
    kill_at["step"] = 11                                 # its last checkpoint is from step 10
    with pytest.raises(RuntimeError, match="killed"):
        run(_setup()[0], checkpoint_path=ckpt, checkpoint_every=10)
    kill_at.clear()
    net_c = _setup(seed=123)[0]                          # fresh weights: all must come from the checkpoint
    piece = run(net_c, checkpoint_path=ckpt, checkpoint_every=10)
    assert [e["step"] for e in piece.evaluations] == [4, 8, 12, 16]
    assert (piece.best["step"], piece.best["value"]) == (8, 3.0)
    for name, value in whole.best["state_dict"].items():
        assert torch.allclose(value, piece.best["state_dict"][name], atol=1e-6)
    final = net_a.state_dict()                           # the best weights are step 8's, not the last
    assert any(not torch.allclose(v, final[k]) for k, v in whole.best["state_dict"].items())
    for p, q in zip(net_a.parameters(), net_c.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_keep_best_needs_a_metric_the_evaluation_returns():
    net, make_batch, loss_fn = _setup()
    plain = training.train(net, make_batch, loss_fn, 4, progress=False, evaluate=lambda m: {"a": 1.0}, eval_every=2)
    assert plain.best is None and len(plain.evaluations) == 2
    with pytest.raises(ValueError, match="keep_best='b'.*only \\['a'\\]"):
        training.train(net, make_batch, loss_fn, 4, progress=False, evaluate=lambda m: {"a": 1.0}, eval_every=2,
                       keep_best="b")


def test_checkpoint_roundtrip_and_corruption(tmp_path):
    net, _, _ = _setup()
    path = training.save_checkpoint(tmp_path / "m.pt", net)
    loaded, payload = training.load_checkpoint(path, expected_sha256=training.sha256_of(path))
    assert payload["model_class"] == "RLadder"
    x = torch.randn(2, 3, 4)
    assert torch.allclose(net(x)["bottom"], loaded(x)["bottom"])

    with pytest.raises(ValueError, match="SHA-256"):
        training.load_checkpoint(path, expected_sha256="0" * 64)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="corrupt"):
        training.load_checkpoint(bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        training.load_checkpoint(tmp_path / "missing.pt")


def test_stale_checkpoint_is_reported_not_half_loaded(tmp_path):
    net, _, _ = _setup()
    payload_path = training.save_checkpoint(tmp_path / "m.pt", net)
    payload = torch.load(payload_path, weights_only=True)
    payload["model_config"]["layers"] = [dict(kind="dense", size=9, stride=1, kernel_size=3)]
    torch.save(payload, payload_path)
    with pytest.raises(ValueError, match="does not fit its model config"):
        training.load_checkpoint(payload_path)


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "keep.bin"
    training.atomic_write_bytes(path, b"good")

    class Boom(Exception):
        pass

    def exploding_fsync(fd):
        raise Boom()

    from rladder_nb import fileio
    monkeypatch.setattr(fileio.os, "fsync", exploding_fsync)
    with pytest.raises(Boom):
        training.atomic_write_bytes(path, b"half-written")
    assert path.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.bin"]


def test_learning_rate_schedule_and_mean_teacher():
    assert training.ladder_lr(0, 90, 1.0) == 1.0
    assert training.ladder_lr(59, 90, 1.0) == 1.0
    assert training.ladder_lr(75, 90, 1.0) == pytest.approx(0.5)
    teacher, student = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    expected = 0.9 * teacher.weight.detach() + 0.1 * student.weight.detach()
    training.ema_update(teacher, student, 0.9)
    assert torch.allclose(teacher.weight, expected)
    with pytest.raises(ValueError, match="decay"):
        training.ema_update(teacher, student, 1.5)


def test_bad_arguments():
    net, make_batch, loss_fn = _setup()
    with pytest.raises(ValueError, match="n_steps"):
        training.train(net, make_batch, loss_fn, -1, progress=False)
    with pytest.raises(ValueError, match="lr"):
        training.train(net, make_batch, loss_fn, 1, lr=0, progress=False)
