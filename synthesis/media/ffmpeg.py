"""The one way barksite runs ffmpeg: the static binary imageio-ffmpeg ships (moviepy's dependency, so nothing to
install), in a subprocess with a time limit, and one error type whose message carries ffmpeg's own words, bounded."""

from __future__ import annotations

import re
import subprocess
from typing import IO

import imageio_ffmpeg

# ffmpeg's stderr can be megabytes; an error message keeps this much of it.
MAX_DETAIL_CHARS = 300
# "[vost#0:0 @ 0x55d...] " and the like: where in ffmpeg a message came from, noise to a reader.
_SOURCE_TAG = re.compile(r"^\[[^\]]*@ 0x[0-9a-f]+\] ")


class FfmpegFailed(Exception):
    """ffmpeg could not do what was asked; the message says what, and why in ffmpeg's words."""


class FfmpegTimedOut(FfmpegFailed):
    """ffmpeg ran past its time limit (and was killed)."""


def binary() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def command(*args: str) -> list[str]:
    """A full ffmpeg command line: the binary, no banner, never reading the terminal, then `args`."""
    return [binary(), "-hide_banner", "-nostdin", *args]


def run(
    args: list[str], *, what: str, timeout_s: float, input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run ffmpeg with `args` to `what` (words for the error: "write mp3"); its output is in the result."""
    try:
        result = subprocess.run(command(*args), input=input, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise FfmpegTimedOut(f"ffmpeg took more than {timeout_s:g} s to {what}.") from None
    if result.returncode != 0:
        raise failure(what, result.returncode, result.stderr)
    return result


def start(args: list[str]) -> tuple[subprocess.Popen[bytes], IO[bytes], IO[bytes]]:
    """ffmpeg running with `args`, with the pipe it reads (frames, samples) and the pipe of its messages; the caller
    drains the second and turns a non-zero exit into `failure(...)`."""
    process = subprocess.Popen(command(*args), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if process.stdin is None or process.stderr is None:  # cannot happen with PIPE; says so to the type checker
        raise FfmpegFailed("ffmpeg started without its pipes.")
    return process, process.stdin, process.stderr


def failure(what: str, code: int, stderr: bytes) -> FfmpegFailed:
    """The error for an ffmpeg that exited with `code`: its first two messages (the cause comes first), bounded."""
    lines = [_SOURCE_TAG.sub("", line).strip() for line in stderr.decode(errors="replace").splitlines()]
    detail = "; ".join([line for line in lines if line][:2])[:MAX_DETAIL_CHARS]
    return FfmpegFailed(f"ffmpeg could not {what}: {detail or f'exit status {code}'}")
