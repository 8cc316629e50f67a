"""Polyphonic-music loaders (rladder_nb.data.music): both file formats, the music21 fallback, bad files.

The benchmark ``.mat`` files come from ``../shared/data/music`` (skipped when absent); they are linked,
never copied, into a temporary data directory so that caches land in ``tmp_path``.
"""
from __future__ import annotations

import math
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from rladder_nb.data import music
from rladder_nb.data.music import load_music

SHARED_MUSIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "music"
MAT_FILES = {"jsb": "JSB_Chorales.mat", "nottingham": "Nottingham.mat", "musedata": "MuseData.mat",
             "pianomidi": "Piano_midi.mat"}
# split sizes (train, valid, test) from the paper notes (NOTES.md §4), typed in independently of the code
PUBLISHED_SIZES = {"jsb": (229, 76, 77), "nottingham": (694, 173, 170), "musedata": (524, 135, 124),
                   "pianomidi": (87, 12, 25)}


def shared_mat(name: str):
    path = SHARED_MUSIC / MAT_FILES[name]
    if not path.is_file():
        pytest.skip(f"benchmark data not available ({path})")
    return path


def link_into(tmp_path, source, name=None):
    target = tmp_path / (name or source.name)
    os.symlink(source, target)
    return target


def mat_rolls(path):
    """The rolls of a .mat file read straight with scipy (independent of the loader)."""
    data = scipy.io.loadmat(str(path))
    return {s: [np.asarray(c) for c in data[s + "data"].ravel()] for s in ("train", "valid", "test")}


def as_note_lists(rolls):
    """Rolls -> the original pickle's layout: lists (sequences) of lists (steps) of MIDI numbers."""
    return [[[int(k) + 21 for k in np.flatnonzero(step)] for step in roll] for roll in rolls]


