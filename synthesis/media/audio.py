"""Waveform helpers: join segments with pauses, and write 16-bit WAV safely."""

from pathlib import Path
from typing import BinaryIO

import numpy as np
from scipy.io import wavfile

SEGMENT_PAUSE_S = 0.25


def pause_after_s(index: int, segments: int, pauses_s: dict[int, float]) -> float:
    """Seconds of silence after segment `index` of `segments`: the pause `pauses_s` names for it (a control event's),
    else SEGMENT_PAUSE_S between segments and none after the last."""
    return pauses_s.get(index, 0.0 if index == segments - 1 else SEGMENT_PAUSE_S)


def join_segments(
    waveforms: list[np.ndarray], sample_rate: int, pauses_s: dict[int, float] | None = None
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Concatenate segments with a short silence between them.

    `pauses_s` maps a segment index to the silence after it (see `pause_after_s`). Returns the joined waveform
    and each segment's (start, end) in seconds, which caption timings come from.
    """
    pauses_s = pauses_s or {}
    parts: list[np.ndarray] = []
    spans: list[tuple[float, float]] = []
    cursor = 0
    for index, waveform in enumerate(waveforms):
        waveform = np.asarray(waveform, dtype=np.float32).reshape(-1)
        spans.append((cursor / sample_rate, (cursor + len(waveform)) / sample_rate))
        parts.append(waveform)
        cursor += len(waveform)
        pause = pause_after_s(index, len(waveforms), pauses_s)
        if pause > 0:
            silence = np.zeros(int(round(pause * sample_rate)), dtype=np.float32)
            parts.append(silence)
            cursor += len(silence)
    joined = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    return joined, spans


def to_pcm16(waveform: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] to int16; NaN and inf become silence or full scale, never garbage."""
    clean = np.nan_to_num(np.asarray(waveform, dtype=np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    return (np.clip(clean, -1.0, 1.0) * 32767).astype(np.int16)


def write_wav(target: str | Path | BinaryIO, sample_rate: int, waveform: np.ndarray) -> None:
    wavfile.write(target, sample_rate, to_pcm16(waveform))
