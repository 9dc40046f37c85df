"""Inspect MP4s with imageio-ffmpeg's ffmpeg (it ships no ffprobe): `ffmpeg -i` for the stream facts, full
decodes for frame counts and stream lengths, and single frames as RGB arrays."""

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import numpy as np

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


@dataclass
class Probe:
    video_codec: str
    audio_codec: str
    width: int
    height: int
    fps: float
    sample_rate: int
    duration_s: float  # the container's
    frames: int  # decoded video frames
    audio_s: float  # decoded audio length


def probe(path: Path) -> Probe:
    info = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    video = re.search(r"Video: (\w+).*?, (\d+)x(\d+)[, ].*?([\d.]+) fps", info)
    audio = re.search(r"Audio: (\w+).*?, (\d+) Hz", info)
    duration = re.search(r"Duration: (\d+):(\d+):([\d.]+)", info)
    assert video and audio and duration, info
    return Probe(
        video_codec=video[1],
        audio_codec=audio[1],
        width=int(video[2]),
        height=int(video[3]),
        fps=float(video[4]),
        sample_rate=int(audio[2]),
        duration_s=_seconds(duration),
        frames=int(re.findall(r"frame=\s*(\d+)", _decode(path, "0:v"))[-1]),
        audio_s=_seconds(re.findall(r"time=(\d+):(\d+):([\d.]+)", _decode(path, "0:a"))[-1]),
    )


def frame_at(path: Path, seconds: float, width: int, height: int) -> np.ndarray:
    """The decoded frame at `seconds` as an RGB array."""
    raw = subprocess.run(
        [FFMPEG, "-v", "error", "-ss", f"{seconds:.3f}", "-i", str(path), "-frames:v", "1"]
        + ["-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)


def _decode(path: Path, stream: str) -> str:
    """A full decode of one stream; fails the test on any decoding error."""
    result = subprocess.run(
        [FFMPEG, "-hide_banner", "-v", "error", "-stats", "-i", str(path), "-map", stream, "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    errors = [line for line in result.stderr.replace("\r", "\n").splitlines() if line and "=" not in line]
    assert not errors, errors
    return result.stderr


def _seconds(match) -> float:
    hours, minutes, seconds = match if isinstance(match, tuple) else match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
