"""Bark's own faults reach the job layer with their kind, in-process and through the Bark runner: a device error
raised inside the scheduler's coarse stage and a corrupted checkpoint tensor fail their jobs as engine faults and open
Bark's circuit breaker; an out-of-memory inside the fine stage is retried as transient and the job completes; an
unusable voice fails its job at once and counts for nothing. The faults are raised inside the model's own forward
passes (BARK_FAULT_INJECTION) or by the checkpoint itself, and go every way a real fault goes: the scheduler, the
engine, the runner's socket, the job's retries, the breaker."""

import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from synthesis.engines import get_engine, reset_engines
from synthesis.engines.bark.runner import RemoteBarkEngine
from synthesis.jobs import breaker
from synthesis.jobs.submit import JobRequest, submit_job
from synthesis.models import Job
from synthesis.tasks import run_job_task
from tests.fixtures_bark import start_runner

DEVICE_FAULT = "bark:coarse:device"
ONE_OUT_OF_MEMORY = "bark:fine:oom:1"


@pytest.fixture
def faults(settings, tiny_bark):
    """Two engine faults in a row open a breaker; retries do not wait; engines are built afresh for each test."""
    settings.BARK_BREAKER_THRESHOLD = 2
    settings.BARK_RETRY_BASE_MS = 1
    settings.BARK_DTYPE = "float32"
    yield settings
    settings.BARK_FAULT_INJECTION = ""
    settings.BARK_RUNNER_SOCKET = ""
    reset_engines()


def use(settings, *, injection: str = "", socket: str = "") -> None:
    """Build the engines as a worker starting now would: with BARK_FAULT_INJECTION, or speaking to a runner."""
    settings.BARK_FAULT_INJECTION = injection
    settings.BARK_RUNNER_SOCKET = socket
    reset_engines()


def run_bark_jobs(*prompts: str) -> list[Job]:
    """Submit Bark jobs (all before any runs: a failed load makes later submissions refused at once), then run each
    through the worker's own entry point (choose, admit, claim, run)."""
    jobs = [submit_job(JobRequest(prompt=prompt, engine="bark", voice="v2/en_speaker_1")) for prompt in prompts]
    for job in jobs:
        run_job_task(str(job.id))
        job.refresh_from_db()
    return jobs


def bad_voice_job() -> Job:
    """A queued Bark job whose voice the engine itself refuses (a preset this checkpoint lacks)."""
    job = Job.objects.create(prompt="Hello.", engine="bark", voice="v2/en_speaker_99", status=Job.Status.QUEUED)
    run_job_task(str(job.id))
    job.refresh_from_db()
    return job


def assert_engine_faults_open_the_breaker(first: Job, second: Job, message: str) -> None:
    for job in (first, second):
        assert (job.status, job.attempts) == (Job.Status.FAILED, 1), "an engine fault is not retried"
        assert message in job.error
    state = breaker.get("bark")
    assert (state.state, state.failures) == ("open", 2)
    assert message in state.last_error


def assert_out_of_memory_was_retried(job: Job, caplog) -> None:
    assert (job.status, job.attempts) == (Job.Status.COMPLETED, 1), job.error
    assert job.audio.name and job.duration_s > 0
    assert sum("transient fault, retry 1" in message for message in caplog.messages) == 1
    assert "Bark ran out of cpu memory" in caplog.text
    assert breaker.get("bark").failures == 0, "cured by the retry: not counted against the engine"


def assert_refused_input_is_permanent(job: Job, caplog) -> None:
    assert (job.status, job.attempts) == (Job.Status.FAILED, 1)
    assert "Unknown Bark voice preset 'v2/en_speaker_99'" in job.error
    assert not any("transient fault" in message for message in caplog.messages)
    assert breaker.get("bark").failures == 0, "the input's fault, not the engine's"


# --- in the worker's own process ----------------------------------------------------------------------------------


def test_a_device_error_inside_the_scheduler_fails_jobs_as_engine_faults_and_opens_the_breaker(db, faults):
    use(faults, injection=DEVICE_FAULT)

    first, second = run_bark_jobs("One.", "Two.")

    assert_engine_faults_open_the_breaker(first, second, "Bark generation failed: InjectedFault: CUDA error")


