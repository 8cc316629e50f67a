"""Polyphonic music as piano rolls: the four benchmarks of Boulanger-Lewandowski et al. (2012).

Introduced in the chapter *Polyphonic music* (Part II).

* A piano roll is a ``(T, 88)`` uint8 array: ``roll[t, k] = 1`` when MIDI note ``21 + k`` sounds at
  step ``t``. Steps are quarter notes for JSB Chorales and eighth notes for the other three.
* :func:`load_music` reads, from the data directory or its ``music/`` sub-folder, either the original
  pickles (``JSB Chorales.pickle`` ...) or the ``.mat`` copies (``JSB_Chorales.mat`` ...), with strict
  checks; the original pickle wins when both are there. ``download=True`` fetches the original pickle.
* Offline with no file, ``jsb`` falls back to the Bach chorales bundled with ``music21`` (not the
  benchmark's split: ours, fixed and documented); the other names raise ``FileNotFoundError``.
* Parsed rolls are cached as ``.npz`` next to the data (atomic writes); every load says its source
  through :func:`rladder_nb.settings.report` and in ``MusicDataset.source``.
"""
from __future__ import annotations

import hashlib
import io
import pickle
import re
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rladder_nb import settings
from rladder_nb.fileio import atomic_write_bytes

LOWEST_NOTE, HIGHEST_NOTE = 21, 108  # A0 .. C8, the 88 piano keys
N_NOTES = HIGHEST_NOTE - LOWEST_NOTE + 1
SPLITS = ("train", "valid", "test")
CACHE_VERSION = 1
FALLBACK_SPLIT_SEED = 0  # our fixed split of the music21 chorales
ORIGINAL_URL = "http://www-etud.iro.umontreal.ca/~boulanni/"  # the original pickles (Boulanger-Lewandowski)

# canonical name -> original pickle, .mat copy, frame, published split sizes (train, valid, test)
DATASETS = {
    "jsb": dict(pickle="JSB Chorales.pickle", mat="JSB_Chorales.mat", frame="quarter note", sizes=(229, 76, 77)),
    "nottingham": dict(pickle="Nottingham.pickle", mat="Nottingham.mat", frame="eighth note",
                       sizes=(694, 173, 170)),
    "musedata": dict(pickle="MuseData.pickle", mat="MuseData.mat", frame="eighth note", sizes=(524, 135, 124)),
    "pianomidi": dict(pickle="Piano-midi.de.pickle", mat="Piano_midi.mat", frame="eighth note",
                      sizes=(87, 12, 25)),
}
_ALIASES = {"jsb": "jsb", "jsbchorales": "jsb", "chorales": "jsb", "bach": "jsb", "nottingham": "nottingham",
            "musedata": "musedata", "muse": "musedata", "pianomidi": "pianomidi", "pianomidide": "pianomidi",
            "piano": "pianomidi"}


@dataclass
class MusicDataset:
    """Train/valid/test piano rolls of one data set; see :func:`load_music`.

    ``train``, ``valid``, ``test`` are lists of uint8 arrays ``(T_i, 88)`` (column = MIDI note - 21);
    ``source`` says exactly which file/format/fallback was read; ``frame`` is the duration of a step;
    ``piece_ids`` names the pieces of each split when known (the music21 fallback), else None.
    Introduced in *Polyphonic music* (Part II).
    """

    name: str
    train: list
    valid: list
    test: list
    source: str
    frame: str
    piece_ids: dict | None = field(default=None, repr=False)

    def split(self, which: str) -> list:
        """The rolls of split ``which`` ('train', 'valid' or 'test')."""
        if which not in SPLITS:
            raise ValueError(f"unknown split {which!r}: expected one of {', '.join(SPLITS)}")
        return getattr(self, which)

    def summary(self) -> str:
        """One line: sequences and time steps per split."""
        parts = [f"{s} {len(self.split(s))} pieces / {sum(len(r) for r in self.split(s))} steps" for s in SPLITS]
        return f"{self.name} ({self.frame} steps): " + ", ".join(parts)

    def __repr__(self) -> str:
        return f"MusicDataset({self.summary()}; source: {self.source})"


def canonical_name(name: str) -> str:
    """Map a data-set name or alias ('JSB Chorales', 'Piano-midi.de', 'nottingham' ...) to its key."""
    key = re.sub(r"[^a-z0-9]", "", name.lower()) if isinstance(name, str) else None
    if key not in _ALIASES:
        raise ValueError(f"unknown music data set {name!r}: expected one of {', '.join(DATASETS)} "
                         "(aliases such as 'JSB Chorales' or 'Piano-midi.de' work too)")
    return _ALIASES[key]


