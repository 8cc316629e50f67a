"""Experiment ``music``: next-step prediction of polyphonic piano rolls (the paper's Section 3.2, Table 3).

Introduced in *Polyphonic music* (``book/part2/08_polyphonic_music.md``).

* Data: one of the four benchmarks of Boulanger-Lewandowski et al. (2012) (``dataset`` in ``jsb``,
  ``nottingham``, ``musedata``, ``pianomidi``) from :func:`rladder_nb.data.music.load_music`. The config
  records ``data_source``: ``'benchmark'`` (the original pickle or its ``.mat`` copy) or ``'music21'``
  (JSB only, offline fallback, not the benchmark's split); evaluation refuses other data than the run's.
* Models (:mod:`rladder_nb.models.music`): ``rladder`` — convolutional LSTMs along the pitch axis and a
  fully-connected LSTM on top, the bottom decoder output giving the next frame's logits; ``lstm`` — an
  LSTM baseline of similar size; ``bernoulli`` — the independent-note floor (fitted by counting).
* Training: batches of random crops of ``crop_len`` steps (pieces drawn in proportion to their length,
  shorter ones padded and masked), Adam with the Ladder's schedule, gradient clipping, and the weights
  with the best NLL on a fixed validation subset kept (checked every ``eval_every`` steps).
* Metrics: ``nll`` — test NLL in nats per time step, pooled over every step of every test piece, first
  step scored (:func:`rladder_nb.metrics.piano_roll_nll`); ``valid_nll`` the same on the validation set;
  ``n_parameters``.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from .. import settings
from ..data import music as music_data
from ..metrics import piano_roll_nll
from ..models.music import PianoRollBernoulli, PianoRollLSTM, PianoRollRLadder
from ..training import train

NAME = "music"
MODELS = ("rladder", "lstm", "bernoulli")
DATASETS = tuple(music_data.DATASETS)  # ('jsb', 'nottingham', 'musedata', 'pianomidi')
DEFAULT_DATASET = "jsb"
STEPS_PER_QUARTER = {"jsb": 1, "nottingham": 2, "musedata": 2, "pianomidi": 2}

# RLadder layouts, bottom to top: ('conv', channels, stride, kernel) act on the (1, 1, 88) frame, so strides
# and kernels are (1, k) pairs along the pitch axis; the first kernel spans an octave and a semitone.
# "paper": five convolutional LSTMs and one fully-connected LSTM; counting per level a bottom-up map, an
# encoder LSTM and a decoder cell gives the paper's "18 layers" (our reconstruction of Appendix D.2).
LAYOUTS = {
    "smoke": [["conv", 4, [1, 1], [1, 13]], ["conv", 4, [1, 2], [1, 5]], ["dense", 16]],
    "book": [["conv", 8, [1, 1], [1, 13]], ["conv", 16, [1, 2], [1, 5]], ["conv", 16, [1, 2], [1, 5]],
             ["dense", 128]],
    "paper": [["conv", 32, [1, 1], [1, 13]], ["conv", 48, [1, 2], [1, 5]], ["conv", 64, [1, 2], [1, 5]],
              ["conv", 64, [1, 2], [1, 5]], ["conv", 96, [1, 2], [1, 5]], ["dense", 512]],
}
SCALES = {
    "smoke": dict(lstm_hidden=24, crop_len=16, batch_size=8, n_steps=16, lr=3e-3, eval_every=8,
                  valid_pieces=6, valid_max_steps=48, max_pieces=24),
    "book": dict(lstm_hidden=256, crop_len=48, batch_size=32, n_steps=400, lr=3e-3, eval_every=50,
                 valid_pieces=80, valid_max_steps=192, max_pieces=None),
    "paper": dict(lstm_hidden=1024, crop_len=128, batch_size=64, n_steps=20000, lr=1e-3, eval_every=500,
                  valid_pieces=None, valid_max_steps=None, max_pieces=None),
}
# sizes of the chapter's own computations (not of training): primer and continuation lengths, samples
CHAPTER_SIZES = {
    "smoke": dict(prime_len=8, continuation=8, n_samples=2, audio_steps=16, explorer_pieces=3),
    "book": dict(prime_len=16, continuation=32, n_samples=3, audio_steps=48, explorer_pieces=20),
    "paper": dict(prime_len=32, continuation=64, n_samples=4, audio_steps=128, explorer_pieces=77),
}
# (scale, dataset) -> changes to SCALES[scale]: the book-scale step budgets (a 2-core CPU, about 1 s per RLadder
# step; JSB, which the book discusses most, gets the most: about 20 minutes)
DATASET_OVERRIDES = {("book", "jsb"): dict(n_steps=1200), ("book", "nottingham"): dict(n_steps=500),
                     ("book", "musedata"): dict(n_steps=300), ("book", "pianomidi"): dict(n_steps=300)}
INPUT_DROPOUT = {"smoke": 0.1, "book": 0.1, "paper": 0.1}  # the same for the RLadder and the LSTM
SMOOTHING = 1.0  # Laplace pseudo-count of the Bernoulli floor (our choice; 0.01..1 agree to 0.01 nats)
GRAD_CLIP = 1.0


def _check_dataset(dataset) -> str:
    if not isinstance(dataset, str) or dataset not in DATASETS:
        raise ValueError(f"unknown music dataset {dataset!r}: expected one of {', '.join(DATASETS)}")
    return dataset


def benchmark_available(dataset: str, data_dir=None) -> bool:
    """True when the benchmark file of ``dataset`` (original pickle or ``.mat`` copy) is in the data directory."""
    info = music_data.DATASETS[_check_dataset(dataset)]
    root = settings.data_dir(data_dir)
    return any((folder / info[kind]).is_file() for folder in (root, root / "music") for kind in ("pickle", "mat"))


def config(model: str, scale: str, dataset: str = DEFAULT_DATASET) -> dict:
    """Every choice of a ``music`` run at ``scale`` on ``dataset`` (sizes are our reconstruction).

    ``data_source`` is resolved now: ``'benchmark'`` when the benchmark file is in the data directory
    (``RLADDER_NB_DATA``), else ``'music21'`` for JSB; the other data sets need their file.
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r} for experiment {NAME!r}: expected one of {', '.join(MODELS)}")
    scale = settings.check_scale(scale)
    dataset = _check_dataset(dataset)
    if benchmark_available(dataset):
        source = "benchmark"
    elif dataset == "jsb":
        source = "music21"
    else:
        info = music_data.DATASETS[dataset]
        raise FileNotFoundError(f"the {dataset} benchmark needs {info['mat']!r} or {info['pickle']!r} in "
                                f"{settings.data_dir()} (set RLADDER_NB_DATA to the folder that holds it)")
    sizes = dict(SCALES[scale], **DATASET_OVERRIDES.get((scale, dataset), {}))
    if model == "rladder":
        net = dict(layers=copy.deepcopy(LAYOUTS[scale]), cell="lstm", combinator="vanilla", decoder=True,
                   decoder_to_encoder=True, pitch_bias=True, input_dropout=INPUT_DROPOUT[scale], norm="auto")
    elif model == "lstm":
        net = dict(hidden_size=sizes["lstm_hidden"], num_layers=1, dropout=0.0, input_dropout=INPUT_DROPOUT[scale])
    else:
        net = dict(smoothing=SMOOTHING)
    training = {k: v for k, v in sizes.items() if k not in ("lstm_hidden", "max_pieces")}
    return dict(model=model, scale=scale, dataset=dataset, data_source=source,
                max_pieces=sizes["max_pieces"] if source == "music21" else None,
                net=net, grad_clip=GRAD_CLIP, **({} if model == "bernoulli" else training))


