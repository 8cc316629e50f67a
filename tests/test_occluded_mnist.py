"""Occluded Moving MNIST: geometry measured on frames, motion, determinism, optimal reconstruction."""
import time

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from rladder_nb.data.mnist import mnist_14x14  # noqa: E402
from rladder_nb.data.occluded_mnist import (  # noqa: E402
    OccludedMovingMNIST, as_digit_images, bouncing_positions, generate_occluded_sequences,
    occlusion_grid, optimal_reconstruction_from_frames, render_occluded)

# the paper's velocities, written out independently of the module
PAPER_VELOCITIES = {(1, 2), (1, -2), (-1, 2), (-1, -2), (2, 1), (2, -1), (-2, 1), (-2, -1)}


def random_digits(n=40, size=28, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
    return images, rng.integers(0, 10, size=n)


def runs(line) -> list:
    """Lengths of the runs of equal values in a 1-D boolean array, as (value, length) pairs."""
    out, start = [], 0
    for i in range(1, len(line) + 1):
        if i == len(line) or line[i] != line[start]:
            out.append((bool(line[start]), i - start))
            start = i
    return out


def simulate_bounce(start, velocity, n_frames, max_position):
    """Step-by-step elastic bouncing, one reflection at a time (independent of bouncing_positions)."""
    pos, vel, path = list(start), list(velocity), []
    for _ in range(n_frames):
        path.append(tuple(pos))
        for axis in range(2):
            pos[axis] += vel[axis]
            while pos[axis] < 0 or pos[axis] > max_position:
                pos[axis] = -pos[axis] if pos[axis] < 0 else 2 * max_position - pos[axis]
                vel[axis] = -vel[axis]
    return np.array(path)


# ---------------------------------------------------------------------------------------------------
# geometry, measured on generated frames
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("width, gap, offset", [(4, 8, 8), (3, 5, 2), (2, 7, 0)])
def test_bar_width_and_spacing_measured_on_frames(width, gap, offset):
    solid = np.full((1, 32, 32), 255, np.uint8)  # a digit that fills the whole canvas, all ink
    out = generate_occluded_sequences(solid, [0], n=1, n_frames=1, canvas=32, digit_size=32,
                                      bar_width=width, bar_gap=gap, bar_offset=offset)
    frame = out["frames"][0, 0]  # dark everywhere except under the (white) bars
    first_visible_row = next(r for r in range(32) if (r - offset) % (width + gap) >= width)
    row_runs = runs(frame[first_visible_row] == 1.0)
    inner = row_runs[1:-1]  # runs cut by the canvas edge excluded
    assert {length for white, length in inner if white} == {width}
    assert {length for white, length in inner if not white} == {gap}
    definition = [(k - offset) % (width + gap) < width for k in range(32)]
    assert (frame[first_visible_row] == 1.0).tolist() == definition
    column = frame[:, first_visible_row]  # the same grid horizontally
    assert runs(column == 1.0) == row_runs
    assert np.array_equal(frame == 1.0, occlusion_grid(32, width, gap, offset))


def test_paper_grid_reads_8_4_8_4_8():
    grid = occlusion_grid()
    assert runs(grid[0]) == [(False, 8), (True, 4), (False, 8), (True, 4), (False, 8)]
    assert grid[8:12].all() and grid[:, 20:24].all()


def test_canvas_digit_size_and_rendering_convention():
    images, labels = random_digits()
    out = generate_occluded_sequences(images, labels, n=30, seed=1)
    assert out["frames"].shape == (30, 5, 32, 32) and out["frames"].dtype == np.float32
    assert out["optimal_reconstruction"].shape == (30, 14, 14)
    ink = mnist_14x14(images)
    for i in range(30):
        for t in range(5):
            y, x = out["positions"][i, t]
            clean = out["clean_frames"][i, t]
            np.testing.assert_allclose(clean[y:y + 14, x:x + 14], 1 - ink[out["digit_index"][i]], atol=1e-6)
            outside = np.ones((32, 32), bool)
            outside[y:y + 14, x:x + 14] = False
            assert (clean[outside] == 1.0).all()  # white background
            frame = out["frames"][i, t]
            assert (frame[occlusion_grid()] == 1.0).all()  # white bars
            visible = out["visible_mask"][i, t]
            assert visible.sum() == (~occlusion_grid()[y:y + 14, x:x + 14]).sum()
            assert np.array_equal(frame[visible], clean[visible])
    black = generate_occluded_sequences(images, labels, n=5, seed=1, white_background=False)
    np.testing.assert_allclose(black["clean_frames"], 1 - out["clean_frames"][:5], atol=1e-6)
    assert (black["frames"][:, :, occlusion_grid()] == 0).all()


# ---------------------------------------------------------------------------------------------------
# motion
# ---------------------------------------------------------------------------------------------------

def test_velocities_and_bouncing_measured_on_frames():
    block = np.zeros((1, 14, 14), np.uint8)
    block[0] = 255  # a solid square digit: its bounding box is its position
    out = generate_occluded_sequences(block, [3], n=600, n_frames=30, seed=5)
    velocities = {tuple(v) for v in out["velocity"]}
    assert velocities == PAPER_VELOCITIES  # all 8, nothing else
    clean = out["clean_frames"][:300]  # (300, 30, 32, 32)
    for i in range(0, 300, 7):
        for t in range(30):
            rows = np.flatnonzero((clean[i, t] < 1).any(axis=1))
            cols = np.flatnonzero((clean[i, t] < 1).any(axis=0))
            assert rows.size == 14 and cols.size == 14  # the whole digit, inside the canvas
            assert (rows[0], cols[0]) == tuple(out["positions"][i, t])
    positions = out["positions"]
    assert positions.min() == 0 and positions.max() == 32 - 14  # bounces reach both walls, never beyond
    for i in range(0, 600, 7):
        expected = simulate_bounce(positions[i, 0], out["velocity"][i], 30, 18)
        assert np.array_equal(positions[i], expected)


def test_bouncing_positions_against_simulation():
    rng = np.random.default_rng(0)
    for _ in range(200):
        max_position = int(rng.integers(2, 30))
        start = rng.integers(0, max_position + 1, size=2)
        velocity = rng.integers(-5, 6, size=2)
        got = bouncing_positions(start, velocity, 50, max_position)
        assert np.array_equal(got, simulate_bounce(start, velocity, 50, max_position))
    assert (bouncing_positions([0, 0], [2, 1], 4, 0) == 0).all()
    with pytest.raises(ValueError):
        bouncing_positions([5, 0], [1, 1], 3, 4)


# ---------------------------------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------------------------------

def test_determinism_by_seed_and_epoch():
    images, labels = random_digits()
    a = generate_occluded_sequences(images, labels, n=50, seed=3)
    b = generate_occluded_sequences(images, labels, n=50, seed=3)
    c = generate_occluded_sequences(images, labels, n=50, seed=4)
    d = generate_occluded_sequences(images, labels, n=50, seed=3, epoch=1)
    for key in a:
        assert np.array_equal(a[key], b[key])
    assert not np.array_equal(a["positions"], c["positions"])
    assert not np.array_equal(a["positions"], d["positions"])


def test_dataset_items_batches_and_dataloader_agree():
    import torch

    images, labels = random_digits(n=24)
    data = OccludedMovingMNIST((images, labels), seed=2, fresh_each_epoch=True)
    batch = data.get_batch(np.arange(24))
    reference = generate_occluded_sequences(images, labels, n=24, seed=2, digit_indices=np.arange(24))
    for key, value in batch.items():
        assert np.array_equal(value.numpy(), reference[key]), key
    item = data[5]
    assert all(torch.equal(item[k], batch[k][5]) for k in batch)
    loader = torch.utils.data.DataLoader(data, batch_size=8, shuffle=False)
    first = next(iter(loader))
    assert all(torch.equal(first[k], batch[k][:8]) for k in batch)
    data.set_epoch(1)
    assert not torch.equal(data.get_batch(np.arange(24))["positions"], batch["positions"])
    fixed = OccludedMovingMNIST((images, labels), seed=2, fresh_each_epoch=False)
    fixed.set_epoch(1)
    assert torch.equal(fixed.get_batch(np.arange(24))["positions"], batch["positions"])
    seen = torch.cat([b["digit_index"] for b in data.batches(5)])
    assert sorted(seen.tolist()) == list(range(24))


# ---------------------------------------------------------------------------------------------------
# optimal reconstruction
# ---------------------------------------------------------------------------------------------------

def test_optimal_reconstruction_on_hand_built_cases():
    ink = np.random.default_rng(1).uniform(0.1, 1.0, size=(1, 14, 14)).astype(np.float32)
    i, j = np.meshgrid(np.arange(14), np.arange(14), indexing="ij")
    bars = lambda k: (k >= 8) & (k <= 11)  # the paper's grid: bars on rows/columns 8..11 and 20..23
    # a digit standing still at (0, 0): it is seen exactly where no bar crosses it
    still = render_occluded(ink, np.zeros((1, 5, 2), int), occlusion_grid())
    expected_seen = ~bars(i) & ~bars(j)
    assert np.array_equal(still["optimal_seen_mask"][0], expected_seen)
    assert np.allclose(still["optimal_reconstruction"][0], np.where(expected_seen, 1 - ink[0], 1.0))
    # at (0, 0) then (4, 4): a pixel stays hidden if a bar covers it at both positions
    moved = render_occluded(ink, np.array([[[0, 0], [4, 4]]]), occlusion_grid())
    hidden_first = bars(i) | bars(j)
    hidden_second = bars(i + 4) | bars(j + 4)  # i.e. rows/columns 4..7 of the digit
    assert np.array_equal(~moved["optimal_seen_mask"][0], hidden_first & hidden_second)
    # by hand: (digit row in 8..11 and column in 4..7) or the other way round -> 2 * 4 * 4 pixels
    assert (~moved["optimal_seen_mask"][0]).sum() == 32
    # bouncing at the bottom wall keeps digit row 5 behind the bar on canvas rows 20..23
    path = bouncing_positions(np.array([17, 0]), np.array([1, 2]), 5, 18)
    assert path[:, 0].tolist() == [17, 18, 17, 16, 15]
    bounced = render_occluded(ink, path[None], occlusion_grid())
    assert not bounced["optimal_seen_mask"][0, 5].any()
    assert (bounced["optimal_reconstruction"][0, 5] == 1.0).all()  # never seen -> background (white)


def test_optimal_reconstruction_equals_brute_force_union():
    images, labels = random_digits(n=10)
    out = generate_occluded_sequences(images, labels, n=40, seed=9)
    grid = lambda k: (k - 8) % 12 < 4  # the paper's bars, from their definition
    ink = mnist_14x14(images)
    for n in range(40):
        seen = np.zeros((14, 14), bool)
        for t in range(5):
            y, x = out["positions"][n, t]
            for a in range(14):
                for b in range(14):
                    if not (grid(y + a) or grid(x + b)):
                        seen[a, b] = True
        assert np.array_equal(out["optimal_seen_mask"][n], seen)
        expected = np.where(seen, 1 - ink[out["digit_index"][n]], 1.0)
        np.testing.assert_allclose(out["optimal_reconstruction"][n], expected, atol=1e-6)
        recon, seen_steps = optimal_reconstruction_from_frames(out["frames"][n], out["positions"][n],
                                                               out["occlusion_mask"], 14)
        np.testing.assert_allclose(recon[-1], expected, atol=1e-6)  # the observer reaches the same
        assert (seen_steps[1:] >= seen_steps[:-1]).all() and np.array_equal(seen_steps[-1], seen)


# ---------------------------------------------------------------------------------------------------
# speed, inputs, figure
# ---------------------------------------------------------------------------------------------------

def test_generation_throughput():
    images, labels = random_digits(n=200)
    data = OccludedMovingMNIST((images, labels))
    data.get_batch(np.arange(100))  # warm-up
    begin = time.perf_counter()
    for _ in range(4):
        data.get_batch(np.arange(200).repeat(2)[:256])
    rate = 4 * 256 / (time.perf_counter() - begin)
    print(f"Occluded Moving MNIST: {rate:,.0f} sequences/s")
    assert rate > 2000  # ~30,000/s on one idle core; the bound allows for a busy shared machine


def test_bad_inputs():
    images, labels = random_digits(n=5)
    with pytest.raises(ValueError, match="digit_size"):
        generate_occluded_sequences(images[:, :20, :20], labels, n=2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        generate_occluded_sequences(images.astype(float), labels, n=2)
    with pytest.raises(TypeError, match="uint8"):
        generate_occluded_sequences(images.astype(np.int32), labels, n=2)
    with pytest.raises(ValueError, match="labels"):
        generate_occluded_sequences(images, labels[:3], n=2)
    with pytest.raises(ValueError, match="fit"):
        generate_occluded_sequences(images, labels, n=2, canvas=10)
    with pytest.raises(ValueError, match="n must be"):
        generate_occluded_sequences(images, labels, n=0)
    with pytest.raises(TypeError):
        generate_occluded_sequences(images, labels, n=2.5)
    with pytest.raises(ValueError, match="bar_gap"):
        generate_occluded_sequences(images, labels, n=2, bar_gap=0)
    with pytest.raises(ValueError, match="digit_indices"):
        generate_occluded_sequences(images, labels, n=2, digit_indices=[0, 9])
    with pytest.raises(ValueError, match="shape"):
        as_digit_images(np.zeros((3, 28, 27), np.uint8), 14)
    with pytest.raises(ValueError, match="inside"):
        render_occluded(np.zeros((1, 14, 14)), np.full((1, 2, 2), 19), occlusion_grid())
    with pytest.raises(IndexError):
        OccludedMovingMNIST((images, labels)).get_batch([7])


def test_figure_2():
    from rladder_nb.plots.video import plot_occluded_sequence

    images, labels = random_digits(n=5)
    data = OccludedMovingMNIST((images, labels))
    fig = plot_occluded_sequence(data[0], title="Figure 2")
    assert len(fig.axes) == 3 * 5
    batch = generate_occluded_sequences(images, labels, n=3)
    assert len(plot_occluded_sequence(batch, index=2, mark_unseen=True).axes) == 15
    with pytest.raises(ValueError, match="index"):
        plot_occluded_sequence(batch)
    with pytest.raises(TypeError):
        plot_occluded_sequence({"frames": batch["frames"]})
    import matplotlib.pyplot as plt

    plt.close("all")