def load_music(name: str, data_dir=None, download: bool = False, max_pieces: int | None = None,
               cache: bool = True) -> MusicDataset:
    """Load one of the four polyphonic-music benchmarks as piano rolls.

    Parameters
    ----------
    name : str
        ``'jsb'``, ``'nottingham'``, ``'musedata'`` or ``'pianomidi'`` (or an alias).
    data_dir : path, optional
        Where to look (and its ``music/`` sub-folder); default :func:`rladder_nb.settings.data_dir`.
        Caches go to ``<data_dir>/music/``; an unwritable directory only skips the cache.
    download : bool
        Fetch the original pickle from the authors' site when no file is found (needs network).
        No checksum is published, so the download is checked by its structure and exact split sizes.
    max_pieces : int, optional
        Music21 fallback only (ignored when a benchmark file is found): parse just this many chorales
        (at least 3), spread over the three splits; parsing all 350 takes 10-40 s once (then cached).
    cache : bool
        Read and write the ``.npz`` cache of parsed rolls.

    Returns
    -------
    MusicDataset

    Introduced in *Polyphonic music* (Part II).
    """
    key = canonical_name(name)
    info = DATASETS[key]
    if max_pieces is not None and (isinstance(max_pieces, bool) or not isinstance(max_pieces, (int, np.integer))
                                   or max_pieces < 3):
        raise ValueError(f"max_pieces must be an integer >= 3 (one piece per split at least); got {max_pieces!r}")
    root = settings.data_dir(data_dir)
    cache_dir = root / "music"
    found = _find_file(root, info)
    if found is None and download:
        found = _download_original(key, cache_dir)
    if found is not None:
        dataset = _load_benchmark_file(key, found, cache_dir if cache else None)
    elif key == "jsb":
        dataset = _load_music21_fallback(cache_dir if cache else None, max_pieces)
    else:
        raise FileNotFoundError(
            f"no file for the {key} benchmark: put {info['pickle']!r} (the original pickle) or {info['mat']!r} "
            f"into {root} or {root / 'music'} (or set RLADDER_NB_DATA / pass data_dir=...), or call "
            f"load_music({key!r}, download=True) with network access"
        )
    settings.report(f"music data {key}: {dataset.summary()}; source: {dataset.source}")
    return dataset


def _find_file(root: Path, info: dict):
    for folder in (root, root / "music"):
        for kind in ("pickle", "mat"):
            path = folder / info[kind]
            if path.is_file():
                return kind, path
    return None


# --------------------------------------------------------------------------------------------------
# the two file formats
# --------------------------------------------------------------------------------------------------