def evaluation_requirements(cfg: dict) -> str | None:
    """Why this run cannot be re-evaluated here (its benchmark file is missing), or None if it can."""
    if cfg.get("data_source") == "benchmark" and not benchmark_available(cfg["dataset"]):
        info = music_data.DATASETS[cfg["dataset"]]
        return (f"music/{cfg['dataset']} was trained on the benchmark file {info['mat']!r} / {info['pickle']!r}, "
                f"which is not in {settings.data_dir()} (set RLADDER_NB_DATA)")
    return None


def load_data(cfg: dict) -> music_data.MusicDataset:
    """The data a run was trained on; raises ``FileNotFoundError`` if only other data are available."""
    missing = evaluation_requirements(cfg)
    if missing:
        raise FileNotFoundError(missing)
    data = music_data.load_music(cfg["dataset"], max_pieces=cfg.get("max_pieces"))
    found = "music21" if data.source.startswith("music21") else "benchmark"
    if found != cfg["data_source"]:
        raise FileNotFoundError(f"this run used the {cfg['data_source']} data of {cfg['dataset']}, but "
                                f"{found} data were found ({data.source}); evaluate it where its data are")
    return data


def build(cfg: dict):
    """The untrained network of a config."""
    model = cfg["model"]
    cls = {"rladder": PianoRollRLadder, "lstm": PianoRollLSTM, "bernoulli": PianoRollBernoulli}[model]
    return cls(**cfg["net"])


