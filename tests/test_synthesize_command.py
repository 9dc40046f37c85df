"""`manage.py synthesize`."""

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django_q.models import OrmQ
from scipy.io import wavfile

from synthesis.engines import reset_engines
from synthesis.models import Job


def test_synthesize_with_piper_writes_a_valid_wav_and_records_a_job(db, tmp_path, capsys):
    (tmp_path / "cli").mkdir()
    out = tmp_path / "cli" / "hello.wav"

    call_command("synthesize", "Hello there.", "--engine", "piper", "--out", str(out))

    rate, samples = wavfile.read(out)
    assert rate == 22050 and samples.dtype == np.int16 and np.abs(samples).max() > 1000
    job = Job.objects.get()
    assert job.status == Job.Status.COMPLETED and job.engine == "piper"
    assert f"Wrote {out}" in capsys.readouterr().out
    assert list(out.parent.iterdir()) == [out], "no temporary file left beside the output"


def test_synthesize_with_bark_writes_a_valid_24khz_wav(db, tmp_path, tiny_bark):
    out = tmp_path / "bark.wav"

    call_command("synthesize", "Hello there.", "--engine", "bark", "--voice", "v2/en_speaker_6", "--out", str(out))

    rate, samples = wavfile.read(out)
    assert rate == 24000 and len(samples) > 0
    assert Job.objects.get().model == str(tiny_bark)


def test_synthesize_with_the_same_seed_twice_reuses_the_first_result(db, tmp_path):
    call_command("synthesize", "Seeded words.", "--engine", "piper", "--seed", "4", "--out", str(tmp_path / "a.wav"))
    call_command("synthesize", "Seeded words.", "--engine", "piper", "--seed", "4", "--out", str(tmp_path / "b.wav"))

    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    first, second = Job.objects.order_by("submitted_at")
    assert second.deduplicated_from == first


def test_synthesize_enqueue_records_a_queued_job_for_the_workers(db, capsys, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        call_command("synthesize", "Later, please.", "--engine", "piper", "--enqueue")

    job = Job.objects.get()
    assert job.status == Job.Status.QUEUED
    assert OrmQ.objects.count() == 1
    assert f"Queued job {job.id}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["   "], "prompt: The prompt is blank"),
        (["Hi.", "--voice", "v9/xx_speaker_1"], "voice: Unknown voice 'v9/xx_speaker_1'"),
        (["Hi.", "--engine", "piper", "--voice", "v2/en_speaker_1"], "belongs to the bark engine, not piper"),
        (["Hi.", "--out", "/no/such/dir/x.wav"], "the directory /no/such/dir does not exist"),
        (["Hi.", "--out", "/tmp"], "is a directory"),
        (["Hi.", "--out", "x.mp3"], "must end in .wav"),
    ],
)
def test_synthesize_fails_cleanly_on_bad_input_and_records_nothing(db, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("synthesize", *args)

    assert Job.objects.count() == 0


@pytest.mark.parametrize("value", ["2", "5", "-0.1", "nan", "warm"])
def test_synthesize_refuses_out_of_range_temperatures_with_the_allowed_range(value):
    with pytest.raises(CommandError, match=r"--text-temp: use a temperature from 0.0 to 1.5 \(e.g. 0.7\), not"):
        call_command("synthesize", "Hi.", "--text-temp", value)


def test_wait_without_enqueue_is_refused(db):
    with pytest.raises(CommandError, match="--wait goes with --enqueue"):
        call_command("synthesize", "Hi.", "--wait")


def test_an_engine_that_cannot_run_is_refused_with_the_reason(db, settings):
    settings.BARK_MODELS_AVAILABLE = "false"
    reset_engines()

    with pytest.raises(CommandError, match="The bark engine cannot run here: disabled by BARK_MODELS_AVAILABLE=false"):
        call_command("synthesize", "Hi.", "--engine", "bark")

    assert Job.objects.count() == 0
    reset_engines()