class _ContainersOnlyUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global except builtin containers and numbers.

    Loading a pickle can run arbitrary code through the globals it names; the benchmark's pickles need
    none but (at most) ``set``/``frozenset`` and basic types, so everything else is refused.
    """

    _ALLOWED = {"dict", "list", "tuple", "set", "frozenset", "int", "float", "str", "bool", "long"}

    def find_class(self, module, name):
        if module in ("builtins", "__builtin__") and name in self._ALLOWED:
            return {"long": int}.get(name) or getattr(__import__("builtins"), name)
        raise pickle.UnpicklingError(f"the pickle refers to {module}.{name}, which this loader refuses")


def read_pickle(path) -> dict:
    """Read an original Boulanger-Lewandowski pickle into ``{split: [roll (T_i, 88) uint8, ...]}``.

    Expected: a dict with keys 'train', 'valid', 'test'; each a list of sequences; each sequence a
    non-empty list of time steps; each step a list/tuple/set of MIDI note numbers in 21..108. Written by
    Python 2, read with ``encoding='latin1'``. **Security**: pickles can execute code when loaded, so a
    restricted unpickler is used that only rebuilds builtin containers and numbers (dict, list, tuple,
    set, int, float, str); any other object makes it fail. Introduced in *Polyphonic music* (Part II).
    """
    path = Path(path)
    expected = "a dict {'train','valid','test'} of lists of sequences of lists of MIDI notes 21..108"
    try:
        with open(path, "rb") as fh:
            data = _ContainersOnlyUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError,
            AttributeError, UnicodeDecodeError) as err:
        raise ValueError(f"could not read {path.name} as the benchmark's pickle (truncated, corrupt or not a "
                         f"plain pickle: {err}); expected {expected}") from err
    _check_split_keys(data, path.name, expected)
    rolls = {}
    for split in SPLITS:
        sequences = data[split]
        if not isinstance(sequences, (list, tuple)) or len(sequences) == 0:
            raise ValueError(f"{path.name}[{split!r}] must be a non-empty list of sequences")
        rolls[split] = [_roll_from_note_lists(seq, f"{path.name}[{split!r}][{i}]") for i, seq in enumerate(sequences)]
    return rolls


def _roll_from_note_lists(sequence, where: str) -> np.ndarray:
    if not isinstance(sequence, (list, tuple)) or len(sequence) == 0:
        raise ValueError(f"{where}: expected a non-empty list of time steps, got {type(sequence).__name__} "
                         f"of length {len(sequence) if hasattr(sequence, '__len__') else '?'}")
    roll = np.zeros((len(sequence), N_NOTES), dtype=np.uint8)  # (T, 88)
    for t, step in enumerate(sequence):
        if not isinstance(step, (list, tuple, set, frozenset)):
            raise ValueError(f"{where}, step {t}: expected a list of MIDI notes, got {type(step).__name__}")
        for note in step:
            if isinstance(note, bool) or not isinstance(note, (int, float)) \
                    or (isinstance(note, float) and not note.is_integer()):
                raise ValueError(f"{where}, step {t}: expected integer MIDI note numbers, got {note!r}")
            if not LOWEST_NOTE <= note <= HIGHEST_NOTE:
                raise ValueError(f"{where}, step {t}: note {note} is outside the piano's "
                                 f"{LOWEST_NOTE}..{HIGHEST_NOTE} (88 keys)")
            roll[t, int(note) - LOWEST_NOTE] = 1
    return roll


def read_mat(path) -> dict:
    """Read a ``.mat`` copy (``traindata``/``validdata``/``testdata``: 1xN cells of (T_i, 88) 0/1 arrays).

    Returns ``{split: [roll (T_i, 88) uint8, ...]}``. Introduced in *Polyphonic music* (Part II).
    """
    import scipy.io

    path = Path(path)
    try:
        data = scipy.io.loadmat(str(path))
    except Exception as err:  # scipy raises several types for corrupt files
        raise ValueError(f"could not read {path.name} as a MATLAB file ({err}); expected keys traindata, "
                         "validdata, testdata holding 1xN cells of (T_i, 88) 0/1 piano rolls") from err
    rolls = {}
    for split in SPLITS:
        key = split + "data"
        if key not in data:
            found = sorted(k for k in data if not k.startswith("__"))
            raise ValueError(f"{path.name} lacks key {key!r}: expected traindata, validdata, testdata; found {found}")
        cells = np.asarray(data[key])
        if cells.dtype != object or cells.size == 0:
            raise ValueError(f"{path.name}[{key!r}] must be a non-empty cell array of (T_i, 88) piano rolls")
        rolls[split] = [_check_roll(np.asarray(c), f"{path.name}[{key!r}][{i}]") for i, c in enumerate(cells.ravel())]
    return rolls


def _check_roll(roll: np.ndarray, where: str) -> np.ndarray:
    if roll.ndim != 2 or roll.shape[1] != N_NOTES or roll.shape[0] == 0:
        raise ValueError(f"{where}: expected a non-empty (T, {N_NOTES}) piano roll, got shape {roll.shape}")
    if not np.all((roll == 0) | (roll == 1)):
        raise ValueError(f"{where}: a piano roll must hold only 0 and 1")
    return np.ascontiguousarray(roll, dtype=np.uint8)


def _check_split_keys(data, filename: str, expected: str) -> None:
    if not isinstance(data, dict):
        raise ValueError(f"{filename} holds a {type(data).__name__}; expected {expected}")
    missing = [s for s in SPLITS if s not in data]
    if missing:
        raise ValueError(f"{filename} lacks the keys {missing}; found {sorted(map(str, data))}; expected {expected}")


# --------------------------------------------------------------------------------------------------
# caching, download, fallback
# --------------------------------------------------------------------------------------------------


def _load_benchmark_file(key: str, found, cache_dir: Path | None) -> MusicDataset:
    kind, path = found
    path = path.absolute()
    stat = path.stat()
    signature = f"{path.name}|{stat.st_size}|{stat.st_mtime_ns}"
    fmt = ("original pickle (Boulanger-Lewandowski 2012 format)" if kind == "pickle"
           else "MATLAB .mat copy (traindata/validdata/testdata)")
    cache_path = cache_dir / f"{key}.{kind}.rolls.npz" if cache_dir is not None else None
    cached = _read_cache(cache_path, signature)
    if cached is not None:
        rolls, _ = cached
        source = f"{fmt} {path}, read from the cache {cache_path}"
    else:
        rolls = read_pickle(path) if kind == "pickle" else read_mat(path)
        source = f"{fmt} {path}"
        _write_cache(cache_path, rolls, signature)
    sizes = tuple(len(rolls[s]) for s in SPLITS)
    if sizes != DATASETS[key]["sizes"]:
        source += f" (note: split sizes {sizes} differ from the benchmark's {DATASETS[key]['sizes']})"
    return MusicDataset(key, rolls["train"], rolls["valid"], rolls["test"], source, DATASETS[key]["frame"])


def _read_cache(cache_path: Path | None, signature: str):
    """Return (rolls, piece_ids) from a cache that matches ``signature``, else None (stale/corrupt: re-parse)."""
    if cache_path is None or not cache_path.is_file():
        return None
    try:
        with np.load(cache_path, allow_pickle=False) as z:
            if int(z["version"]) != CACHE_VERSION or str(z["signature"]) != signature:
                return None
            rolls = {s: np.split(z[f"{s}_rolls"], np.cumsum(z[f"{s}_lengths"])[:-1]) for s in SPLITS}
            ids = {s: [str(i) for i in z[f"{s}_ids"]] for s in SPLITS} if "train_ids" in z else None
    except Exception as err:  # a corrupt cache is reported and rebuilt, never half-used
        settings.report(f"ignoring unreadable music cache {cache_path} ({err}); re-parsing")
        return None
    return {s: [_check_roll(r, f"cache {cache_path.name}") for r in rolls[s]] for s in SPLITS}, ids


def _write_cache(cache_path: Path | None, rolls: dict, signature: str, piece_ids: dict | None = None) -> None:
    if cache_path is None:
        return
    folder = cache_path.parent
    if folder.is_dir() and not folder.stat().st_mode & 0o222:  # a read-only data folder (even for root)
        settings.report(f"not caching piano rolls in the read-only folder {folder}")
        return
    arrays = {"version": np.array(CACHE_VERSION), "signature": np.array(signature)}
    for s in SPLITS:
        arrays[f"{s}_rolls"] = np.concatenate(rolls[s]).astype(np.uint8)  # (sum T_i, 88)
        arrays[f"{s}_lengths"] = np.array([len(r) for r in rolls[s]], dtype=np.int64)
        if piece_ids is not None:
            arrays[f"{s}_ids"] = np.array(piece_ids[s], dtype=str)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    try:
        atomic_write_bytes(cache_path, buffer.getvalue())
    except OSError as err:
        settings.report(f"could not write the music cache {cache_path} ({err}); continuing without it")


def _download_original(key: str, target_dir: Path):
    """Fetch the original pickle; accept it only if it parses strictly with the benchmark's split sizes."""
    filename = DATASETS[key]["pickle"]
    url = ORIGINAL_URL + urllib.parse.quote(filename)
    settings.report(f"downloading {url}")
    try:
        with urllib.request.urlopen(url, timeout=60) as response:  # network: only when download=True
            payload = response.read()
    except OSError as err:
        raise OSError(f"could not download {url} ({err}); without network, put {filename!r} into "
                      f"{target_dir} by hand") from err
    path = target_dir / filename
    atomic_write_bytes(path, payload)
    try:
        rolls = read_pickle(path)
        sizes = tuple(len(rolls[s]) for s in SPLITS)
        if sizes != DATASETS[key]["sizes"]:
            raise ValueError(f"downloaded {filename} has split sizes {sizes}, expected {DATASETS[key]['sizes']}")
    except ValueError:
        path.unlink()
        raise
    settings.report(f"saved {path} (sha256 {hashlib.sha256(payload).hexdigest()}; no published checksum, "
                    "checked by structure and split sizes)")
    return "pickle", path


