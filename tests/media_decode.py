"""Audio bytes made and decoded with the bundled ffmpeg: uploads in each container, and checks that an answer
really is what it claims."""

import subprocess
import tempfile
from pathlib import Path

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


def tone(container: str, seconds: float = 3.0, frequency: float = 330.0, volume: float = 0.5) -> bytes:
    """A sine tone as a file of `container` (its extension: wav, mp3, ogg, aac, flac, webm, mp4, aiff, ...)."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"tone.{container}"
        source = f"sine=frequency={frequency}:duration={seconds}:sample_rate={RATE}"
        subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", source,
             "-af", f"volume={volume * 8}", str(path)],
            check=True, timeout=60,
        )  # fmt: skip
        return path.read_bytes()