class Python2StylePickler(pickle._Pickler):
    """Writes ``str`` as Python 2 byte strings (SHORT_BINSTRING), as the original pickles hold them."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_str(self, obj):
        raw = obj.encode("latin1")
        self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        self.memoize(obj)

    dispatch[str] = save_str


def write_pickle(path, obj, python2_strings=True):
    with open(path, "wb") as fh:
        (Python2StylePickler(fh, protocol=2) if python2_strings else pickle.Pickler(fh, protocol=2)).dump(obj)
    return path


# ---------------------------------------------------------------------------------------------------
# the .mat format and the published split sizes
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MAT_FILES))
def test_mat_split_sizes_and_content(tmp_path, name):
    path = shared_mat(name)
    link_into(tmp_path, path)
    data = load_music(name, data_dir=tmp_path)
    assert tuple(len(data.split(s)) for s in ("train", "valid", "test")) == PUBLISHED_SIZES[name]
    assert ".mat" in data.source and MAT_FILES[name] in data.source and "differ" not in data.source
    assert data.frame == ("quarter note" if name == "jsb" else "eighth note")
    expected = mat_rolls(path)
    for split in ("train", "valid", "test"):
        for got, want in zip(data.split(split), expected[split]):
            assert got.dtype == np.uint8 and got.shape == want.shape and got.shape[1] == 88
            np.testing.assert_array_equal(got, want)


def write_mat(path, n_steps):
    cells = np.empty((1, 2), dtype=object)
    for i in range(2):
        cells[0, i] = (np.arange(n_steps * 88).reshape(n_steps, 88) % (7 + i) == 0).astype(np.uint8)
    scipy.io.savemat(path, {"traindata": cells, "validdata": cells, "testdata": cells})
    return cells


def test_cache_is_used_and_invalidated(tmp_path, capsys):
    path = tmp_path / "Piano_midi.mat"
    write_mat(path, 5)
    first = load_music("pianomidi", data_dir=tmp_path)
    assert "read from the cache" not in first.source and "differ" in first.source  # 2/2/2 is not the benchmark's split
    cache_files = list((tmp_path / "music").glob("*.npz"))
    assert len(cache_files) == 1 and not list((tmp_path / "music").glob("*.tmp"))
    second = load_music("pianomidi", data_dir=tmp_path)
    assert "read from the cache" in second.source
    assert "[rladder_nb]" in capsys.readouterr().out  # the source is reported
    for a, b in zip(first.train + first.test, second.train + second.test):
        np.testing.assert_array_equal(a, b)
    cells = write_mat(path, 9)  # a changed file makes the cache stale
    os.utime(path, ns=(0, 10**9))
    third = load_music("pianomidi", data_dir=tmp_path)
    assert "read from the cache" not in third.source and third.valid[1].shape == (9, 88)
    np.testing.assert_array_equal(third.valid[1], cells[0, 1])
    cache_files[0].write_bytes(b"not an npz")  # a corrupt cache is reported and rebuilt
    assert "read from the cache" not in load_music("pianomidi", data_dir=tmp_path).source
    assert "ignoring unreadable music cache" in capsys.readouterr().out
    assert "read from the cache" in load_music("pianomidi", data_dir=tmp_path).source


def test_unwritable_cache_directory_is_not_fatal(tmp_path, capsys):
    write_mat(tmp_path / "Piano_midi.mat", 4)
    (tmp_path / "music").write_text("a file where the cache folder should be")
    assert len(load_music("pianomidi", data_dir=tmp_path).train) == 2
    assert "could not write the music cache" in capsys.readouterr().out


def test_files_in_music_subfolder_and_aliases(tmp_path):
    (tmp_path / "music").mkdir()
    link_into(tmp_path / "music", shared_mat("pianomidi"))
    assert len(load_music("Piano-midi.de", data_dir=tmp_path, cache=False).train) == 87
    assert music.canonical_name("JSB Chorales") == "jsb" and music.canonical_name("MuseData") == "musedata"


# ---------------------------------------------------------------------------------------------------
# the original pickle format
# ---------------------------------------------------------------------------------------------------


def test_original_pickle_reads_back_identical_to_mat(tmp_path):
    expected = mat_rolls(shared_mat("jsb"))
    layout = {s: as_note_lists(expected[s]) for s in ("train", "valid", "test")}
    layout["test"] = [[tuple(step) for step in seq] for seq in layout["test"]]  # steps may also be tuples
    write_pickle(tmp_path / "JSB Chorales.pickle", layout)
    data = load_music("JSB Chorales", data_dir=tmp_path)
    assert "pickle" in data.source and "JSB Chorales.pickle" in data.source
    assert tuple(len(data.split(s)) for s in ("train", "valid", "test")) == PUBLISHED_SIZES["jsb"]
    for split in ("train", "valid", "test"):
        for got, want in zip(data.split(split), expected[split]):
            np.testing.assert_array_equal(got, want)


def test_pickle_wins_over_mat(tmp_path):
    link_into(tmp_path, shared_mat("jsb"))
    tiny = [[[60, 64], [], [67]]]
    write_pickle(tmp_path / "JSB Chorales.pickle", {"train": tiny, "valid": tiny, "test": tiny})
    data = load_music("jsb", data_dir=tmp_path, cache=False)
    assert "original pickle" in data.source and "differ" in data.source  # 1/1/1 is not the benchmark's split
    roll = data.train[0]
    assert roll.shape == (3, 88) and roll.sum() == 3 and roll[0, 60 - 21] == roll[0, 64 - 21] == roll[2, 67 - 21] == 1


def tiny_layout(**override):
    layout = {"train": [[[60], [62, 65]]], "valid": [[[70]]], "test": [[[21, 108]]]}
    layout.update(override)
    return layout


@pytest.mark.parametrize("content, message", [
    (tiny_layout(test=[[[20]]]), "outside the piano"),
    (tiny_layout(test=[[[109]]]), "outside the piano"),
    (tiny_layout(test=[[]]), "non-empty list of time steps"),
    (tiny_layout(valid=[]), "non-empty list of sequences"),
    (tiny_layout(train=[[["C4"]]]), "integer MIDI note"),
    ({"training": [], "valid": [], "test": []}, "lacks the keys"),
    ([1, 2, 3], "holds a list"),
])
def test_bad_pickles_give_clear_errors(tmp_path, content, message):
    write_pickle(tmp_path / "Nottingham.pickle", content)
    with pytest.raises(ValueError, match=message):
        load_music("nottingham", data_dir=tmp_path)


def test_truncated_pickle(tmp_path):
    path = write_pickle(tmp_path / "MuseData.pickle", tiny_layout())
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ValueError, match="truncated"):
        load_music("musedata", data_dir=tmp_path)


def test_restricted_unpickler_refuses_objects(tmp_path):
    class Sneaky:
        def __reduce__(self):
            return (print, ("this must never run",))

    write_pickle(tmp_path / "MuseData.pickle", {"train": Sneaky(), "valid": [], "test": []}, python2_strings=False)
    with pytest.raises(ValueError, match="refuses"):
        load_music("musedata", data_dir=tmp_path)
    write_pickle(tmp_path / "MuseData.pickle", tiny_layout(train=[np.array([[60]])]), python2_strings=False)
    with pytest.raises(ValueError, match="refuses"):
        load_music("musedata", data_dir=tmp_path)


@pytest.mark.parametrize("arrays, message", [
    ({"foo": 1}, "lacks key 'traindata'"),
    ("wrong width", r"\(T, 88\)"),
    ("not binary", "only 0 and 1"),
])
def test_bad_mat_files(tmp_path, arrays, message):
    good = np.empty((1, 1), dtype=object)
    good[0, 0] = np.zeros((4, 88), np.uint8)
    bad = np.empty((1, 1), dtype=object)
    if arrays == "wrong width":
        bad[0, 0] = np.zeros((4, 87), np.uint8)
    elif arrays == "not binary":
        bad[0, 0] = np.full((4, 88), 2, np.uint8)
    if isinstance(arrays, str):
        arrays = {"traindata": good, "validdata": good, "testdata": bad}
    scipy.io.savemat(tmp_path / "Piano_midi.mat", arrays)
    with pytest.raises(ValueError, match=message):
        load_music("pianomidi", data_dir=tmp_path)


def test_corrupt_mat_file(tmp_path):
    (tmp_path / "Piano_midi.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    with pytest.raises(ValueError, match="could not read Piano_midi.mat"):
        load_music("pianomidi", data_dir=tmp_path)


class FakeResponse:
    def __init__(self, payload):
        self.payload = payload

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self):
        return self.payload


def test_download_is_checked_strictly_without_network(tmp_path, monkeypatch):
    expected = mat_rolls(shared_mat("jsb"))
    good = write_pickle(tmp_path / "good.pickle", {s: as_note_lists(expected[s]) for s in ("train", "valid", "test")})
    bad = write_pickle(tmp_path / "bad.pickle", tiny_layout())
    asked = []

    def fake_urlopen(url, timeout):
        asked.append(url)
        return FakeResponse(current.read_bytes())

    monkeypatch.setattr(music.urllib.request, "urlopen", fake_urlopen)
    current, target = bad, tmp_path / "data"
    with pytest.raises(ValueError, match="split sizes"):  # a wrong file is refused and removed
        load_music("jsb", data_dir=target, download=True)
    assert asked == ["http://www-etud.iro.umontreal.ca/~boulanni/JSB%20Chorales.pickle"]
    assert not (target / "music" / "JSB Chorales.pickle").exists()
    current = good
    data = load_music("jsb", data_dir=target, download=True)
    assert "original pickle" in data.source and (target / "music" / "JSB Chorales.pickle").is_file()
    np.testing.assert_array_equal(data.test[5], expected["test"][5])


def test_names_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="jsb, nottingham, musedata, pianomidi"):
        load_music("mozart", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="Nottingham.pickle"):
        load_music("nottingham", data_dir=tmp_path)
    with pytest.raises(ValueError, match="max_pieces"):
        load_music("jsb", data_dir=tmp_path, max_pieces=2)


# ---------------------------------------------------------------------------------------------------
# the music21 fallback
# ---------------------------------------------------------------------------------------------------


def test_music21_fallback(tmp_path):
    data = load_music("jsb", data_dir=tmp_path, max_pieces=5)
    assert "music21" in data.source and "NOT the JSB benchmark's split" in data.source
    assert data.frame == "quarter note"
    assert [len(data.split(s)) for s in ("train", "valid", "test")] == [3, 1, 1]
    ids = data.piece_ids
    assert len(set(ids["train"] + ids["valid"] + ids["test"])) == 5  # disjoint splits
    for roll in data.train + data.valid + data.test:
        assert roll.dtype == np.uint8 and roll.ndim == 2 and roll.shape[1] == 88 and len(roll) >= 8
        assert set(np.unique(roll)) <= {0, 1} and roll.sum(axis=1).max() <= 8  # four voices, some doubling

    # independent check of one chorale: music21's chordify gives the sounding pitches at each beat
    from music21 import corpus

    chords = corpus.parse(ids["test"][0]).chordify().flatten().notes
    roll = data.test[0]
    assert len(roll) == math.ceil(max(float(c.offset + c.quarterLength) for c in chords))
    for t in range(len(roll)):
        sounding = {p.midi for c in chords if c.offset <= t < c.offset + c.quarterLength for p in c.pitches}
        assert set(np.flatnonzero(roll[t]) + 21) == sounding, f"step {t}"

    again = load_music("jsb", data_dir=tmp_path, max_pieces=5)  # from the cache, same rolls and ids
    assert "read from the cache" in again.source and again.piece_ids == ids
    for a, b in zip(data.train, again.train):
        np.testing.assert_array_equal(a, b)


def test_music21_split_is_fixed_and_nested():
    full = music.chorale_split()
    assert [len(full[s]) for s in ("train", "valid", "test")] == [209, 70, 71]
    assert len(set(sum(full.values(), []))) == 350
    small = music.chorale_split(max_pieces=12)
    for split in ("train", "valid", "test"):
        assert small[split] == full[split][: len(small[split])]  # a small load is a subset of the full one


def test_pad_rolls():
    rolls = [np.eye(88, dtype=np.uint8)[:3], np.eye(88, dtype=np.uint8)[:5]]
    batch, lengths = music.pad_rolls(rolls)
    assert batch.shape == (2, 5, 88) and lengths.tolist() == [3, 5] and batch[0, 3:].sum() == 0
    with pytest.raises(ValueError, match=r"\(T, 88\)"):
        music.pad_rolls([np.zeros((3, 12))])
