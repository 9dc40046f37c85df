"""Decode audio bytes with the bundled ffmpeg, to check that an answer really is what it claims."""

import subprocess

import imageio_ffmpeg
import numpy as np

RATE = 24000


def decode(data: bytes, input_args: tuple[str, ...] = ()) -> np.ndarray:
    """The audio as int16 mono samples at 24 kHz; raises if ffmpeg cannot read it."""
    result = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", *input_args, "-i", "pipe:0",
         "-f", "s16le", "-ac", "1", "-ar", str(RATE), "pipe:1"],
        input=data, capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    return np.frombuffer(result.stdout, dtype=np.int16)


def duration_s(data: bytes, input_args: tuple[str, ...] = ()) -> float:
    return len(decode(data, input_args)) / RATE
