"""The Bark runner (`manage.py engine_runner`, a real process on the tiny checkpoint) and the worker's side of it:
the same audio as in-process, a job stopped by its worker, a job put back in the queue when the runner dies, voices
built with the runner's models."""

import io
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from django_q.models import OrmQ

from synthesis.engines import EngineLost, SynthesisCancelled, SynthesisOptions, get_engine, reset_engines
from synthesis.engines.bark.engine import BarkEngine
from synthesis.engines.bark.runner import RemoteBarkEngine
from synthesis.jobs.pipeline import run_job
from synthesis.jobs.submit import JobRequest, submit_job
from synthesis.jobs.voices import create_voice_from_clip, prompt_arrays
from synthesis.media.audio import write_wav
from synthesis.models import Job, Voice
from synthesis.tasks import build_voice_task
from tests.fixtures_bark import GREEDY, start_runner

TEXTS = ["The first line.", "A second one.", "Then a third."]


@pytest.fixture(scope="module")
def runner(tiny_bark_dir: Path, tiny_hubert: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory):
    hubert = {"BARK_HUBERT_MODEL": str(tiny_hubert[0]), "BARK_HUBERT_QUANTIZER": str(tiny_hubert[1])}
    yield from start_runner(tiny_bark_dir, tmp_path_factory.mktemp("runner"), **hubert)


@pytest.fixture
def own_runner(tiny_bark_dir: Path, tmp_path: Path):
    """A runner for one test (that kills it)."""
    yield from start_runner(tiny_bark_dir, tmp_path)


def test_a_job_through_the_runner_gets_the_audio_the_engine_makes_in_process(runner, tiny_bark_dir):
    _, socket_path = runner
    local = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto")
    remote = RemoteBarkEngine(local, socket_path)
    heard: list[int] = []

    through_runner = remote.synthesize(
        TEXTS, SynthesisOptions(voice="v2/en_speaker_2", **GREEDY), lambda index, waveform: heard.append(index)
    )

    in_process = local.synthesize(TEXTS, SynthesisOptions(voice="v2/en_speaker_2", **GREEDY))
    assert heard == [0, 1, 2]
    assert all(np.array_equal(a, b) for a, b in zip(through_runner, in_process, strict=True))
    assert (remote.sample_rate, remote.device) == (24000, "cpu")


def test_a_job_its_worker_stops_gets_no_more_segments_and_the_runner_serves_the_next_job(runner, tiny_bark_dir):
    _, socket_path = runner
    remote = RemoteBarkEngine(BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto"), socket_path)
    heard: list[int] = []

    with pytest.raises(SynthesisCancelled):
        remote.synthesize(TEXTS, SynthesisOptions(**GREEDY), lambda index, waveform: heard.append(index) or False)

    assert heard == [0]
    assert len(remote.synthesize(TEXTS[:1], SynthesisOptions(**GREEDY))) == 1


def test_a_job_whose_runner_dies_mid_job_goes_back_to_the_queue_with_nothing_kept(db, settings, tiny_bark, own_runner):
    process, socket_path = own_runner
    settings.BARK_RUNNER_SOCKET = socket_path
    reset_engines()
    assert isinstance(get_engine("bark"), RemoteBarkEngine)
    job = submit_job(JobRequest(prompt=" ".join(TEXTS), engine="bark", voice="v2/en_speaker_1"))
    OrmQ.objects.all().delete()  # the submission's own task: this test runs the job itself

    try:
        run_job(str(job.id), on_progress=lambda done, total: os.kill(process.pid, signal.SIGKILL))
    finally:
        reset_engines()

    job.refresh_from_db()
    assert (job.status, job.attempts, job.segments_done, job.started_at) == (Job.Status.QUEUED, 1, 0, None)
    assert not (Path(settings.MEDIA_ROOT) / "jobs" / str(job.id)).exists()
    assert OrmQ.objects.count() == 1, "its task is back in the queue"


def test_a_runner_that_aborts_in_native_code_logs_every_threads_python_stack(own_runner, tmp_path):
    process, _ = own_runner

    os.kill(process.pid, signal.SIGABRT)  # what a C++ std::terminate or a failed assertion in a library raises

    assert process.wait(timeout=30) == -signal.SIGABRT
    log = (tmp_path / "runner.log").read_text()
    assert "Fatal Python error: Aborted" in log, log[-3000:]
    assert log.count("Thread 0x") >= 2, log[-3000:]  # the main thread and the one that keeps the runner's state
    assert "in accept_forever" in log and "in _keep_state" in log, log[-3000:]


def test_a_worker_that_cannot_reach_a_runner_says_so(tiny_bark_dir, tmp_path, settings):
    settings.BARK_RUNNER_WAIT_S = 1
    remote = RemoteBarkEngine(BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto"), str(tmp_path / "none"))

    with pytest.raises(EngineLost, match="did not accept jobs within 1 s"):
        remote.synthesize(TEXTS[:1], SynthesisOptions())


def test_voice_building_reads_the_clip_and_transcript_with_the_runners_model(runner, tiny_bark_dir):
    _, socket_path = runner
    local = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto")
    remote = RemoteBarkEngine(local, socket_path)
    clip = np.sin(np.arange(24_000, dtype=np.float32) / 20)

    assert np.array_equal(remote.encode_clip(clip), local.encode_clip(clip))
    assert np.array_equal(remote.semantic_tokens("Hello there.", 20), local.semantic_tokens("Hello there.", 20))


def test_a_voice_is_built_from_a_clips_audio_by_the_worker_task_with_the_runners_hubert(
    db, settings, hubert_cloning, runner
):
    _, socket_path = runner
    settings.BARK_RUNNER_SOCKET = socket_path
    reset_engines()
    clip = io.BytesIO()
    write_wav(clip, 24_000, 0.3 * np.sin(np.arange(3 * 24_000, dtype=np.float32) / 20))
    local = BarkEngine(model=settings.BARK_MODEL, device="cpu", mode="auto", hubert=tuple(map(str, hubert_cloning)))

    try:
        assert isinstance(get_engine("bark"), RemoteBarkEngine)
        voice = create_voice_from_clip("Tone", clip.getvalue(), None)
        build_voice_task(str(voice.id))
    finally:
        reset_engines()

    voice.refresh_from_db()
    assert (voice.status, voice.method, voice.error) == (Voice.Status.READY, Voice.Method.HUBERT, "")
    built, in_process = prompt_arrays(voice), local.clone_voice(clip.getvalue(), None)
    assert all(np.array_equal(built[key], in_process[key]) for key in in_process)
    assert len(built["semantic_prompt"]) == (3 * 16_000 - 400) // 320 + 1