def test_an_out_of_memory_inside_the_fine_stage_is_retried_as_transient_and_the_job_completes(
    transactional_db, faults, caplog
):
    use(faults, injection=ONE_OUT_OF_MEMORY)

    with caplog.at_level(logging.WARNING, logger="synthesis.jobs.breaker"):
        (job,) = run_bark_jobs("Hello there.")

    assert_out_of_memory_was_retried(job, caplog)


def test_a_voice_the_engine_refuses_fails_its_job_at_once_and_is_not_counted(db, faults, caplog):
    use(faults)

    with caplog.at_level(logging.WARNING, logger="synthesis.jobs.breaker"):
        job = bad_voice_job()

    assert_refused_input_is_permanent(job, caplog)


def test_a_corrupted_checkpoint_tensor_fails_jobs_as_engine_faults_and_opens_the_breaker(
    db, faults, tiny_bark_dir, tmp_path
):
    faults.BARK_MODEL = str(corrupted_copy(tiny_bark_dir, tmp_path / "corrupted"))
    use(faults)
    assert get_engine("bark").health().ok, "the files are all there: only loading finds the bad tensor"

    first, second = run_bark_jobs("One.", "Two.")

    assert_engine_faults_open_the_breaker(first, second, "could not load Bark")
    assert "ignore_mismatched_sizes" in first.error, "the loader says what is wrong with the tensor"


def corrupted_copy(checkpoint: Path, destination: Path) -> Path:
    """The checkpoint with one tensor of the semantic model saved in the wrong shape (a truncated or mixed-up file)."""
    shutil.copytree(checkpoint, destination)
    weights = destination / "model.safetensors"
    tensors = load_file(weights)
    name = next(key for key in sorted(tensors) if key.startswith("semantic.") and tensors[key].dim() == 2)
    tensors[name] = torch.zeros(tensors[name].shape[0] + 1, tensors[name].shape[1])
    save_file(tensors, weights, metadata={"format": "pt"})
    return destination


# --- through the Bark runner (a real process) ---------------------------------------------------------------------


def test_through_the_runner_a_device_error_reaches_the_breaker_as_an_engine_fault(db, faults, tiny_bark_dir, tmp_path):
    runner = start_runner(tiny_bark_dir, tmp_path, BARK_FAULT_INJECTION=DEVICE_FAULT)
    _, socket = next(runner)
    try:
        use(faults, socket=socket)
        assert isinstance(get_engine("bark"), RemoteBarkEngine)

        refused = bad_voice_job()
        refused_failures = breaker.get("bark").failures
        first, second = run_bark_jobs("One.", "Two.")
    finally:
        runner.close()  # kills the runner

    assert refused.status == Job.Status.FAILED and "Unknown Bark voice preset" in refused.error
    assert refused_failures == 0, "the input's fault, not the engine's"
    assert_engine_faults_open_the_breaker(first, second, "Bark generation failed: InjectedFault: CUDA error")


def test_through_the_runner_an_out_of_memory_is_retried_and_the_job_completes(
    transactional_db, faults, tiny_bark_dir, tmp_path, caplog
):
    runner = start_runner(tiny_bark_dir, tmp_path, BARK_FAULT_INJECTION=ONE_OUT_OF_MEMORY)
    _, socket = next(runner)
    try:
        use(faults, socket=socket)
        with caplog.at_level(logging.WARNING, logger="synthesis.jobs.breaker"):
            (job,) = run_bark_jobs("Hello there.")
    finally:
        runner.close()  # kills the runner

    assert_out_of_memory_was_retried(job, caplog)


def test_through_the_runner_a_corrupted_checkpoint_fails_jobs_as_engine_faults(db, faults, tiny_bark_dir, tmp_path):
    corrupted = corrupted_copy(tiny_bark_dir, tmp_path / "corrupted")
    runner = start_runner(corrupted, tmp_path)
    try:
        with pytest.raises(AssertionError, match="could not load Bark"):  # it fails to load, says why, and exits
            next(runner)
        faults.BARK_MODEL = str(corrupted)
        use(faults, socket=str(tmp_path / "runner.sock"))
        first, second = run_bark_jobs("One.", "Two.")
    finally:
        runner.close()

    assert_engine_faults_open_the_breaker(first, second, "The Bark runner could not start")
    assert "ignore_mismatched_sizes" in first.error, "the loader says what is wrong with the tensor"
