"""WAV to the formats OpenAI's speech endpoint returns, through `synthesis.media.ffmpeg`."""

from __future__ import annotations

import tempfile
from pathlib import Path

from synthesis.media import ffmpeg

PCM_SAMPLE_RATE = 24_000  # OpenAI's `pcm` is raw 16-bit mono at 24 kHz
# response_format -> (content type, ffmpeg output arguments).
FORMATS: dict[str, tuple[str, list[str]]] = {
    "mp3": ("audio/mpeg", ["-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3"]),
    "opus": ("audio/ogg", ["-c:a", "libopus", "-b:a", "64k", "-ar", "48000", "-f", "ogg"]),
    "aac": ("audio/aac", ["-c:a", "aac", "-b:a", "128k", "-f", "adts"]),
    "flac": ("audio/flac", ["-c:a", "flac", "-f", "flac"]),
    "wav": ("audio/wav", ["-c:a", "pcm_s16le", "-f", "wav"]),
    "pcm": ("audio/pcm", ["-c:a", "pcm_s16le", "-ar", str(PCM_SAMPLE_RATE), "-f", "s16le"]),
}
TIMEOUT_S = 300


def atempo_chain(speed: float) -> str:
    """ffmpeg's atempo takes 0.5..2.0 per stage, so 0.25 is two halvings and 4.0 two doublings."""
    factors = []
    while speed > 2.0:
        factors.append(2.0)
        speed /= 2.0
    while speed < 0.5:
        factors.append(0.5)
        speed /= 0.5
    factors.append(speed)
    return ",".join(f"atempo={factor:.6g}" for factor in factors)


def transcode(wav: bytes, response_format: str, speed: float = 1.0) -> bytes:
    """`wav` (16-bit mono) as `response_format` bytes, played `speed` times as fast without a pitch change."""
    if response_format == "wav" and speed == 1.0:
        return wav
    _, output_args = FORMATS[response_format]
    tempo = ["-filter:a", atempo_chain(speed)] if speed != 1.0 else []
    # Written to a file, not a pipe: mp3 and flac muxers seek back to fill in their headers (duration,
    # sample count), which a pipe cannot do.
    with tempfile.TemporaryDirectory(prefix="barksite-transcode-") as scratch:
        out = Path(scratch) / f"speech.{response_format}"
        args = [
            "-loglevel", "error", "-f", "wav", "-i", "pipe:0", "-vn", "-ac", "1", *tempo, *output_args, "-y", str(out),
        ]  # fmt: skip
        ffmpeg.run(args, what=f"write {response_format}", timeout_s=TIMEOUT_S, input=wav)  # raises FfmpegFailed
        if not out.exists():
            raise ffmpeg.FfmpegFailed(f"ffmpeg could not write {response_format}: no output")
        return out.read_bytes()
