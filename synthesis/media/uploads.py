"""Audio files people upload (a voice's reference clip, a consent recording): which containers are taken, how they are
told apart, and decoding one safely.

The containers are OpenAI's list for its custom-voice endpoints (docs/openai-speech.md): MP3, WAV, Ogg, AAC (ADTS),
FLAC, WebM and MP4. An upload is hostile until decoded: ffmpeg runs in a subprocess with a time limit, reads only
plain files and only these demuxers (no playlists or references that fetch other files or URLs), and stops after
the length the caller needs.
"""

from __future__ import annotations

import re
import tempfile

import numpy as np

from synthesis.media import ffmpeg

MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # OpenAI's bound for a voice sample and a consent recording (10 MiB)
CONTAINERS = ("mp3", "wav", "ogg", "aac", "flac", "webm", "mp4")
FORMAT_NAMES = "MP3, WAV, Ogg, AAC, FLAC, WebM or MP4"
# ffmpeg's demuxers for them. A demuxer matches when any of its names is listed: "matroska,webm" and
# "mov,mp4,m4a,3gp,3g2,mj2" are taken by their first names.
DEMUXERS = "mp3,wav,ogg,aac,flac,matroska,mov"
DECODE_TIMEOUT_S = 30
_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")


class UnreadableAudio(ValueError):
    """The upload is not audio this service can read; the message says why, for the person who uploaded it."""


def container_of(data: bytes) -> str:
    """The container of an upload that decodes, from its first bytes (the extension it is stored under)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[4:8] == b"ftyp":
        return "mp4"
    magic = {b"fLaC": "flac", b"OggS": "ogg", b"\x1aE\xdf\xa3": "webm"}
    if data[:4] in magic:
        return magic[data[:4]]
    if len(data) > 1 and data[0] == 0xFF and data[1] & 0xF6 == 0xF0:  # an ADTS frame header (MPEG audio's layer 0)
        return "aac"
    return "mp3"  # MPEG audio has no fixed first bytes (an ID3 tag or a frame)


def decode(data: bytes, *, sample_rate: int, max_seconds: float) -> np.ndarray:
    """An upload as mono float32 at `sample_rate`, its first `max_seconds` at most; UnreadableAudio when it is empty,
    over MAX_UPLOAD_BYTES, not one of the containers, or cut short."""
    if not data:
        raise UnreadableAudio("The audio file is empty.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise UnreadableAudio(f"The audio file is {len(data)} bytes; an upload is at most {MAX_UPLOAD_BYTES} (10 MiB).")
    if _declares_more_than_it_holds(data):
        raise UnreadableAudio("The WAV file is truncated: it is shorter than its header says.")
    with tempfile.NamedTemporaryFile(suffix=".audio") as upload:
        upload.write(data)
        upload.flush()
        args = [
            *("-protocol_whitelist", "file", "-format_whitelist", DEMUXERS),
            *("-i", upload.name, "-vn", "-ac", "1", "-ar", str(sample_rate)),
            *("-t", str(max_seconds), "-f", "f32le", "pipe:1"),
        ]
        try:
            result = ffmpeg.run(args, what="decode the audio", timeout_s=DECODE_TIMEOUT_S)
        except ffmpeg.FfmpegTimedOut as exc:
            raise UnreadableAudio(
                f"Decoding the audio took longer than {DECODE_TIMEOUT_S} s; try a shorter file."
            ) from exc
        except ffmpeg.FfmpegFailed as exc:
            raise UnreadableAudio(f"This file could not be read as audio; upload an {FORMAT_NAMES} file.") from exc
    waveform = np.frombuffer(result.stdout, dtype=np.float32)
    seconds = len(waveform) / sample_rate
    declared = _DURATION.search(result.stderr.decode("utf-8", "replace"))
    if declared is not None:
        hours, minutes, secs = declared.groups()
        expected = int(hours) * 3600 + int(minutes) * 60 + float(secs)
        # Containers that state their length: decoding far less of it means the file was cut short.
        if expected <= max_seconds and seconds < expected - max(0.2, 0.03 * expected):
            raise UnreadableAudio(
                f"The audio file is truncated: it declares {expected:.2f} s but only {seconds:.2f} s could be decoded."
            )
    return np.clip(waveform, -1.0, 1.0)


def _declares_more_than_it_holds(data: bytes) -> bool:
    """A WAV whose RIFF header counts more bytes than the file has was cut short (ffmpeg reads it silently)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return False
    declared = int.from_bytes(data[4:8], "little")
    # Writers streaming to a pipe cannot know the size and leave 0 or 0xFFFFFFFF.
    return declared not in (0, 0xFFFFFFFF) and declared + 8 > len(data)
