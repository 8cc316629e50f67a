"""Texture banks (Brodatz folder and free default) and randomly rotated / scaled patches."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rladder_nb.data import textures as tx

SHARED_BRODATZ = Path(__file__).resolve().parents[2] / "shared" / "data" / "brodatz"


# --- helpers: independent texture statistics ----------------------------------------------------------

def _spectrum_signature(block, n_radial=6, n_angular=6):
    """Fraction of (windowed) power in log-radial x orientation bins of the 2-D spectrum."""
    block = block - block.mean()
    h, w = block.shape
    power = np.abs(np.fft.fftshift(np.fft.fft2(block * np.outer(np.hanning(h), np.hanning(w))))) ** 2
    y, x = np.mgrid[0:h, 0:w]
    radius = np.hypot(y - h // 2, x - w // 2) / (h / 2)
    theta = np.mod(np.arctan2(y - h // 2, x - w // 2), np.pi)
    radial_bin = np.digitize(radius, np.geomspace(1 / 32, 1, n_radial + 1)) - 1
    angular_bin = np.minimum((theta / np.pi * n_angular).astype(int), n_angular - 1)
    keep = (radial_bin >= 0) & (radial_bin < n_radial)
    sig = np.bincount((radial_bin * n_angular + angular_bin)[keep], power[keep], n_radial * n_angular)
    return sig / sig.sum()


def _corner_blocks(img, b=128):
    return [img[i:i + b, j:j + b] for i in (0, img.shape[0] - b) for j in (0, img.shape[1] - b)]


def _separation(signatures):
    """(T, T): distance between textures' mean signatures / the larger spread of their own blocks."""
    means = np.array([s.mean(0) for s in signatures])
    spread = np.array([np.abs(s - m).sum(1).max() for s, m in zip(signatures, means)])
    distance = np.abs(means[:, None] - means[None]).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return distance / np.maximum.outer(spread, spread)


def _assert_pairwise_distinct(bank):
    spectra = [np.array([_spectrum_signature(b) for b in _corner_blocks(t)]) for t in bank.images]
    hists = [np.array([np.histogram(b, 8, (0, 1))[0] / b.size for b in _corner_blocks(t)])
             for t in bank.images]
    ratio = np.maximum(_separation(spectra), _separation(hists))
    np.fill_diagonal(ratio, np.inf)
    i, j = np.unravel_index(np.argmin(ratio), ratio.shape)
    assert ratio[i, j] > 1.0, f"textures {bank.names[i]!r} and {bank.names[j]!r} are not distinct"


def _write_png(path, array):
    Image.fromarray(array.astype(np.uint8)).save(path)


# --- the free default ---------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
def test_free_bank_has_20_distinct_textures(seed):
    bank = tx.load_textures(n=20, seed=seed, source="free")
    assert bank.source == "free" and len(bank) == 20 and len(set(bank.names)) == 20
    for img in bank.images:
        assert img.ndim == 2 and img.dtype == np.float32 and img.min() >= 0 and img.max() <= 1
        assert img.std() > 0.1                       # not flat
    _assert_pairwise_distinct(bank)


def test_free_bank_is_seeded_and_photographs_fixed():
    a, b, c = (tx.free_textures(20, seed) for seed in (3, 3, 4))
    assert all(np.array_equal(x, y) for x, y in zip(a.images, b.images))
    assert all(np.array_equal(x, y) for x, y in zip(a.images[:3], c.images[:3]))        # skimage photos
    assert any(not np.array_equal(x, y) for x, y in zip(a.images[3:], c.images[3:]))    # procedural


