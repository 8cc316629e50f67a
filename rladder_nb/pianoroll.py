"""Piano rolls to look at, listen to and export: plots, additive synthesis, Standard MIDI files.

Introduced in the chapter *Polyphonic music* (Part II).

* A roll is ``(T, 88)``: row ``t`` is a time step, column ``k`` is MIDI note ``21 + k``. Plots also accept
  probabilities in [0, 1] (a model's predictions).
* A roll cannot tell a held note from a repeated one; sound and MIDI treat consecutive active steps of a
  note as one held note (:func:`note_spans`).
* :func:`synthesize` is plain numpy: organ-like additive tones with short attack and release ramps.
  :func:`audio_widget` wraps the waveform in ``IPython.display.Audio``, which embeds the WAV data in the
  page, so it plays in the rendered book with no kernel and no network.
* :func:`write_midi` writes a format-0 Standard MIDI file with ``struct`` (no extra dependency),
  atomically.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from .fileio import atomic_write_bytes

LOWEST_NOTE, N_NOTES = 21, 88
_NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
MIDI_DIVISION = 480  # ticks per quarter note in the files we write


def check_roll(roll, allow_probabilities: bool = False) -> np.ndarray:
    """Return ``roll`` as a numpy array ``(T, 88)`` after checking it; binary unless ``allow_probabilities``."""
    if hasattr(roll, "detach"):
        roll = roll.detach().cpu().numpy()
    roll = np.asarray(roll)
    if roll.ndim != 2 or roll.shape[1] != N_NOTES:
        raise ValueError(f"expected a piano roll of shape (T, {N_NOTES}) (column = MIDI note - 21), got {roll.shape}")
    if roll.dtype == object or not np.all(np.isfinite(roll.astype(np.float64))):
        raise ValueError("the piano roll must hold finite numbers")
    if allow_probabilities:
        if roll.size and (roll.min() < 0 or roll.max() > 1):
            raise ValueError("expected values in [0, 1] (a binary roll or note probabilities)")
    elif not np.all((roll == 0) | (roll == 1)):
        raise ValueError("expected a binary piano roll (0/1 or bool); threshold or sample probabilities first")
    return roll


def note_name(midi: int) -> str:
    """Scientific pitch name of a MIDI note number: 60 -> 'C4', 21 -> 'A0'."""
    return f"{_NOTE_NAMES[int(midi) % 12]}{int(midi) // 12 - 1}"


def note_spans(roll) -> list:
    """Held notes of a binary roll: ``[(start_step, end_step_exclusive, midi), ...]`` sorted by start, pitch.

    Introduced in *Polyphonic music* (Part II).
    """
    roll = check_roll(roll).astype(np.int8)
    edges = np.diff(np.pad(roll, ((1, 1), (0, 0))), axis=0)  # (T + 1, 88): +1 onset, -1 offset
    on_note, on_step = np.nonzero(edges.T == 1)  # sorted by note, then time: onsets and offsets pair up
    _, off_step = np.nonzero(edges.T == -1)
    spans = [(int(s), int(e), int(k) + LOWEST_NOTE) for s, e, k in zip(on_step, off_step, on_note)]
    return sorted(spans, key=lambda span: (span[0], span[2]))


def plot_pianoroll(roll, ax=None, title: str | None = None, frame: str = "step", note_range=None,
                   cmap: str = "Greys"):
    """Draw a piano roll (or note probabilities) as an image: time to the right, pitch upwards.

    Parameters
    ----------
    roll : array (T, 88)
        Binary roll or probabilities in [0, 1].
    ax : matplotlib Axes, optional
        Drawn into; a new figure when None.
    title : str, optional
    frame : str
        What a step is (e.g. ``'quarter note'``), for the axis label.
    note_range : (low, high) MIDI notes, optional
        Pitches shown; default the sounding range padded by two semitones (all 88 keys for an empty roll).
    cmap : str

    Returns
    -------
    The matplotlib Axes.

    Introduced in *Polyphonic music* (Part II).
    """
    import matplotlib.pyplot as plt

    roll = check_roll(roll, allow_probabilities=True).astype(np.float64)
    if note_range is None:
        active = np.flatnonzero(roll.max(axis=0, initial=0) > 0)
        low, high = ((active[0] - 2, active[-1] + 2) if active.size else (0, N_NOTES - 1))
        low, high = max(low, 0) + LOWEST_NOTE, min(high, N_NOTES - 1) + LOWEST_NOTE
    else:
        low, high = (int(n) for n in note_range)
        if not LOWEST_NOTE <= low <= high <= LOWEST_NOTE + N_NOTES - 1:
            raise ValueError(f"note_range must be (low, high) MIDI notes within 21..108, got {note_range!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3))
    rows = roll[:, low - LOWEST_NOTE: high - LOWEST_NOTE + 1].T  # (pitches, T)
    ax.imshow(rows, origin="lower", aspect="auto", cmap=cmap, vmin=0, vmax=1, interpolation="nearest",
              extent=(-0.5, len(roll) - 0.5, low - 0.5, high + 0.5))
    ticks = [m for m in range(low, high + 1) if m % 12 == 0] or [low, high]  # the C of each octave
    ax.set_yticks(ticks)
    ax.set_yticklabels([note_name(m) for m in ticks])
    ax.set_xlabel(f"time ({frame}s)" if frame != "step" else "time step")
    ax.set_ylabel("pitch")
    if title:
        ax.set_title(title)
    return ax


def synthesize(roll, step_seconds: float = 0.25, sample_rate: int = 22050, harmonics=(1.0, 0.5, 0.25, 0.125),
               attack_seconds: float = 0.01, release_seconds: float = 0.04, peak: float = 0.8):
    """Render a binary roll as audio: one additive (organ-like) tone per held note.

    Each held note sums sines at ``f, 2f, 3f, ...`` weighted by ``harmonics`` (those above the Nyquist
    frequency are dropped), shaped by linear attack and release ramps that fit inside the note, so the
    waveform has exactly ``round(T * step_seconds * sample_rate)`` samples. The mix is scaled to ``peak``;
    an empty roll gives silence.

    Parameters
    ----------
    roll : array (T, 88) of 0/1
    step_seconds : float
        Duration of a step (e.g. 0.5 s for quarter notes at 120 beats per minute).
    sample_rate : int
    harmonics : sequence of float
        Amplitudes of the partials.
    attack_seconds, release_seconds : float
    peak : float
        Largest absolute sample value, in (0, 1].

    Returns
    -------
    (waveform float32 array (n_samples,), sample_rate)

    Introduced in *Polyphonic music* (Part II).
    """
    roll = check_roll(roll)
    if not step_seconds > 0 or not isinstance(sample_rate, (int, np.integer)) or sample_rate < 1000:
        raise ValueError(f"need step_seconds > 0 and an integer sample_rate >= 1000; got {step_seconds}, {sample_rate}")
    if not 0 < peak <= 1 or attack_seconds < 0 or release_seconds < 0 or len(harmonics) == 0:
        raise ValueError("need 0 < peak <= 1, non-negative attack/release and at least one harmonic")
    boundary = lambda step: int(round(step * step_seconds * sample_rate))  # noqa: E731 (sample of a step)
    wave = np.zeros(boundary(len(roll)), dtype=np.float64)  # (n_samples,)
    for start, end, midi in note_spans(roll):
        i0, i1 = boundary(start), boundary(end)
        t = np.arange(i1 - i0) / sample_rate  # seconds since the onset
        freq = 440.0 * 2.0 ** ((midi - 69) / 12)
        tone = sum(a * np.sin(2 * np.pi * freq * (h + 1) * t)
                   for h, a in enumerate(harmonics) if freq * (h + 1) < sample_rate / 2)
        duration = (i1 - i0) / sample_rate
        ramp_in = np.minimum(1.0, t / attack_seconds) if attack_seconds > 0 else 1.0
        ramp_out = np.minimum(1.0, (duration - t) / release_seconds) if release_seconds > 0 else 1.0
        wave[i0:i1] += tone * np.clip(np.minimum(ramp_in, ramp_out), 0.0, 1.0)
    loudest = np.abs(wave).max(initial=0.0)
    if loudest > 0:
        wave *= peak / loudest
    return wave.astype(np.float32), int(sample_rate)


def audio_widget(roll, step_seconds: float = 0.25, sample_rate: int = 22050, **synth_options):
    """An ``IPython.display.Audio`` player of :func:`synthesize`'s waveform (embedded, plays offline).

    Introduced in *Polyphonic music* (Part II).
    """
    from IPython.display import Audio

    wave, rate = synthesize(roll, step_seconds=step_seconds, sample_rate=sample_rate, **synth_options)
    return Audio(data=wave, rate=rate, normalize=False)


def _variable_length(value: int) -> bytes:
    """MIDI variable-length quantity: 7 bits per byte, high bit set on all but the last."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