def crop_batch(rolls, batch_size: int, crop_len: int, rng: np.random.Generator):
    """Random crops of ``crop_len`` steps: pieces drawn in proportion to their length, start uniform.

    Returns ``(batch (B, crop_len, 88) float32, lengths (B,))``; pieces shorter than the crop are
    zero-padded and their ``lengths`` say how many steps are real. Introduced in *Polyphonic music*.
    """
    lengths = np.array([len(r) for r in rolls])
    pieces = rng.choice(len(rolls), size=batch_size, p=lengths / lengths.sum())
    batch = np.zeros((batch_size, crop_len, music_data.N_NOTES), dtype=np.float32)  # (B, crop_len, 88)
    out_lengths = np.zeros(batch_size, dtype=np.int64)
    for b, i in enumerate(pieces):
        start = rng.integers(0, max(1, lengths[i] - crop_len + 1))
        piece = rolls[i][start:start + crop_len]
        batch[b, :len(piece)] = piece
        out_lengths[b] = len(piece)
    return batch, out_lengths


def length_buckets(lengths, overhead_steps: float = 16.0) -> list:
    """Split pieces (sorted by length) into batches that minimise the work of a padded step-by-step loop.

    A batch of ``n`` pieces costs ``max_length * (overhead_steps + n)``: every time step pays a fixed
    overhead (Python and kernel launches) plus one unit per piece, padding included. Dynamic programming
    over the sorted lengths finds the cheapest split. Returns a list of index arrays.
    """
    lengths = np.asarray(lengths)
    order = np.argsort(lengths, kind="stable")
    sorted_len = lengths[order]
    n = len(order)
    best = np.full(n + 1, np.inf)
    best[0], cut = 0.0, np.zeros(n + 1, dtype=np.int64)
    for j in range(1, n + 1):  # best[j]: cheapest split of the j shortest pieces; the last batch is i..j-1
        costs = best[:j] + sorted_len[j - 1] * (overhead_steps + (j - np.arange(j)))
        cut[j] = int(np.argmin(costs))
        best[j] = costs[cut[j]]
    buckets, j = [], n
    while j > 0:
        buckets.append(order[cut[j]:j])
        j = cut[j]
    return buckets[::-1]


@torch.no_grad()
def predict_logits(net, rolls, device=None) -> list:
    """Aligned logits ``(T_i, 88)`` for every roll: ``[t]`` scores ``roll[t]`` given ``roll[:t]`` (float64).

    Introduced in *Polyphonic music* (Part II).
    """
    device = device or next(iter(net.state_dict().values())).device
    net.eval()
    out = [None] * len(rolls)
    for bucket in length_buckets([len(r) for r in rolls]):
        batch, _ = music_data.pad_rolls([rolls[i] for i in bucket])  # (B, T_max, 88)
        logits = net.aligned_logits(torch.as_tensor(batch, device=device)).double().cpu().numpy()
        for b, i in enumerate(bucket):
            out[i] = logits[b, :len(rolls[i])]
    return out


def nll(net, rolls) -> float:
    """Test NLL (nats per step, pooled, first step scored) of ``net`` on a list of rolls."""
    return piano_roll_nll(predict_logits(net, rolls), list(rolls), from_logits=True)


