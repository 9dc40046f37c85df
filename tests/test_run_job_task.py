"""The django-q2 task `run_job_task`, called exactly as a worker calls it."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from synthesis.engines import get_engine
from synthesis.jobs.submit import JobRequest, cancel_job, submit_job
from synthesis.models import Job
from synthesis.tasks import run_job_task


def read_wav(job: Job) -> tuple[int, np.ndarray]:
    return wavfile.read(job.audio.path)


def test_a_queued_piper_job_runs_to_completed_with_a_valid_wav(piper_job):
    assert piper_job.status == Job.Status.QUEUED

    run_job_task(str(piper_job.id))

    job = Job.objects.get(pk=piper_job.pk)
    assert job.status == Job.Status.COMPLETED
    assert job.attempts == 1 and job.started_at and job.completed_at and job.error == ""
    assert (job.engine, job.model, job.device) == ("piper", "en_US-joe-medium", "cpu")
    assert job.audio.name == f"jobs/{job.id}/audio.wav"
    rate, samples = read_wav(job)
    assert rate == job.sample_rate == 22050
    assert samples.dtype == np.int16 and np.abs(samples).max() > 1000
    assert job.duration_s == pytest.approx(len(samples) / rate, abs=0.01)
    assert job.artifact_sizes["audio"] == Path(job.audio.path).stat().st_size
    assert job.segments_done == job.segments_total == 1
    metadata = json.loads(Path(job.metadata.path).read_text())
    assert metadata["engine"] == "piper" and metadata["segments"][0]["text"] == job.prompt


def test_a_queued_bark_job_runs_to_completed_with_a_24khz_wav(db, tiny_bark):
    job = submit_job(JobRequest(prompt="Hello from Bark.", engine="bark", voice="v2/en_speaker_6", seed=3))

    run_job_task(str(job.id))

    job.refresh_from_db()
    assert job.status == Job.Status.COMPLETED, job.error
    assert (job.engine, job.model, job.device) == ("bark", str(tiny_bark), "cpu")
    # BARK_DTYPE=auto, resolved for this machine's CPU (bfloat16 with bf16 units, float32 without).
    assert job.dtype == get_engine("bark").dtype and job.dtype in ("float32", "bfloat16")
    assert job.engine_settings == ""  # the defaults: the library's codes
    rate, samples = read_wav(job)
    assert rate == 24000 and len(samples) > 0


def test_a_bark_job_run_with_settings_that_change_its_codes_records_them_in_the_job_and_its_metadata(
    db, settings, tiny_bark
):
    settings.BARK_FINE_WINDOW, settings.BARK_COARSE_WINDOW = "real", 100
    job = submit_job(JobRequest(prompt="Hello from Bark.", engine="bark", voice="v2/en_speaker_6", seed=3))

    run_job_task(str(job.id))

    job.refresh_from_db()
    assert job.status == Job.Status.COMPLETED, job.error
    assert job.engine_settings == "BARK_FINE_WINDOW=real BARK_COARSE_WINDOW=100"
    assert json.loads(Path(job.metadata.path).read_text())["engine_settings"] == job.engine_settings


def test_the_same_task_delivered_twice_runs_the_job_once(piper_job):
    run_job_task(str(piper_job.id))
    first = Job.objects.get(pk=piper_job.pk)

    run_job_task(str(piper_job.id))

    second = Job.objects.get(pk=piper_job.pk)
    assert second.status == Job.Status.COMPLETED
    assert second.attempts == 1
    assert second.completed_at == first.completed_at


def test_of_two_workers_claiming_one_job_only_the_first_gets_it(piper_job):
    worker_a = Job.objects.get(pk=piper_job.pk)
    worker_b = Job.objects.get(pk=piper_job.pk)

    assert worker_a.transition(Job.Status.RUNNING) is True
    assert worker_b.transition(Job.Status.RUNNING) is False
    assert Job.objects.get(pk=piper_job.pk).attempts == 1


def test_an_engine_failure_ends_the_job_failed_with_a_readable_error_and_no_files(db, isolated_storage):
    # A real engine refusing real input: Piper has no Bark voices.
    job = Job.objects.create(prompt="Hello.", engine="piper", voice="v2/en_speaker_6", plan={"segments": ["Hello."]})

    run_job_task(str(job.id))

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error == "Piper has one voice, piper/en_US-joe-medium; 'v2/en_speaker_6' is not it."
    assert job.failed_at is not None and not job.audio and not job.metadata
    assert not (isolated_storage / "jobs" / str(job.id)).exists()


def test_a_bark_checkpoint_that_cannot_load_fails_the_job_and_says_why(db, settings, tmp_path, isolated_storage):
    broken = tmp_path / "broken-bark"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    settings.BARK_MODEL = str(broken)
    from synthesis.engines import reset_engines

    reset_engines()
    job = Job.objects.create(prompt="Hello.", engine="bark", voice="v2/en_speaker_6", plan={"segments": ["Hello."]})

    run_job_task(str(job.id))

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert str(broken) in job.error and "could not load Bark" in job.error
    assert not (isolated_storage / "jobs" / str(job.id)).exists()
    reset_engines()


def test_a_job_cancelled_before_its_worker_starts_is_not_run(piper_job):
    cancel_job(piper_job)

    run_job_task(str(piper_job.id))

    job = Job.objects.get(pk=piper_job.pk)
    assert job.status == Job.Status.CANCELLED and job.attempts == 0 and not job.audio


def test_a_task_for_a_job_that_no_longer_exists_does_nothing(db):
    run_job_task("00000000-0000-0000-0000-000000000000")

    assert Job.objects.count() == 0


def test_a_task_runs_a_waiting_job_of_higher_priority_first_and_every_job_still_runs_once(db):
    low = submit_job(JobRequest(prompt="Low.", engine="piper"))
    high = submit_job(JobRequest(prompt="High.", engine="piper", routing_priorities={"audio": 5}))

    run_job_task(str(low.id))  # the first task to arrive was sent for the low-priority job

    assert Job.objects.get(pk=high.pk).status == Job.Status.COMPLETED
    assert Job.objects.get(pk=low.pk).status == Job.Status.QUEUED
    run_job_task(str(high.id))  # the high job's own task now runs the low one
    assert Job.objects.get(pk=low.pk).status == Job.Status.COMPLETED
    assert [j.attempts for j in Job.objects.all()] == [1, 1]


def test_pause_events_lengthen_the_joined_audio_and_each_segment_is_stored_as_it_finishes(db):
    prompt = "First sentence here. " * 8 + "Second part of the text follows now. " * 5
    plain = submit_job(JobRequest(prompt=prompt, engine="piper", seed=2))
    paused = submit_job(
        JobRequest(prompt=prompt, engine="piper", seed=2, control_events=[{"type": "pause", "segment": 0, "ms": 2000}])
    )
    run_job_task(str(plain.id))
    run_job_task(str(paused.id))
    plain.refresh_from_db()
    paused.refresh_from_db()

    assert paused.segments_total == 2
    assert paused.duration_s == pytest.approx(plain.duration_s + 2.0 - 0.25, abs=0.01)
    for index in range(paused.segments_total):
        assert paused.audio.storage.exists(paused.segment_name(index))
