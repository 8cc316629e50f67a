"""Texture banks for textured MNIST: the Brodatz album when you have it, free textures otherwise.

Introduced in *Perceptual grouping with Tagger and RTagger* (Part III).

* **Brodatz** — the paper used "20 textures from the Brodatz dataset", randomly rotated and scaled.
  Which 20 is not said; :data:`BRODATZ_DEFAULT` is our reconstruction: 20 homogeneous album plates
  whose structure is visible in a 28x28 patch. The album's photographs are copyrighted, so the
  package never ships them: :func:`load_textures` reads a folder of ``D*.png`` / ``D*.gif`` files
  that you supply.
* **Free default** — with no album, 20 freely licensed textures: scikit-image's CC0 ``brick``,
  ``grass`` and ``gravel`` photographs plus 17 procedural textures (gratings, checkerboards, dots,
  filtered noise, ...), chosen to differ even after random rotation (different spatial frequencies,
  not only different orientations). The book's published figures use this set (chapters pass
  ``source="free"``, so that a reader's own album copy never ends up in a rendered page).
* **Gratings** — the textures of Tagger's own released textured-MNIST data ("Freq20"): 20 pure
  sinusoidal gratings, one spatial frequency each (:data:`GRATING_FREQUENCIES`, on a 38-pixel period).
  A group that has found its grating's frequency can reconstruct it anywhere, which makes these the
  easiest textures to group by. Chapter 9 uses them as a control (``source="gratings"``).
* Every texture is a 2-D float32 array in [0, 1], histogram-equalised by default so that, as in the
  (equalised) album, textures differ by structure rather than by mean brightness (the gratings are
  never equalised: they stay pure sinusoids, as Tagger's are).
* :func:`sample_texture_patches` draws randomly rotated and scaled patches with one bilinear
  resampling of the full texture, centred far enough from the border that no patch pixel ever
  reads outside the texture (no border artefacts).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from rladder_nb import settings

# our reconstruction: the paper does not list its 20 plates
BRODATZ_DEFAULT = ("D1", "D4", "D9", "D11", "D15", "D16", "D18", "D19", "D20", "D24",
                   "D26", "D29", "D37", "D46", "D49", "D57", "D64", "D68", "D74", "D84")
IMAGE_SUFFIXES = (".png", ".gif", ".tif", ".tiff", ".pgm", ".bmp", ".jpg", ".jpeg")
PROCEDURAL_SIZE = 256            # side of every free texture, in pixels
DEFAULT_SCALE_RANGE = (0.6, 1.2)  # our reconstruction: the paper does not give its scaling range
SOURCES = ("auto", "brodatz", "free", "gratings", "flat")
# Tagger's Freq20 textures: frequency pairs (cycles per GRATING_PERIOD pixels along rows, columns), built as in
# its data script: rows from (4, 10, 21, 32, 37), columns from (0, 4, 8, 12), shifted by the row's index
GRATING_PERIOD = 38
GRATING_FREQUENCIES = tuple((f_row, f_col + i) for i, f_row in enumerate((4, 10, 21, 32, 37))
                            for f_col in (0, 4, 8, 12))
GRATING_SIZE = 128               # side of every grating, in pixels (they are periodic: any size will do)


@dataclass
class TextureBank:
    """A list of textures (2-D float32 arrays in [0, 1]) with their names and where they came from."""
    images: list
    names: list
    source: str
    details: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.images)


# ---------------------------------------------------------------------------------------------------
# the free default: scikit-image's CC0 photographs and procedural textures
# ---------------------------------------------------------------------------------------------------

def _normalise(a):
    a = np.asarray(a, dtype=np.float64)
    lo, hi = a.min(), a.max()
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def _grid(size):
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    return y, x


def _grating(size, period, angle, square=False):
    y, x = _grid(size)
    phase = 2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period
    wave = np.sin(phase)
    return ndimage.gaussian_filter((wave > 0.3).astype(float), 0.7) if square else wave


def _checkerboard(size, cell):
    y, x = _grid(size)
    board = ((x // cell + y // cell) % 2).astype(float)
    return ndimage.gaussian_filter(board, 0.6)


def _dot_lattice(size, spacing, radius):
    y, x = _grid(size)
    dy, dx = (y % spacing) - spacing / 2, (x % spacing) - spacing / 2
    return ndimage.gaussian_filter((dx ** 2 + dy ** 2 <= radius ** 2).astype(float), 0.6)


def _random_dots(size, rng, density, radius):
    centres = np.zeros((size, size))
    centres[rng.random((size, size)) < density] = 1.0
    disk = ndimage.distance_transform_edt(centres == 0) <= radius
    return ndimage.gaussian_filter(disk.astype(float), 0.6)


def _filtered_noise(size, rng, sigma):
    return ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma, mode="wrap")


def _fractal_noise(size, rng, exponent=1.0):
    spectrum = np.fft.fft2(rng.standard_normal((size, size)))
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij"))
    f[0, 0] = 1.0
    return np.real(np.fft.ifft2(spectrum / f ** exponent))


def _herringbone(size, period, zig):
    y, x = _grid(size)
    tri = np.abs((x % (2 * zig)) - zig)          # triangular wave along x: the zigzag
    return np.sin(2 * np.pi * (y + tri) / period)


def _basket_weave(size, cell, period):
    y, x = _grid(size)
    horizontal = ((x // cell + y // cell) % 2) == 0
    return np.where(horizontal, np.sin(2 * np.pi * y / period), np.sin(2 * np.pi * x / period))


def _procedural_textures(rng):
    """17 (name, array) pairs; the seed only moves orientations and noise, never the kind."""
    s = PROCEDURAL_SIZE
    angle = lambda: rng.uniform(0, np.pi)  # noqa: E731  (an orientation per texture)
    aniso = ndimage.gaussian_filter(rng.standard_normal((s, s)), (0.8, 7.0), mode="wrap")
    band = _filtered_noise(s, rng, 1.5) - _filtered_noise(s, rng, 3.0)
    return [
        ("grating, period 5", _grating(s, 5, angle())),
        ("grating, period 11", _grating(s, 11, angle())),
        ("stripes, period 20", _grating(s, 20, angle(), square=True)),
        ("checkerboard, cell 3", _checkerboard(s, 3)),
        ("checkerboard, cell 9", _checkerboard(s, 9)),
        ("plaid, periods 6 and 14", _grating(s, 6, 0.3) + _grating(s, 14, 0.3 + np.pi / 2)),
        ("dot lattice, spacing 7", _dot_lattice(s, 7, 1.8)),
        ("random dots", _random_dots(s, rng, 0.01, 2.0)),
        ("white noise", rng.random((s, s))),
        ("fine blobs", _filtered_noise(s, rng, 1.5)),
        ("coarse spots", (_filtered_noise(s, rng, 5.0) > 0).astype(float) * 0.8
         + 0.2 * _normalise(_filtered_noise(s, rng, 0.8))),
        ("fractal noise", _fractal_noise(s, rng, 1.0)),
        ("fibres", aniso),
        ("labyrinth", ndimage.gaussian_filter((band > 0).astype(float), 0.6)),
        ("herringbone", _herringbone(s, 6, 8)),
        ("basket weave", _basket_weave(s, 8, 3.0)),
        ("rings of noise", np.sin(2 * np.pi * _normalise(_filtered_noise(s, rng, 4.0)) * 8)),
    ]


def _skimage_photographs():
    from skimage import data, transform

    photos = []
    for name in ("brick", "grass", "gravel"):
        img = getattr(data, name)().astype(np.float64) / 255.0           # (512, 512), CC0
        # halve: 28-pixel patches then show a few bricks / blades, not a fraction of one
        img = transform.resize(img, (PROCEDURAL_SIZE, PROCEDURAL_SIZE), anti_aliasing=True)
        photos.append((f"{name} (scikit-image, CC0)", img))
    return photos


def free_textures(n=20, seed=0, equalize=True) -> TextureBank:
    """The embedded default: scikit-image's CC0 photographs, then procedural textures.

    Parameters
    ----------
    n : int, 1..20 — how many (the first ``n`` of the fixed list).
    seed : int — moves the procedural textures' orientations and noise.
    equalize : bool — histogram-equalise each texture (as the Brodatz album copies are).

    Returns
    -------
    TextureBank with ``source="free"``.

    Introduced in *Perceptual grouping with Tagger and RTagger* (Part III).
    """
    _check_count(n, 20, "free textures")
    rng = np.random.default_rng(_check_seed(seed))
    pairs = (_skimage_photographs() + _procedural_textures(rng))[:n]
    images = [_finish(img, equalize) for _, img in pairs]
    return TextureBank(images, [name for name, _ in pairs], "free",
                       {"licence": "scikit-image CC0 photographs + procedural", "equalize": equalize})


def grating_textures(n=20, seed=0) -> TextureBank:
    """Tagger's "Freq20" textures: ``0.5 + 0.5 cos(2 pi (f_r y + f_c x) / 38 + phase)``, one per pair of
    :data:`GRATING_FREQUENCIES`, each with a phase drawn from ``seed``; never equalised.

    Parameters
    ----------
    n : int, 1..20 — how many (the first ``n`` frequency pairs).
    seed : int — draws the phases.

    Returns
    -------
    TextureBank with ``source="gratings"``; the names give each frequency pair.

    Introduced in *Perceptual grouping with Tagger and RTagger* (Part III).
    """
    _check_count(n, len(GRATING_FREQUENCIES), "gratings")
    rng = np.random.default_rng(_check_seed(seed))
    y, x = np.mgrid[0:GRATING_SIZE, 0:GRATING_SIZE]
    images, names = [], []
    for f_row, f_col in GRATING_FREQUENCIES[:n]:
        phase = rng.uniform(0, 2 * np.pi)
        images.append((0.5 + 0.5 * np.cos(2 * np.pi * (f_row * y + f_col * x) / GRATING_PERIOD + phase))
                      .astype(np.float32))
        names.append(f"grating ({f_row}, {f_col}) cycles per {GRATING_PERIOD} px")
    return TextureBank(images, names, "gratings", {"after": "Tagger's released Freq20 textured MNIST"})


def flat_textures(n=20) -> TextureBank:
    """A control without texture: ``n`` constant grey levels evenly spaced from 0.05 to 0.95, so that a
    digit and its background differ in brightness only.

    Parameters
    ----------
    n : int, 2..20 — how many levels.

    Returns
    -------
    TextureBank with ``source="flat"``.

    Introduced in *Perceptual grouping by texture* (its controls).
    """
    _check_count(n, 20, "flat textures")
    if n < 2:
        raise ValueError(f"flat textures need n >= 2 grey levels (a digit and its background), got {n}")
    levels = np.linspace(0.05, 0.95, n)
    images = [np.full((GRATING_SIZE, GRATING_SIZE), level, dtype=np.float32) for level in levels]
    return TextureBank(images, [f"flat grey {level:.3f}" for level in levels], "flat",
                       {"after": "a control: brightness without texture"})


# ---------------------------------------------------------------------------------------------------
# the Brodatz album from a folder
# ---------------------------------------------------------------------------------------------------

def _album_files(folder: Path) -> dict:
    """{'D12': path} for every ``D<number>.<image suffix>`` in ``folder`` (not recursive)."""
    found = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        match = re.fullmatch(r"[dD](\d+)", path.stem)
        if match and path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            found.setdefault(f"D{int(match.group(1))}", path)
    return found


def _find_album(data_dir) -> tuple[Path, dict] | None:
    root = Path(data_dir).expanduser()
    for folder in (root, root / "brodatz"):
        files = _album_files(folder)
        if files:
            return folder, files
    return None


def _read_grey(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as handle:
            handle.seek(0)                                     # first frame of a GIF / multi-page TIFF
            img = handle if handle.mode in ("I", "I;16", "F") else handle.convert("L")
            img = np.asarray(img, dtype=np.float64)
    except Exception as err:  # noqa: BLE001 (any reader error becomes one clear message)
        raise ValueError(f"could not read texture image {path.name}: {err}") from err
    if img.ndim != 2 or min(img.shape) < 32:
        raise ValueError(f"texture {path.name} has shape {img.shape}: expected a 2-D image of 32x32 or more")
    return img


def brodatz_textures(folder, n=20, seed=0, names=None, equalize=True) -> TextureBank:
    """Read ``n`` Brodatz plates from ``folder`` (or its ``brodatz/`` sub-folder).

    Parameters
    ----------
    folder : path holding ``D1.png``, ``D4.gif``, ... (any of ``IMAGE_SUFFIXES``).
    n : int — how many plates.
    seed : int — fills up with a seeded draw when some of the wanted plates are missing.
    names : sequence of plate names (``"D4"``) or None for :data:`BRODATZ_DEFAULT` (our reconstruction).
    equalize : bool — histogram-equalise each plate (the common album copies already are).

    Introduced in *Perceptual grouping with Tagger and RTagger* (Part III).
    """
    found = _find_album(folder)
    if found is None:
        raise FileNotFoundError(
            f"no Brodatz plates (files named like D1.png or D4.gif) in {folder} or its brodatz/ "
            "sub-folder: point data_dir at the album's folder, or use source='free' for the embedded textures"
        )
    album_dir, files = found
    _check_count(n, len(files), f"Brodatz plates in {album_dir.name}/")
    if names is not None:
        wanted = [f"D{int(str(s).strip().lstrip('dD'))}" for s in names]
        missing = [s for s in wanted if s not in files]
        if missing:
            raise FileNotFoundError(f"Brodatz plates {missing} are not in {album_dir}; "
                                    f"found {', '.join(sorted(files, key=lambda s: int(s[1:]))[:8])}, ...")
        if len(wanted) < n:
            raise ValueError(f"asked for n={n} textures but named only {len(wanted)} plates: pass n={len(wanted)}")
        chosen = wanted[:n]
    else:
        chosen = [s for s in BRODATZ_DEFAULT if s in files][:n]
        rest = sorted(set(files) - set(chosen), key=lambda s: int(s[1:]))
        extra = np.random.default_rng(_check_seed(seed)).permutation(len(rest))[: n - len(chosen)]
        chosen += [rest[i] for i in sorted(extra)]
    images = [_finish(_read_grey(files[s]), equalize) for s in chosen]
    return TextureBank(images, chosen, "brodatz", {"folder": str(album_dir), "equalize": equalize})


def load_textures(data_dir=None, n=20, seed=0, source="auto", names=None, equalize=True) -> TextureBank:
    """The textures of textured MNIST: the Brodatz album if available, else the free default.

    Parameters
    ----------
    data_dir : path or None — a folder with the album's ``D*.png`` / ``D*.gif`` files, or with a
        ``brodatz/`` sub-folder of them. None: look in :func:`rladder_nb.settings.data_dir`.
    n : int — number of textures (the paper: 20).
    seed : int — seeds the procedural textures and any seeded choice of plates.
    source : ``"auto"`` (album if found, else free; an explicit ``data_dir`` without plates is an
        error), ``"brodatz"`` (album or error), ``"free"`` (always the embedded default, which the
        book's published figures use since the album's photographs are copyrighted) or ``"gratings"``
        (:func:`grating_textures`, Tagger's own) or ``"flat"`` (:func:`flat_textures`, constant grey levels,
        a control); for the last two, ``names`` and ``equalize`` do not apply and ``seed`` is unused by ``"flat"``.
    names : plate names for the album, or None for :data:`BRODATZ_DEFAULT`.
    equalize : bool — histogram-equalise every texture.

    Returns
    -------
    TextureBank — ``images`` (list of 2-D float32 in [0, 1]), ``names``, ``source``.

    Introduced in *Perceptual grouping with Tagger and RTagger* (Part III).
    """
    if source not in SOURCES:
        raise ValueError(f"unknown texture source {source!r}: expected one of {', '.join(map(repr, SOURCES))}")
    if source == "free":
        bank = free_textures(n, seed, equalize)
    elif source == "gratings":
        bank = grating_textures(n, seed)
    elif source == "flat":
        bank = flat_textures(n)
    else:
        explicit = data_dir is not None
        root = settings.data_dir(data_dir)
        if explicit and not root.is_dir():
            raise FileNotFoundError(f"texture folder {root} does not exist: pass the folder holding the "
                                    "Brodatz album's D*.png files, or source='free'")
        if explicit or source == "brodatz" or _find_album(root) is not None:
            bank = brodatz_textures(root, n, seed, names, equalize)
        else:
            bank = free_textures(n, seed, equalize)
    where = f" from {Path(bank.details['folder']).name}/" if bank.source == "brodatz" else ""
    settings.report(f"textures: {len(bank)} {bank.source} textures{where}"
                    + {"free": " (scikit-image CC0 photographs + procedural)",
                       "gratings": " (Tagger's Freq20 sinusoids)",
                       "flat": " (constant grey levels, a control)"}.get(bank.source, ""))
    return bank


# ---------------------------------------------------------------------------------------------------
# randomly rotated and scaled patches
# ---------------------------------------------------------------------------------------------------

def sample_texture_patches(textures, texture_ids, size, rng, rotate=True,
                           scale_range=DEFAULT_SCALE_RANGE) -> np.ndarray:
    """Patches of ``textures[texture_ids[i]]``, each randomly rotated, scaled and placed.

    A patch pixel ``o`` (relative to the patch centre) reads the texture at
    ``centre + R(angle) @ o / scale`` with bilinear interpolation; the centre is drawn so that the
    whole rotated footprint lies inside the texture, hence no border artefacts.

    Parameters
    ----------
    textures : TextureBank or sequence of 2-D arrays in [0, 1].
    texture_ids : int array (M,) — which texture each patch comes from.
    size : int or (H, W) — patch size.
    rng : numpy Generator.
    rotate : bool — uniform random angle in [0, 2 pi) (else 0).
    scale_range : (lo, hi) — magnification drawn log-uniformly; 1 keeps the texture's pixel size,
        0.5 shows twice as much texture per patch (our reconstruction: default (0.6, 1.2)). Without
        rotation and with ``(1, 1)`` a patch is a plain crop of texture pixels (no interpolation, which
        would blur a fine grating at a half-pixel offset).

    Returns
    -------
    float32 array (M, H, W) in [0, 1].

    Introduced in *Perceptual grouping with Tagger and RTagger* (Part III).
    """
    images = textures.images if isinstance(textures, TextureBank) else list(textures)
    height, width = (size, size) if np.isscalar(size) else tuple(size)
    lo, hi = _check_scale_range(scale_range)
    ids = np.asarray(texture_ids)
    bad_ids = ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer)
    if bad_ids or (ids.size and (ids.min() < 0 or ids.max() >= len(images))):
        raise ValueError(f"texture_ids must be a 1-D integer array with values in 0..{len(images) - 1}")
    if int(height) < 1 or int(width) < 1:
        raise ValueError(f"patch size must be positive, got {size!r}")
    radius = 0.5 * np.hypot(height, width) / lo + 1.5    # footprint radius in texture pixels
    shapes = np.array([np.shape(t) for t in images])     # (T, 2)
    too_small = np.flatnonzero(shapes.min(axis=1) < 2 * radius + 1)
    if too_small.size:
        raise ValueError(f"textures {too_small.tolist()} are smaller than {int(2 * radius + 2)} pixels, too "
                         f"small for {height}x{width} patches at scale {lo}: use larger textures or a larger "
                         "scale_range minimum")
    # stack into (T, Hmax, Wmax); each patch stays inside its own texture's (H, W)
    stack = np.zeros((len(images), shapes[:, 0].max(), shapes[:, 1].max()), dtype=np.float32)
    for t, img in enumerate(images):
        stack[t, : img.shape[0], : img.shape[1]] = img
    m = ids.size
    angle = rng.uniform(0, 2 * np.pi, m) if rotate else np.zeros(m)
    scale = np.exp(rng.uniform(np.log(lo), np.log(hi), m))
    centre_y = rng.uniform(radius, shapes[ids, 0] - 1 - radius)
    centre_x = rng.uniform(radius, shapes[ids, 1] - 1 - radius)
    if not rotate and lo == hi == 1.0:   # a plain crop: patch pixels on texture pixels, no interpolation blur
        centre_y = np.floor(centre_y - (height - 1) / 2) + (height - 1) / 2
        centre_x = np.floor(centre_x - (width - 1) / 2) + (width - 1) / 2
    oy, ox = np.mgrid[0:height, 0:width].astype(np.float64)
    oy, ox = (oy - (height - 1) / 2).ravel(), (ox - (width - 1) / 2).ravel()   # (H*W,)
    cos, sin = (np.cos(angle) / scale)[:, None], (np.sin(angle) / scale)[:, None]
    out = np.empty((m, height, width), dtype=np.float32)
    for start in range(0, m, 4096):                      # chunks bound the coordinate memory
        sl = slice(start, start + 4096)
        ys = centre_y[sl, None] + cos[sl] * oy - sin[sl] * ox   # (m', H*W)
        xs = centre_x[sl, None] + sin[sl] * oy + cos[sl] * ox
        ts = np.broadcast_to(ids[sl, None].astype(np.float64), ys.shape)
        vals = ndimage.map_coordinates(stack, [ts.ravel(), ys.ravel(), xs.ravel()], order=1, mode="nearest")
        out[sl] = vals.reshape(-1, height, width)
    return np.clip(out, 0.0, 1.0)


def sample_texture_patch(texture, size, rng, rotate=True, scale_range=DEFAULT_SCALE_RANGE) -> np.ndarray:
    """One randomly rotated and scaled patch of a 2-D texture: float32 (H, W) in [0, 1].

    See :func:`sample_texture_patches`. Introduced in *Perceptual grouping with Tagger and RTagger*.
    """
    texture = np.asarray(texture)
    if texture.ndim != 2:
        raise ValueError(f"texture must be a 2-D array, got shape {texture.shape}")
    return sample_texture_patches([texture], np.zeros(1, dtype=np.int64), size, rng, rotate, scale_range)[0]


# ---------------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------------

def _finish(img, equalize):
    img = _normalise(img)
    if equalize:
        from skimage import exposure

        img = _normalise(exposure.equalize_hist(img, nbins=256))
    return img.astype(np.float32)


def _check_count(n, available, what):
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 1 <= n <= available:
        raise ValueError(f"n must be an integer between 1 and {available} ({available} {what} available), "
                         f"got {n!r}")


def _check_seed(seed):
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _check_scale_range(scale_range):
    try:
        lo, hi = (float(v) for v in scale_range)
    except (TypeError, ValueError) as err:
        raise ValueError(f"scale_range must be a pair (lo, hi), got {scale_range!r}") from err
    if not 0 < lo <= hi:
        raise ValueError(f"scale_range must satisfy 0 < lo <= hi, got {scale_range!r}")
    return lo, hi
