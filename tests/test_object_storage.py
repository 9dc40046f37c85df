"""Artifacts in an S3 bucket (BARK_S3_BUCKET): whole-or-nothing writes, cleanup, presigned downloads and
configuration errors, against moto's real S3 server on loopback."""

import runpy
import urllib.request
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.urls import reverse

from synthesis.jobs.artifacts import delete_job_files, store_artifact
from synthesis.jobs.pipeline import run_job
from synthesis.models import Job
from tests.conftest import SETTINGS_FILE
from tests.fixtures_web import finish, make_job


def test_an_artifact_lands_in_the_bucket_under_its_final_name_and_nothing_else(db, s3_storage):
    job = Job.objects.create(prompt="Hi.", engine="piper", output_prefix="greeting")

    size = store_artifact(job, "audio", "wav", lambda path: path.write_bytes(b"RIFF" + b"\0" * 40))

    assert job.audio.name == f"jobs/{job.id}/greeting.wav" and size == 44
    assert default_storage.listdir(f"jobs/{job.id}") == ([], ["greeting.wav"])
    assert default_storage.open(job.audio.name).read() == b"RIFF" + b"\0" * 40


def test_a_write_that_fails_halfway_leaves_the_earlier_object_untouched(db, s3_storage):
    job = Job.objects.create(prompt="Hi.", engine="piper")
    store_artifact(job, "audio", "wav", lambda path: path.write_bytes(b"first, whole"))

    def half_then_crash(path: Path) -> None:
        path.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        store_artifact(job, "audio", "wav", half_then_crash)

    assert default_storage.open(f"jobs/{job.id}/audio.wav").read() == b"first, whole"


def test_a_completed_job_is_all_in_the_bucket_and_nothing_on_the_local_disk(piper_job, s3_storage, isolated_storage):
    run_job(str(piper_job.id))

    piper_job.refresh_from_db()
    assert piper_job.status == Job.Status.COMPLETED, piper_job.error
    folders, files = default_storage.listdir(f"jobs/{piper_job.id}")
    assert folders == ["segments"] and sorted(files) == ["audio.json", "audio.wav"]
    assert default_storage.size(piper_job.audio.name) == piper_job.artifact_sizes["audio"]
    assert not isolated_storage.exists()


def test_a_jobs_files_and_segments_can_all_be_deleted_from_the_bucket(piper_job, s3_storage):
    run_job(str(piper_job.id))
    piper_job.refresh_from_db()

    delete_job_files(str(piper_job.id))

    assert default_storage.listdir(f"jobs/{piper_job.id}") == ([], [])


def test_with_presigned_urls_a_download_redirects_to_the_bucket_which_honours_ranges(
    signed_in, settings, s3_storage, user
):
    settings.BARK_S3_PRESIGNED = True
    job = finish(make_job(user))

    response = signed_in.get(reverse("job-file", args=[job.pk, "audio"]) + "?download=1")

    assert response.status_code == 302 and response["Cache-Control"] == "no-store"
    assert s3_storage in response["Location"] and "Signature=" in response["Location"]
    request = urllib.request.Request(response["Location"], headers={"Range": "bytes=0-3"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 206 and answer.read() == b"RIFF"
        assert answer.headers["Content-Type"] == "audio/wav"
        assert answer.headers["Content-Disposition"] == 'attachment; filename="audio.wav"'


def test_a_stranger_gets_no_redirect_to_the_bucket(client, settings, s3_storage, user, other_user):
    settings.BARK_S3_PRESIGNED = True
    job = finish(make_job(user))
    client.force_login(other_user)

    assert client.get(reverse("job-file", args=[job.pk, "audio"])).status_code == 404


def test_the_synthesize_command_copies_its_wav_out_of_the_bucket(db, s3_storage, tmp_path, capsys):
    out = tmp_path / "hello.wav"

    call_command("synthesize", "Hello from the bucket.", "--engine", "piper", "--out", str(out))

    assert out.read_bytes()[:4] == b"RIFF" and f"Wrote {out}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AWS_ACCESS_KEY_ID": "only-the-key"}, "Set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        ({"AWS_S3_ENDPOINT_URL": "minio:9000"}, "must start with http:// or https://"),
        ({"BARK_S3_URL_EXPIRE_S": "soon"}, "BARK_S3_URL_EXPIRE_S='soon' is not a whole number"),
    ],
)
def test_a_bad_bucket_configuration_stops_start_up_saying_what_to_fix(monkeypatch, env, message):
    monkeypatch.setenv("BARK_S3_BUCKET", "media")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(ImproperlyConfigured, match=message):
        runpy.run_path(str(SETTINGS_FILE))