def write_midi(roll, path, step_seconds: float = 0.25, steps_per_quarter: int = 1, velocity: int = 80,
               program: int = 0) -> Path:
    """Write a binary roll as a format-0 Standard MIDI file (channel 1), atomically.

    The tempo is set so that a step lasts ``step_seconds``; ``steps_per_quarter`` only changes how the
    steps are notated (1 for JSB's quarter-note frames, 2 for the eighth-note benchmarks). Consecutive
    active steps of a note become one held note.

    Parameters
    ----------
    roll : array (T, 88) of 0/1
    path : str or Path
    step_seconds : float
    steps_per_quarter : int
        Must divide 480 (the file's ticks per quarter note).
    velocity : int
        Note-on velocity, 1..127.
    program : int
        General MIDI program, 0..127 (0: acoustic grand piano, 19: church organ).

    Returns
    -------
    The path written.

    Introduced in *Polyphonic music* (Part II).
    """
    roll = check_roll(roll)
    if not isinstance(steps_per_quarter, (int, np.integer)) or steps_per_quarter < 1 \
            or MIDI_DIVISION % steps_per_quarter:
        raise ValueError(f"steps_per_quarter must be a positive divisor of {MIDI_DIVISION}, got {steps_per_quarter!r}")
    tempo = int(round(step_seconds * steps_per_quarter * 1e6)) if step_seconds > 0 else 0  # microseconds per quarter
    if not 1 <= tempo < 2 ** 24:
        raise ValueError(f"step_seconds must be positive and give under 16.7 s per quarter note, got {step_seconds!r}")
    if not 1 <= velocity <= 127 or not 0 <= program <= 127:
        raise ValueError(f"need velocity in 1..127 and program in 0..127, got {velocity}, {program}")
    ticks_per_step = MIDI_DIVISION // int(steps_per_quarter)
    events = []  # (tick, note-offs before note-ons, message bytes)
    for start, end, midi in note_spans(roll):
        events.append((start * ticks_per_step, 1, bytes([0x90, midi, int(velocity)])))
        events.append((end * ticks_per_step, 0, bytes([0x80, midi, 64])))
    events.sort(key=lambda e: (e[0], e[1], e[2][1]))
    track = bytearray(b"\x00\xff\x51\x03" + tempo.to_bytes(3, "big"))  # set tempo
    track += bytes([0x00, 0xC0, int(program)])  # program change
    now = 0
    for tick, _, message in events:
        track += _variable_length(tick - now) + message
        now = tick
    track += _variable_length(len(roll) * ticks_per_step - now) + b"\xff\x2f\x00"  # end of track
    payload = b"MThd" + struct.pack(">IHHH", 6, 0, 1, MIDI_DIVISION) + b"MTrk" + struct.pack(">I", len(track)) + track
    path = Path(path)
    atomic_write_bytes(path, payload)
    return path
