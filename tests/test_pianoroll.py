"""Piano-roll utilities (rladder_nb.pianoroll): spans, plots, synthesis, audio widget, MIDI export.

MIDI files are read back with music21's own low-level MIDI parser, independent of our writer.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from rladder_nb import pianoroll  # noqa: E402


def example_roll():
    roll = np.zeros((8, 88), dtype=np.uint8)
    roll[0:3, 60 - 21] = 1  # C4 held three steps
    roll[2:4, 64 - 21] = 1  # E4
    roll[5:7, 69 - 21] = 1  # A4 held two steps
    roll[7, 48 - 21] = 1  # C3 on the last step
    return roll


def test_note_spans_and_names():
    assert pianoroll.note_spans(example_roll()) == [(0, 3, 60), (2, 4, 64), (5, 7, 69), (7, 8, 48)]
    assert pianoroll.note_spans(np.zeros((4, 88))) == []
    assert [pianoroll.note_name(m) for m in (21, 60, 69, 108)] == ["A0", "C4", "A4", "C8"]


def test_synthesis_length_silence_and_pitch():
    roll = example_roll()
    wave, rate = pianoroll.synthesize(roll, step_seconds=0.2, sample_rate=8000)
    assert rate == 8000 and wave.dtype == np.float32 and wave.shape == (round(8 * 0.2 * 8000),)
    assert np.abs(wave).max() == pytest.approx(0.8, rel=1e-6)
    assert np.all(wave[round(4 * 0.2 * 8000): round(5 * 0.2 * 8000)] == 0)  # step 4 is a rest

    empty, _ = pianoroll.synthesize(np.zeros((5, 88)), step_seconds=0.1, sample_rate=8000)
    assert empty.shape == (4000,) and not np.any(empty)

    a4 = np.zeros((10, 88))
    a4[:, 69 - 21] = 1  # one second of A4: the spectrum peaks at 440 Hz
    tone, rate = pianoroll.synthesize(a4, step_seconds=0.1, sample_rate=8000, harmonics=(1.0, 0.3))
    spectrum = np.abs(np.fft.rfft(tone))
    assert np.fft.rfftfreq(len(tone), 1 / rate)[spectrum.argmax()] == pytest.approx(440.0, abs=1.0)


def test_audio_widget_embeds_wav():
    from IPython.display import Audio

    widget = pianoroll.audio_widget(example_roll(), step_seconds=0.1, sample_rate=8000)
    assert isinstance(widget, Audio) and "data:audio/wav;base64" in widget._repr_html_()


def read_midi_with_music21(path):
    """(ticks per quarter, tempo in microseconds, [(tick, 'on'/'off', pitch), ...]) via music21.midi."""
    from music21 import midi

    mf = midi.MidiFile()
    mf.open(str(path))
    mf.read()
    mf.close()
    assert len(mf.tracks) == 1
    now, tempo, events = 0, None, []
    for event in mf.tracks[0].events:
        if isinstance(event, midi.DeltaTime):
            now += event.time
        elif event.type == midi.MetaEvents.SET_TEMPO:
            tempo = int.from_bytes(event.data, "big")
        elif event.type == midi.ChannelVoiceMessages.NOTE_ON and event.velocity > 0:
            events.append((now, "on", event.pitch))
        elif event.type in (midi.ChannelVoiceMessages.NOTE_OFF, midi.ChannelVoiceMessages.NOTE_ON):
            events.append((now, "off", event.pitch))
    return mf.ticksPerQuarterNote, tempo, events


@pytest.mark.parametrize("steps_per_quarter", [1, 2])
def test_midi_round_trip(tmp_path, steps_per_quarter):
    rng = np.random.default_rng(0)
    roll = (rng.random((16, 88)) < 0.05).astype(np.uint8)
    roll[3:9, 40] = 1
    path = pianoroll.write_midi(roll, tmp_path / "piece.mid", step_seconds=0.3, steps_per_quarter=steps_per_quarter)
    assert [p.name for p in tmp_path.iterdir()] == ["piece.mid"]  # no temporary file left behind
    division, tempo, events = read_midi_with_music21(path)
    ticks_per_step = division // steps_per_quarter
    assert tempo == round(0.3 * steps_per_quarter * 1e6)  # a step lasts 0.3 s
    rebuilt = np.zeros_like(roll)
    sounding = {}
    for tick, kind, pitch in events:
        assert tick % ticks_per_step == 0
        if kind == "on":
            sounding[pitch] = tick // ticks_per_step
        else:
            rebuilt[sounding.pop(pitch): tick // ticks_per_step, pitch - 21] = 1
    assert not sounding
    np.testing.assert_array_equal(rebuilt, roll)
    # note-ons where a note starts (after silence on that pitch), computed directly from the roll
    previous = np.vstack([np.zeros((1, 88), np.uint8), roll[:-1]])
    onsets = sorted((t * ticks_per_step, k + 21) for t, k in zip(*np.nonzero((roll == 1) & (previous == 0))))
    assert sorted((tick, pitch) for tick, kind, pitch in events if kind == "on") == onsets


def test_plot_pianoroll():
    import matplotlib.pyplot as plt

    ax = pianoroll.plot_pianoroll(example_roll(), title="example", frame="quarter note")
    assert ax.get_ylim() == (48 - 2 - 0.5, 69 + 2 + 0.5) and ax.get_title() == "example"
    assert "C4" in [label.get_text() for label in ax.get_yticklabels()]
    probabilities = np.random.default_rng(0).random((6, 88))
    fig, axis = plt.subplots()
    assert pianoroll.plot_pianoroll(probabilities, ax=axis, note_range=(40, 80)) is axis
    plt.close("all")


@pytest.mark.parametrize("call, message", [
    (lambda: pianoroll.synthesize(np.zeros((4, 87))), r"\(T, 88\)"),
    (lambda: pianoroll.synthesize(np.full((4, 88), 0.5)), "binary"),
    (lambda: pianoroll.synthesize(np.zeros((4, 88)), step_seconds=0), "step_seconds"),
    (lambda: pianoroll.write_midi(np.zeros((4, 88)), "x.mid", step_seconds=-1), "step_seconds"),
    (lambda: pianoroll.write_midi(np.zeros((4, 88)), "x.mid", steps_per_quarter=7), "divisor"),
    (lambda: pianoroll.write_midi(np.zeros((4, 88)), "x.mid", velocity=0), "velocity"),
    (lambda: pianoroll.plot_pianoroll(np.full((4, 88), 2.0)), r"\[0, 1\]"),
    (lambda: pianoroll.plot_pianoroll(np.zeros((4, 88)), note_range=(10, 50)), "note_range"),
])
def test_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()