def test_auto_without_album_falls_back_to_free_and_reports(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RLADDER_NB_DATA", str(tmp_path))
    bank = tx.load_textures(n=5)
    assert bank.source == "free" and len(bank) == 5
    assert "free" in capsys.readouterr().out


# --- the Brodatz album --------------------------------------------------------------------------------

def test_album_from_a_folder_of_pngs_and_gifs(tmp_path, capsys):
    rng = np.random.default_rng(0)
    arrays = {f"D{k}": rng.integers(0, 256, (64, 80)) for k in (2, 5, 7)}
    _write_png(tmp_path / "D2.png", arrays["D2"])
    _write_png(tmp_path / "D5.png", arrays["D5"])
    Image.fromarray(arrays["D7"].astype(np.uint8)).save(tmp_path / "D7.gif")
    (tmp_path / "notes.txt").write_text("not a plate")
    bank = tx.load_textures(tmp_path, n=3, equalize=False)
    assert bank.source == "brodatz" and sorted(bank.names) == ["D2", "D5", "D7"]
    assert "brodatz" in capsys.readouterr().out
    for name, img in zip(bank.names, bank.images):
        raw = arrays[name].astype(np.float64)
        np.testing.assert_allclose(img, (raw - raw.min()) / (raw.max() - raw.min()), atol=1e-6)
    picked = tx.load_textures(tmp_path, n=2, names=["d7", "D2"], equalize=False)
    assert picked.names == ["D7", "D2"]
    with pytest.raises(ValueError, match="named only 2"):
        tx.load_textures(tmp_path, n=3, names=["D7", "D2"])


@pytest.mark.skipif(not SHARED_BRODATZ.is_dir(), reason="shared Brodatz folder not available")
def test_shared_album_default_selection():
    bank = tx.load_textures(SHARED_BRODATZ, n=20)
    assert bank.source == "brodatz" and bank.names == list(tx.BRODATZ_DEFAULT)
    # the parent folder works too (brodatz/ sub-folder), and the plates are distinct
    parent = tx.load_textures(SHARED_BRODATZ.parent, n=20)
    assert parent.names == bank.names
    raw = np.asarray(Image.open(SHARED_BRODATZ / "D4.png").convert("L"), dtype=np.float64)
    unequalised = tx.load_textures(SHARED_BRODATZ, n=2, equalize=False)
    np.testing.assert_allclose(unequalised.images[1], (raw - raw.min()) / (raw.max() - raw.min()), atol=1e-6)
    _assert_pairwise_distinct(bank)


def test_bad_folders_and_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tx.load_textures(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="D1.png"):
        tx.load_textures(tmp_path)                                  # explicit folder without plates
    with pytest.raises(FileNotFoundError):
        tx.brodatz_textures(tmp_path)
    _write_png(tmp_path / "D1.png", np.full((64, 64), 100))
    with pytest.raises(FileNotFoundError, match="D9"):
        tx.load_textures(tmp_path, n=1, names=["D9"])
    with pytest.raises(ValueError, match="between 1 and 1"):
        tx.load_textures(tmp_path, n=2)
    with pytest.raises(ValueError, match="source"):
        tx.load_textures(source="internet")
    for n in (0, 21, 2.5):
        with pytest.raises(ValueError):
            tx.free_textures(n)
    with pytest.raises(ValueError, match="seed"):
        tx.free_textures(3, seed=-1)
    (tmp_path / "D3.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="D3.png"):
        tx.load_textures(tmp_path, n=1, names=["D3"])


# --- patches ------------------------------------------------------------------------------------------

def _slope(patch):
    """Least-squares gradient (d/drow, d/dcol) of a patch."""
    rows, cols = np.mgrid[0:patch.shape[0], 0:patch.shape[1]]
    design = np.stack([rows.ravel(), cols.ravel(), np.ones(patch.size)], 1)
    return np.linalg.lstsq(design, patch.ravel().astype(np.float64), rcond=None)[0][:2]


def test_patches_of_a_ramp_follow_the_rotation_and_scale():
    # bilinear interpolation is exact on a linear ramp: a patch's gradient is R(angle)^T grad / scale
    rows, cols = np.mgrid[0:200, 0:200]
    gradient = np.array([1.0, 2.0]) / 1000
    ramp = rows * gradient[0] + cols * gradient[1]                       # values in [0, 0.6]
    rng = np.random.default_rng(0)
    plain = tx.sample_texture_patches([ramp], np.zeros(5, int), 16, rng, rotate=False, scale_range=(1, 1))
    for patch in plain:
        np.testing.assert_allclose(_slope(patch), gradient, atol=1e-6)
    halved = tx.sample_texture_patch(ramp, (12, 20), rng, rotate=False, scale_range=(0.5, 0.5))
    assert halved.shape == (12, 20)
    np.testing.assert_allclose(_slope(halved), gradient / 0.5, atol=1e-6)
    rotated = tx.sample_texture_patches([ramp], np.zeros(400, int), 16, rng, scale_range=(0.6, 1.2))
    slopes = np.array([_slope(p) for p in rotated])
    magnitude = np.linalg.norm(slopes, axis=1) / np.linalg.norm(gradient)
    assert magnitude.min() >= 1 / 1.2 - 1e-4 and magnitude.max() <= 1 / 0.6 + 1e-4
    angles = np.arctan2(slopes[:, 0], slopes[:, 1])
    assert np.histogram(angles, 8, (-np.pi, np.pi))[0].min() > 25        # orientations roughly uniform


def test_patches_never_touch_the_border_and_pick_their_texture():
    framed = np.ones((100, 100))
    framed[[0, -1], :] = framed[:, [0, -1]] = 0.0                        # a border the patches must avoid
    other = np.full((90, 70), 0.25)
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 2, 300)
    patches = tx.sample_texture_patches([framed, other], ids, 28, rng, scale_range=(0.6, 1.2))
    assert patches.shape == (300, 28, 28) and patches.dtype == np.float32
    np.testing.assert_array_equal(patches[ids == 0], 1.0)
    np.testing.assert_allclose(patches[ids == 1], 0.25)


def test_patches_are_seeded_and_inputs_checked():
    bank = tx.free_textures(4)
    a = tx.sample_texture_patches(bank, np.arange(4), 28, np.random.default_rng(5))
    b = tx.sample_texture_patches(bank, np.arange(4), 28, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="too small"):
        tx.sample_texture_patch(np.ones((30, 30)), 28, rng)
    with pytest.raises(ValueError, match="scale_range"):
        tx.sample_texture_patch(np.ones((99, 99)), 8, rng, scale_range=(0, 1))
    with pytest.raises(ValueError, match="2-D"):
        tx.sample_texture_patch(np.ones((9, 99, 99)), 8, rng)
    with pytest.raises(ValueError, match="texture_ids"):
        tx.sample_texture_patches(bank, np.array([4]), 8, rng)


# --- the flat control -----------------------------------------------------------------------------------

def test_flat_textures_are_twenty_constant_grey_levels():
    bank = tx.load_textures(source="flat")
    assert bank.source == "flat" and len(bank) == 20
    levels = [float(img.mean()) for img in bank.images]
    assert all(img.dtype == np.float32 and img.min() == img.max() for img in bank.images)   # constant
    assert np.allclose(levels, np.linspace(0.05, 0.95, 20), atol=1e-6)
    patch = tx.sample_texture_patch(bank.images[3], 12, np.random.default_rng(0))
    assert np.allclose(patch, levels[3], atol=1e-6)                 # rotated and scaled: still flat
    with pytest.raises(ValueError, match="n >= 2 grey levels"):
        tx.flat_textures(n=1)
    with pytest.raises(ValueError, match="between 1 and 20"):
        tx.flat_textures(n=21)


# --- Tagger's gratings --------------------------------------------------------------------------------

def test_gratings_are_tagger_s_twenty_single_frequency_sinusoids():
    bank = tx.load_textures(source="gratings")
    assert bank.source == "gratings" and len(bank) == 20 and len(set(tx.GRATING_FREQUENCIES)) == 20
    assert tx.GRATING_FREQUENCIES[:5] == ((4, 0), (4, 4), (4, 8), (4, 12), (10, 1))   # Freq20's first pairs
    period = tx.GRATING_PERIOD
    for (f_row, f_col), img in zip(tx.GRATING_FREQUENCIES, bank.images):
        assert img.dtype == np.float32 and abs(img.min()) < 0.01 and abs(img.max() - 1) < 0.01
        spectrum = np.abs(np.fft.fft2(img[:period, :period] - img[:period, :period].mean()))
        peaks = {tuple(int(v) for v in np.unravel_index(i, spectrum.shape)) for i in np.argsort(spectrum.ravel())[-2:]}
        assert peaks == {(f_row % period, f_col % period), (-f_row % period, -f_col % period)}
        assert np.sort(spectrum.ravel())[-3] < 1e-3 * spectrum.max()    # nothing else: one frequency
    again, other = tx.grating_textures(seed=0), tx.grating_textures(seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(bank.images, again.images))
    assert not np.array_equal(bank.images[0], other.images[0])          # the seed moves the phases
    with pytest.raises(ValueError, match="between 1 and 20"):
        tx.grating_textures(n=21)


def test_patches_without_rotation_or_scaling_are_plain_crops():
    rng = np.random.default_rng(0)
    texture = rng.random((64, 64)).astype(np.float32)
    patches = tx.sample_texture_patches([texture], np.zeros(5, dtype=int), 28, rng, rotate=False, scale_range=(1, 1))
    for patch in patches:   # each is texture[r:r + 28, c:c + 28] for some integer r, c: no interpolation
        r, c = np.argwhere(np.isclose(texture, patch[0, 0], atol=0, rtol=0))[0]
        assert np.array_equal(patch, texture[r:r + 28, c:c + 28])