def start_from_floor(net, train_rolls, smoothing: float = SMOOTHING) -> None:
    """Set the output bias to the log-odds of each note's training frequency (our choice).

    The network then starts as the Bernoulli floor instead of at 61 nats per step (88 coins of
    probability 1/2), which saves the first few hundred steps. Introduced in *Polyphonic music*.
    """
    floor = PianoRollBernoulli(smoothing).fit(train_rolls)
    logits = torch.logit(floor.probabilities).float()  # (88,)
    bias = net.pitch_bias if isinstance(net, PianoRollRLadder) else net.readout.bias
    if bias is not None:
        with torch.no_grad():
            bias.copy_(logits.to(bias.device))


def _valid_subset(cfg, data):
    pieces = data.valid if cfg["valid_pieces"] is None else data.valid[:cfg["valid_pieces"]]
    return [p[:cfg["valid_max_steps"]] if cfg["valid_max_steps"] else p for p in pieces]


def train_model(model: str, cfg: dict, seed: int = 0, progress=True, checkpoint_path=None,
                max_seconds: float | None = None):
    """Train one ``music`` model; returns ``(model, TrainResult)``.

    The Bernoulli floor is fitted by counting (a TrainResult with 0 steps); the others train with
    :func:`rladder_nb.training.train` on random crops and keep the weights with the best NLL on a fixed
    validation subset; both curves are stored in the model's ``train_curve`` / ``valid_curve`` buffers.
    A run continued from ``checkpoint_path`` keeps the best weights among all its checks (they are saved
    with the checkpoint).
    """
    import time

    from ..training import TrainResult

    if model != cfg["model"]:
        raise ValueError(f"config is for model {cfg['model']!r}, not {model!r}")
    settings.seed_everything(seed)
    device = settings.get_device()
    data = load_data(cfg)
    net = build(cfg).to(device)
    if model == "bernoulli":
        start = time.perf_counter()
        net.fit(data.train)
        return net, TrainResult(steps=0, wall_time_s=time.perf_counter() - start)
    start_from_floor(net, data.train)
    valid = _valid_subset(cfg, data)

    def validate(m):
        return {"valid_nll": nll(m, valid)}

    def make_batch(step):
        rng = np.random.default_rng([seed, step])
        x, lengths = crop_batch(data.train, cfg["batch_size"], cfg["crop_len"], rng)
        return torch.as_tensor(x, device=device), torch.as_tensor(lengths, device=device)

    def loss_fn(m, batch):
        return m.loss(*batch), {}

    result = train(net, make_batch, loss_fn, cfg["n_steps"], lr=cfg["lr"], grad_clip=cfg["grad_clip"],
                   checkpoint_path=checkpoint_path, evaluate=validate, eval_every=cfg["eval_every"],
                   max_seconds=max_seconds, keep_best="valid_nll",
                   progress=progress, description=f"{NAME}/{cfg['dataset']}/{model}")
    if not result.evaluations or result.evaluations[-1]["step"] != result.steps:
        result.evaluations.append({"step": result.steps, **validate(net)})
        result.offer(net, result.evaluations[-1], "valid_nll")
    if result.best is not None:
        net.load_state_dict(result.best["state_dict"])
    net.set_learning_curves([(h["step"], h["loss"]) for h in result.history],
                            [(e["step"], e["valid_nll"]) for e in result.evaluations])
    net.eval()
    return net, result


def evaluate(model_name: str, net, cfg: dict, seed: int = 0) -> dict:
    """Test and validation NLL (nats per step, first step scored) and the parameter count.

    Deterministic: the test set is fixed and the network runs in eval mode (``seed`` is unused).
    Raises ``FileNotFoundError`` when the run's data (see ``cfg['data_source']``) are not available.
    """
    data = load_data(cfg)
    return {"nll": round(nll(net, data.test), 6), "valid_nll": round(nll(net, data.valid), 6),
            "n_parameters": int(net.n_parameters())}


# --------------------------------------------------------------------------------------------------
# the paper's Table 3 and ours
# --------------------------------------------------------------------------------------------------

