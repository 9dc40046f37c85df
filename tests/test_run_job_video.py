"""Jobs that render video: run by the worker task, `manage.py synthesize --video`, and generate_multimedia."""

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from synthesis import generate_multimedia
from synthesis.jobs import pipeline
from synthesis.jobs.submit import JobRequest, cancel_job, submit_job
from synthesis.models import Job
from synthesis.tasks import run_job_task
from tests.media_probe import probe
from tests.test_captions import parse_srt, parse_vtt

PROMPT = "Hello there. " + "This second sentence is long enough to be spoken as a segment of its own, " * 3 + "it is."


def video_job(**request) -> Job:
    """A queued job, as the API records it (the test's transaction never commits, so no task is sent)."""
    fields = {"prompt": PROMPT, "engine": "piper", "seed": 1, "render_video": True, "video": {"preset": "720p"}}
    return submit_job(JobRequest(**(fields | request)))


def job_files(job: Job) -> list[str]:
    directory = Path(job.audio.storage.location) / "jobs" / str(job.id)
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_a_video_job_completes_with_mp4_srt_vtt_timed_by_its_segments(db):
    job = video_job()

    run_job_task(str(job.id))

    job.refresh_from_db()
    assert job.status == Job.Status.COMPLETED, job.error
    assert job_files(job) == ["audio.json", "audio.mp4", "audio.srt", "audio.vtt", "audio.wav", "segments"]
    assert job.video.name == f"jobs/{job.id}/audio.mp4"
    assert set(job.artifact_sizes) == {"audio", "video", "captions_srt", "captions_vtt", "metadata"}
    assert job.timings["video_s"] > 0 and job.progress == 1.0

    facts = probe(Path(job.video.path))
    assert (facts.video_codec, facts.audio_codec) == ("h264", "aac")
    assert (facts.width, facts.height, facts.fps) == (1280, 720, 30)
    assert facts.duration_s == pytest.approx(job.duration_s, abs=0.1)

    segments = json.loads(Path(job.metadata.path).read_text())["segments"]
    assert len(segments) > 1
    for parse, field in ((parse_srt, job.captions_srt), (parse_vtt, job.captions_vtt)):
        cues = parse(Path(field.path).read_text())
        for segment in segments:
            # The cues inside a segment's span cover it exactly and read as its text.
            inside = [cue for cue in cues if segment["start_s"] - 0.001 <= cue[0] < segment["end_s"]]
            assert inside[0][0] == pytest.approx(segment["start_s"], abs=0.001)
            assert inside[-1][1] == pytest.approx(segment["end_s"], abs=0.001)
            assert " ".join(line for _, _, lines in inside for line in lines) == segment["text"]


def test_caption_text_replaces_the_spoken_words_in_the_captions(db):
    job = video_job(caption_text="Hi!", video={"preset": "720p", "resolution": "320x180"})

    run_job_task(str(job.id))

    job.refresh_from_db()
    cues = parse_srt(Path(job.captions_srt.path).read_text())
    assert [line for _, _, lines in cues for line in lines] == ["Hi!"]


def test_captions_as_a_modality_write_srt_and_vtt_without_a_video(db):
    job = submit_job(JobRequest(prompt="Just captions.", engine="piper", modalities=["audio", "captions"]))

    run_job_task(str(job.id))

    job.refresh_from_db()
    assert job.status == Job.Status.COMPLETED
    assert job.captions_srt and job.captions_vtt and not job.video
    assert parse_vtt(Path(job.captions_vtt.path).read_text())[0][2] == ["Just captions."]


def test_a_failed_render_fails_the_job_with_a_readable_error_but_keeps_the_audio(db):
    job = video_job()
    job.params["video"] = {"video_codec": "libx265"}  # forced past the API: checked again, fails only the video
    job.save()

    run_job_task(str(job.id))

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error.startswith("The video could not be rendered: video_codec: Unsupported codec 'libx265'")
    assert job.error.endswith("The audio was kept.")
    assert job.audio and Path(job.audio.path).stat().st_size == job.artifact_sizes["audio"]
    assert job.sample_rate == 22050 and job.duration_s > 1
    assert not job.video
    assert job_files(job) == ["audio.srt", "audio.vtt", "audio.wav"], "no mp4 and no temporary file"


def test_cancelling_a_job_while_it_renders_stops_the_render_and_leaves_no_files(db, monkeypatch):
    job = video_job()
    render = pipeline.render_video

    def cancel_then_render(*args, **kwargs):
        cancel_job(Job.objects.get(pk=job.pk))  # a user presses cancel as the render starts
        render(*args, **kwargs)

    monkeypatch.setattr(pipeline, "render_video", cancel_then_render)
    monkeypatch.setattr("synthesis.media.video.CHECK_EVERY_S", 0.0)

    run_job_task(str(job.id))

    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert job_files(job) == []


def test_synthesize_video_writes_an_mp4_at_the_1080p_default(db, tmp_path, capsys):
    (tmp_path / "cli").mkdir()
    out = tmp_path / "cli" / "hello.mp4"

    call_command("synthesize", "Hello there.", "--engine", "piper", "--video", str(out))

    facts = probe(out)
    assert (facts.video_codec, facts.width, facts.height) == ("h264", 1920, 1080)
    assert facts.duration_s == pytest.approx(Job.objects.get().duration_s, abs=0.1)
    assert f"Wrote {out}" in capsys.readouterr().out
    assert [p.name for p in out.parent.iterdir()] == ["hello.mp4"]


def test_synthesize_refuses_a_video_path_it_could_not_write(db, tmp_path):
    with pytest.raises(CommandError, match="--video .* must end in .mp4"):
        call_command("synthesize", "Hi.", "--engine", "piper", "--video", str(tmp_path / "x.mov"))
    with pytest.raises(CommandError, match="the directory .* does not exist"):
        call_command("synthesize", "Hi.", "--engine", "piper", "--video", str(tmp_path / "no" / "x.mp4"))
    assert not Job.objects.exists()


def test_generate_multimedia_writes_every_artifact_into_a_directory(db, tmp_path):
    paths = generate_multimedia("Hello there.", tmp_path / "out", engine="piper", video={"preset": "720p"})

    assert set(paths) == {"audio", "video", "srt", "vtt", "metadata"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths.values())
    metadata = json.loads(paths["metadata"].read_text())
    assert probe(paths["video"]).duration_s == pytest.approx(metadata["duration_s"], abs=0.1)
    assert parse_srt(paths["srt"].read_text())[0][2] == ["Hello there."]
