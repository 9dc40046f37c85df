"""GET /api/bark/jobs/{id}/stream and POST /v1/audio/speech with stream: audio before the job is done."""

import io
import struct

import numpy as np
import pytest
from django.core.management import call_command
from scipy.io import wavfile

from synthesis.api.openai import wait_for
from synthesis.jobs.pipeline import run_claimed_job
from synthesis.jobs.submit import JobRequest, cancel_job, submit_job
from synthesis.models import Job
from tests.api_helpers import error_of, keyed_client, run

LONG_TEXT = "This is the first part of a longer text. " * 4 + "And here the second part begins. " * 5


def stream_url(job: Job, fmt: str = "wav") -> str:
    return f"/api/bark/jobs/{job.id}/stream?format={fmt}"


def parse_stream_wav(data: bytes) -> tuple[int, np.ndarray]:
    """A streamed WAV has open-ended sizes; read its header and everything after the data chunk."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    rate = struct.unpack("<I", data[24:28])[0]
    assert data[36:40] == b"data" and struct.unpack("<I", data[40:44])[0] == 0xFFFFFFFF
    return rate, np.frombuffer(data[44:], dtype=np.int16)


def stored_wav(job: Job) -> tuple[int, np.ndarray]:
    with job.audio.storage.open(job.audio.name, "rb") as handle:
        return wavfile.read(io.BytesIO(handle.read()))


@pytest.mark.usefixtures("artifact_storage")  # segments are read through the storage, local or S3
def test_the_first_chunk_arrives_when_the_first_segment_is_done_not_the_whole_job(db):
    api, key = keyed_client()
    job = submit_job(JobRequest(prompt=LONG_TEXT, engine="piper", seed=1), api_key=key)
    chunks = iter(api.get(stream_url(job)).streaming_content)
    seen = []

    def after_segment(done: int, total: int) -> None:
        if done == 1:  # the worker has just recorded its first segment; the rest are not made yet
            seen.append((next(chunks), Job.objects.get(pk=job.pk).status, total))

    assert job.claim()
    run_claimed_job(job, on_progress=after_segment)

    first, status_then, total = seen[0]
    assert status_then == Job.Status.RUNNING and total == 2
    rate, samples = parse_stream_wav(first)
    assert rate == 22050 and len(samples) > rate  # a whole sentence of speech, plus its pause
    rest = b"".join(chunks)
    streamed = np.frombuffer(first[44:] + rest, dtype=np.int16)
    job.refresh_from_db()
    _, final = stored_wav(job)
    assert np.array_equal(streamed, final), "the stream is the final WAV, sample for sample"


@pytest.mark.usefixtures("artifact_storage")
def test_a_completed_job_streams_its_whole_audio_at_once(db):
    api, key = keyed_client()
    job = run(str(submit_job(JobRequest(prompt="Done already.", engine="piper"), api_key=key).id))

    response = api.get(stream_url(job))

    assert response.status_code == 200 and response["Content-Type"] == "audio/wav"
    assert response["X-Job-Id"] == str(job.id)
    rate, samples = parse_stream_wav(b"".join(response.streaming_content))
    assert rate == 22050 and np.array_equal(samples, stored_wav(job)[1])


def test_pcm_streams_are_resampled_to_24_khz_and_mp3_streams_are_mp3_frames(db):
    api, key = keyed_client()
    job = run(str(submit_job(JobRequest(prompt="Formats.", engine="piper"), api_key=key).id))

    pcm = b"".join(api.get(stream_url(job, "pcm")).streaming_content)
    mp3 = b"".join(api.get(stream_url(job, "mp3")).streaming_content)

    assert len(pcm) // 2 == pytest.approx(job.duration_s * 24000, abs=48)
    assert mp3[0] == 0xFF and mp3[1] & 0xE0 == 0xE0, "starts with an MPEG frame sync, no ID3 tag"


def test_a_stream_of_a_failed_job_ends_without_audio(db):
    api, key = keyed_client()
    job = Job.objects.create(
        prompt="Hi.", engine="piper", voice="v2/en_speaker_1", api_key=key, plan={"segments": ["Hi."]}
    )
    run(str(job.id))

    response = api.get(stream_url(job))

    assert response.status_code == 200 and b"".join(response.streaming_content) == b""
    assert Job.objects.get(pk=job.pk).status == Job.Status.FAILED


def run_first_segment_then(job: Job, action) -> bytes:
    """Run `job` as a worker does; after its first segment, read the stream's first chunk and `action()`.
    Returns that first chunk; the stream is left for the test to finish."""
    seen = []

    def after_segment(done: int, total: int) -> None:
        if done == 1:
            seen.append(next(job.test_chunks))
            action()

    assert job.claim()
    run_claimed_job(job, on_progress=after_segment)
    return seen[0]


@pytest.mark.parametrize("gone", ["cancelled", "deleted"])
def test_a_job_cancelled_or_deleted_mid_stream_ends_the_stream_cleanly_after_the_audio_sent(db, gone, isolated_storage):
    api, key = keyed_client()
    job = submit_job(JobRequest(prompt=LONG_TEXT, engine="piper", seed=1), api_key=key)
    job.test_chunks = iter(api.get(stream_url(job)).streaming_content)
    first = run_first_segment_then(job, lambda: cancel_job(Job.objects.get(pk=job.pk)))
    if gone == "deleted":  # an operator deletes the stopped job while its stream is still open
        Job.objects.filter(pk=job.pk).delete()
    rest = b"".join(job.test_chunks)  # no FileNotFoundError, no Job.DoesNotExist: the stream just ends

    rate, samples = parse_stream_wav(first + rest)
    assert rate == 22050 and len(samples) > rate and rest == b""
    assert not list((isolated_storage / "jobs" / str(job.id)).glob("segments/*"))
    assert list(Job.objects.filter(pk=job.pk).values_list("status", flat=True)) == (
        [Job.Status.CANCELLED] if gone == "cancelled" else []
    )


def test_the_stream_of_a_job_cancelled_after_its_first_segment_is_empty_not_a_hang_up(db):
    api, key = keyed_client()
    job = submit_job(JobRequest(prompt=LONG_TEXT, engine="piper", seed=1), api_key=key)
    job.test_chunks = iter([b""])
    run_first_segment_then(job, lambda: cancel_job(Job.objects.get(pk=job.pk)))
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED and job.segments_done >= 1  # counted, but its files are gone

    response = api.get(stream_url(job))

    assert response.status_code == 200 and b"".join(response.streaming_content) == b""


def test_a_completed_job_purged_before_its_stream_is_read_ends_it_cleanly_and_later_streams_get_409(db):
    api, key = keyed_client()
    job = run(str(submit_job(JobRequest(prompt="Purged soon.", engine="piper"), api_key=key).id))
    opened = api.get(stream_url(job))
    Job.objects.filter(pk=job.pk).update(submitted_at=job.submitted_at.replace(year=2000))
    call_command("purge_jobs", "--older-than", "1d", stdout=io.StringIO())

    assert opened.status_code == 200 and b"".join(opened.streaming_content) == b""
    assert not Job.objects.filter(pk=job.pk).exists()


def test_a_completed_job_whose_audio_is_gone_gets_409(db):
    api, key = keyed_client()
    job = run(str(submit_job(JobRequest(prompt="Files lost.", engine="piper"), api_key=key).id))
    job.audio.storage.delete(job.audio.name)

    response = api.get(stream_url(job))

    assert response.status_code == 409 and "no audio any more" in error_of(response)["message"]


@pytest.mark.parametrize(
    ("make_job", "fmt", "status", "code"),
    [
        ("own", "flac", 400, "invalid"),
        ("planned", "wav", 409, "conflict"),
        ("someone_elses", "wav", 404, "not_found"),
    ],
)
def test_bad_stream_requests_get_clear_errors(db, make_job, fmt, status, code):
    api, key = keyed_client()
    other = keyed_client("other")[1]
    owner = {"own": key, "planned": key, "someone_elses": other}[make_job]
    job = submit_job(JobRequest(prompt="Hi.", engine="piper", dry_run=make_job == "planned"), api_key=owner)

    response = api.get(stream_url(job, fmt))

    assert response.status_code == status and error_of(response)["code"] == code


def test_openai_speech_with_stream_true_sends_audio_while_the_job_runs(transactional_db):
    api, _ = keyed_client()

    response = api.post(
        "/v1/audio/speech",
        {"model": "piper", "input": LONG_TEXT, "voice": "alloy", "response_format": "wav", "stream": True},
        format="json",
    )

    assert response.status_code == 200 and response["Content-Type"] == "audio/wav"
    rate, samples = parse_stream_wav(b"".join(response.streaming_content))
    # The stream ends with the last segment; the worker's thread then joins and stores the whole file.
    job = wait_for(Job.objects.get(pk=response["X-Job-Id"]), timeout_s=60)
    assert job.status == Job.Status.COMPLETED and job.segments_total == 2
    assert np.array_equal(samples, wavfile.read(io.BytesIO(job.audio.read()))[1])


def test_openai_streaming_refuses_formats_and_speeds_it_cannot_stream(db):
    api, _ = keyed_client()

    response = api.post(
        "/v1/audio/speech",
        {"model": "piper", "input": "Hi.", "voice": "alloy", "response_format": "flac", "stream": True},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "response_format"