TABLE_DATASETS = ("pianomidi", "nottingham", "musedata", "jsb")  # the paper's column order
DATASET_TITLES = {"pianomidi": "Piano-midi.de", "nottingham": "Nottingham", "musedata": "MuseData",
                  "jsb": "JSB Chorales"}
# The paper's Table 3 (NLL, nats per step; Piano-midi.de, Nottingham, MuseData, JSB), typed from the paper;
# None where the paper gives no number. The RLadder row is mean ± std over 10 seeds.
PAPER_TABLE3 = {  # strings, exactly as printed in the paper
    "joint": {
        "NADE masked": ("7.42", "3.32", "6.48", "8.51"), "NADE": ("7.05", "2.89", "5.54", "7.59"),
        "RNN-RBM": ("7.09", "2.39", "6.01", "6.27"), "RNN-NADE (HF)": ("7.05", "2.31", "5.60", "5.56"),
        "LSTM-NADE": ("7.39", "2.06", "5.03", "6.10"), "TP-LSTM-NADE": ("5.49", "1.64", "4.34", "5.92"),
        "BALSTM": ("5.00", "1.62", "3.90", "5.86"),
    },
    "marginal": {
        "RNN": ("7.88", "3.87", "7.43", "8.76"), "LSTM": ("6.866", "3.492", None, None),
        "MUT1": ("6.792", "3.254", None, None),
        "RLadder": ("6.19 ± 0.02", "2.42 ± 0.03", "5.69 ± 0.02", "5.64 ± 0.02"),
    },
}
MODEL_TITLES = {"rladder": "RLadder (ours)", "lstm": "LSTM (ours)", "bernoulli": "Bernoulli floor (ours)"}


def recorded_results(scale: str = "book", seed: int = 0, manifest=None) -> dict:
    """``{model: {dataset: metrics or None}}`` from the zoo's recorded ``music`` runs at ``scale``.

    Introduced in *Polyphonic music* (Part II).
    """
    from .. import zoo

    scale = settings.check_scale(scale)
    entries = zoo.find_entries(experiment=NAME, scale=scale, manifest=manifest)
    out = {m: {d: None for d in TABLE_DATASETS} for m in MODELS}
    for entry in entries.values():
        if entry.get("seed") == seed and entry["model"] in out and entry.get("dataset") in TABLE_DATASETS:
            out[entry["model"]][entry["dataset"]] = entry
    return out


def table3_markdown(scale: str = "book", seed: int = 0, manifest=None) -> str:
    """The paper's Table 3 with our recorded rows added (a Markdown table).

    Datasets without a recorded run at ``scale`` say so. Introduced in *Polyphonic music* (Part II).
    """
    def cell(v):
        return "–" if v is None else v

    head = "| model | " + " | ".join(DATASET_TITLES[d] for d in TABLE_DATASETS) + " |"
    rows = [head, "|" + "---|" * (len(TABLE_DATASETS) + 1)]
    for group, label in (("joint", "joint distribution of notes (paper)"),
                         ("marginal", "marginal probability of each note (paper)")):
        rows.append(f"| *{label}* |" + " |" * len(TABLE_DATASETS))
        rows += [f"| {name} | " + " | ".join(cell(v) for v in values) + " |"
                 for name, values in PAPER_TABLE3[group].items()]
    rows.append(f"| *ours, {scale} scale, seed {seed} (test NLL)* |" + " |" * len(TABLE_DATASETS))
    for model, runs in recorded_results(scale, seed, manifest).items():
        entries = [runs[d] for d in TABLE_DATASETS]
        counts = sorted({e["metrics"]["n_parameters"] for e in entries if e})
        size = "" if model == "bernoulli" or not counts else \
            f", {'/'.join(f'{c / 1e3:.0f}k' for c in counts)} parameters"
        cells = [f"**{e['metrics']['nll']:.2f}**" if e else f"not trained at {scale} scale" for e in entries]
        rows.append(f"| {MODEL_TITLES[model][:-1]}{size}) | " + " | ".join(cells) + " |")
    return "\n".join(rows)