def _load_music21_fallback(cache_dir: Path | None, max_pieces: int | None) -> MusicDataset:
    ids = chorale_split(max_pieces)  # {split: [corpus path, ...]}
    tag = "all" if max_pieces is None else f"first{int(max_pieces)}"
    signature = f"music21-chorales|{tag}|seed{FALLBACK_SPLIT_SEED}|" + ",".join(sum(ids.values(), []))
    cache_path = cache_dir / f"jsb.music21-{tag}.rolls.npz" if cache_dir is not None else None
    cached = _read_cache(cache_path, signature)
    how = (f"music21 fallback: {sum(map(len, ids.values()))} Bach chorales from music21's bundled corpus, "
           "sampled every quarter note (all parts); NOT the JSB benchmark's split but our fixed split "
           f"(seed {FALLBACK_SPLIT_SEED})")
    if cached is not None:
        rolls = cached[0]
        how += f", read from the cache {cache_path}"
    else:
        n = sum(map(len, ids.values()))
        settings.report(f"no JSB Chorales file found: parsing {n} chorales with music21 "
                        "(0.03-0.1 s each, once; cached afterwards)")
        start = time.perf_counter()
        rolls = {s: [chorale_roll(i) for i in ids[s]] for s in SPLITS}
        settings.report(f"parsed {n} chorales in {time.perf_counter() - start:.1f} s")
        _write_cache(cache_path, rolls, signature, ids)
    return MusicDataset("jsb", rolls["train"], rolls["valid"], rolls["test"], how, "quarter note", ids)


