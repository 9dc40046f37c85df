"""Audio that starts playing before the job is done: follow a job's row and send each finished segment.

The worker stores every segment as it finishes (`Job.segment_name`) and then records `segments_done`;
a stream reads the row, sends the segments it has not sent yet, with the same silences the final WAV
gets, and ends when the job does. A job that is already complete is sent from its final audio.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from fractions import Fraction

import numpy as np
from django.conf import settings
from django.http import StreamingHttpResponse
from scipy.io import wavfile

from synthesis.media import ffmpeg
from synthesis.media.audio import pause_after_s, to_pcm16
from synthesis.media.transcode import PCM_SAMPLE_RATE
from synthesis.models import Job

STREAM_FORMATS = {"wav": "audio/wav", "pcm": "audio/pcm", "mp3": "audio/mpeg"}
POLL_S = 0.2


def streaming_response(job: Job, fmt: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        stream_job_audio(str(job.id), fmt, settings.BARK_JOB_TIMEOUT), content_type=STREAM_FORMATS[fmt]
    )
    response["X-Job-Id"] = str(job.id)
    response["Cache-Control"] = "no-store"
    return response


def stream_job_audio(job_id: str, fmt: str, timeout_s: float) -> Iterator[bytes]:
    """Bytes of job `job_id`'s audio in `fmt` (wav, pcm or mp3), each chunk as soon as it exists."""
    encoder = Encoder(fmt)
    for samples, rate in follow(job_id, timeout_s):
        chunk = encoder.encode(samples, rate)
        if chunk:
            yield chunk


def follow(job_id: str, timeout_s: float) -> Iterator[tuple[np.ndarray, int]]:
    """(int16 samples, sample rate) per finished segment, its pause included, until the job ends.

    Once the response has started its status is sent, so whatever happens to the job meanwhile ends the
    stream cleanly with the audio sent so far: cancelled or failed (the worker deletes its segment files),
    deleted or purged (the row and files go)."""
    deadline = time.monotonic() + timeout_s
    sent = 0
    while True:
        job = Job.objects.filter(pk=job_id).first()
        if job is None:
            return
        if job.status == Job.Status.COMPLETED and sent == 0:
            whole = _read_wav(job, job.audio.name or "")
            if whole is not None:
                yield whole
            return
        pauses_s = {index: ms / 1000 for index, ms in job.get_plan().pauses_ms.items()}
        while sent < job.segments_done:
            segment = _read_wav(job, job.segment_name(sent))
            if segment is None:
                return
            samples, rate = segment
            silence = np.zeros(int(round(pause_after_s(sent, job.segments_total, pauses_s) * rate)), dtype=np.int16)
            yield np.concatenate([samples, silence]), rate
            sent += 1
        if job.status == Job.Status.COMPLETED or (job.segments_total and sent >= job.segments_total):
            return
        # A failed or cancelled job ends the stream early; its row says why.
        if job.status not in Job.ACTIVE or time.monotonic() > deadline:
            return
        time.sleep(POLL_S)


def _read_wav(job: Job, name: str) -> tuple[np.ndarray, int] | None:
    """The WAV `name`, or None when it is gone (its job was cancelled, failed, deleted or purged)."""
    try:
        with job.audio.storage.open(name, "rb") as handle:
            rate, samples = wavfile.read(handle)
    except FileNotFoundError:
        return None
    return samples, rate


class Encoder:
    """Turns int16 chunks into one continuous stream of `fmt`."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.started = False

    def encode(self, samples: np.ndarray, rate: int) -> bytes:
        samples = np.asarray(samples, dtype=np.int16).reshape(-1)
        if self.fmt == "pcm":
            return _resample(samples, rate, PCM_SAMPLE_RATE).tobytes()
        if self.fmt == "wav":
            header = b"" if self.started else _streaming_wav_header(rate)
            self.started = True
            return header + samples.tobytes()
        return _mp3(samples, rate)


def _streaming_wav_header(rate: int) -> bytes:
    """A WAV header for a stream of unknown length: the sizes say 'as much as follows' (0xFFFFFFFF), which
    browsers, ffmpeg and most players read as "until the end"."""
    unknown = 0xFFFFFFFF
    fmt_chunk = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, rate, rate * 2, 2, 16)
    return struct.pack("<4sI4s", b"RIFF", unknown, b"WAVE") + fmt_chunk + struct.pack("<4sI", b"data", unknown)


def _resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return samples
    ratio = Fraction(target, rate)
    # Imported here: scipy.signal takes seconds to import, and this module is on every URL check's path
    # (so every manage.py command would pay for it).
    from scipy.signal import resample_poly

    floats = resample_poly(samples.astype(np.float32) / 32767, ratio.numerator, ratio.denominator)
    return to_pcm16(floats)


def _mp3(samples: np.ndarray, rate: int) -> bytes:
    """One chunk as bare MP3 frames (no ID3 tag, no Xing header), so chunks concatenate into one stream."""
    args = [
        "-loglevel", "error", "-f", "s16le", "-ar", str(rate), "-ac", "1", "-i", "pipe:0",
        "-c:a", "libmp3lame", "-b:a", "128k", "-id3v2_version", "0", "-write_xing", "0", "-f", "mp3", "pipe:1",
    ]  # fmt: skip
    # Mid-stream there is no status code left to send: a failure ends the stream here.
    return ffmpeg.run(args, what="encode mp3", timeout_s=120, input=samples.tobytes()).stdout