def chorale_split(max_pieces: int | None = None) -> dict:
    """Our fixed split of music21's Bach chorales: ``{split: [corpus path, ...]}``.

    The 371 Riemenschneider numbers of ``music21.corpus.chorales.Iterator()`` name 350 distinct files
    (some harmonisations are listed twice); we sort those paths, shuffle them with the seeded permutation
    ``numpy.random.default_rng(FALLBACK_SPLIT_SEED)`` and cut in JSB's proportions 229/76/77
    (209/70/71 pieces). ``max_pieces`` keeps the first pieces of each split in the same proportions
    (at least one per split), so a small load is a subset of the full one. Our reconstruction, labelled.
    Introduced in *Polyphonic music* (Part II).
    """
    from music21 import corpus

    ids = sorted(set(corpus.chorales.Iterator(returnType="filename")))
    shuffled = [ids[i] for i in np.random.default_rng(FALLBACK_SPLIT_SEED).permutation(len(ids))]

    def cut(n):
        n_valid, n_test = max(1, round(n * 76 / 382)), max(1, round(n * 77 / 382))
        return n - n_valid - n_test, n_valid, n_test

    n_train, n_valid, n_test = cut(len(ids))
    splits = dict(train=shuffled[:n_train], valid=shuffled[n_train:n_train + n_valid],
                  test=shuffled[n_train + n_valid:])
    if max_pieces is not None and max_pieces < len(ids):
        splits = {s: splits[s][:k] for s, k in zip(SPLITS, cut(int(max_pieces)))}
    return splits


def chorale_roll(corpus_path: str) -> np.ndarray:
    """Quarter-note piano roll ``(T, 88)`` of one music21 corpus score, all parts together.

    Step ``t`` holds every pitch sounding at offset ``t`` quarter notes (onset <= t < onset + duration),
    the sampling of the JSB benchmark; tied notes therefore merge, notes between beats only show if
    they still sound on the beat, repeats are not expanded and grace notes are dropped.
    Introduced in *Polyphonic music* (Part II).
    """
    from music21 import corpus

    spans = []  # (start, end, midi) in quarter notes from the start of the score
    for element in corpus.parse(corpus_path).flatten().notes:  # Notes and Chords of every part
        start = float(element.offset)
        end = start + float(element.duration.quarterLength)
        spans += [(start, end, p.midi) for p in element.pitches if end > start]
    if not spans:
        raise ValueError(f"the music21 score {corpus_path!r} holds no notes")
    roll = np.zeros((int(np.ceil(max(s[1] for s in spans) - 1e-9)), N_NOTES), dtype=np.uint8)  # (T, 88)
    for start, end, midi in spans:
        if not LOWEST_NOTE <= midi <= HIGHEST_NOTE:
            raise ValueError(f"{corpus_path}: note {midi} is outside the piano's {LOWEST_NOTE}..{HIGHEST_NOTE}")
        roll[int(np.ceil(start - 1e-9)): int(np.ceil(end - 1e-9)), midi - LOWEST_NOTE] = 1
    return roll


def pad_rolls(rolls, dtype=np.float32):
    """Stack rolls of different lengths into a zero-padded batch.

    Returns ``(batch (B, T_max, 88), lengths (B,))``; pass ``lengths`` to
    :func:`rladder_nb.metrics.piano_roll_nll`. Introduced in *Polyphonic music* (Part II).
    """
    if not isinstance(rolls, (list, tuple)) or len(rolls) == 0:
        raise ValueError("pad_rolls expects a non-empty list of (T_i, 88) piano rolls")
    rolls = [_check_roll(np.asarray(r), f"pad_rolls, roll {i}") for i, r in enumerate(rolls)]
    lengths = np.array([len(r) for r in rolls], dtype=np.int64)
    batch = np.zeros((len(rolls), int(lengths.max()), N_NOTES), dtype=dtype)  # (B, T_max, 88)
    for b, r in enumerate(rolls):
        batch[b, : len(r)] = r
    return batch, lengths
