"""Artifact downloads: only for the job's owner (and staff), with the right content type and byte ranges."""

import pytest
from django.urls import reverse

from synthesis.models import Job

# Marked tests run with artifacts on the local disk and again in an S3 bucket (moto's server).
ON_DISK_AND_S3 = pytest.mark.usefixtures("artifact_storage")


def file_url(job: Job, name: str) -> str:
    return reverse("job-file", args=[job.pk, name])


def body_of(response) -> bytes:
    return b"".join(response.streaming_content)


def stored_bytes(job: Job) -> bytes:
    with job.audio.storage.open(job.audio.name, "rb") as handle:
        return handle.read()


def test_the_owner_downloads_the_wav_inline_with_its_content_type(signed_in, completed_job):
    response = signed_in.get(file_url(completed_job, "audio"))

    data = body_of(response)
    assert response.status_code == 200
    assert response["Content-Type"] == "audio/wav"
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Disposition"] == 'inline; filename="audio.wav"'
    assert data == stored_bytes(completed_job) and data[:4] == b"RIFF"
    assert int(response["Content-Length"]) == completed_job.artifact_sizes["audio"]


def test_download_1_asks_the_browser_to_save_the_file(signed_in, completed_job):
    response = signed_in.get(file_url(completed_job, "metadata") + "?download=1")

    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == 'attachment; filename="audio.json"'
    assert b'"engine": "piper"' in body_of(response)


@ON_DISK_AND_S3
def test_a_byte_range_is_answered_with_206_and_just_those_bytes(signed_in, completed_job):
    whole = stored_bytes(completed_job)

    first = signed_in.get(file_url(completed_job, "audio"), headers={"Range": "bytes=0-43"})
    tail = signed_in.get(file_url(completed_job, "audio"), headers={"Range": "bytes=-100"})
    open_ended = signed_in.get(file_url(completed_job, "audio"), headers={"Range": "bytes=1000-"})

    assert first.status_code == 206 and body_of(first) == whole[:44]
    assert first["Content-Range"] == f"bytes 0-43/{len(whole)}" and first["Content-Length"] == "44"
    assert tail.status_code == 206 and body_of(tail) == whole[-100:]
    assert body_of(open_ended) == whole[1000:] and open_ended["Content-Type"] == "audio/wav"


def test_a_range_past_the_end_is_416_and_a_malformed_one_gets_the_whole_file(signed_in, completed_job):
    size = completed_job.artifact_sizes["audio"]

    past = signed_in.get(file_url(completed_job, "audio"), headers={"Range": f"bytes={size}-"})
    several = signed_in.get(file_url(completed_job, "audio"), headers={"Range": "bytes=0-1,5-9"})

    assert past.status_code == 416 and past["Content-Range"] == f"bytes */{size}"
    assert several.status_code == 200 and len(body_of(several)) == size


@ON_DISK_AND_S3
def test_unknown_or_missing_artifacts_are_not_found(signed_in, completed_job):
    assert signed_in.get(file_url(completed_job, "video")).status_code == 404
    assert signed_in.get(file_url(completed_job, "passwd")).status_code == 404
    completed_job.audio.storage.delete(completed_job.audio.name)
    assert signed_in.get(file_url(completed_job, "audio")).status_code == 404


def test_downloads_need_sign_in_and_are_not_found_for_other_users(client, completed_job, other_user):
    signed_out = client.get(file_url(completed_job, "audio"))
    client.force_login(other_user)
    stranger = client.get(file_url(completed_job, "audio"))

    assert signed_out.status_code == 302 and signed_out["Location"].startswith(reverse("login"))
    assert stranger.status_code == 404


def test_staff_may_download_any_job_for_the_admin_player(admin_client, completed_job):
    response = admin_client.get(file_url(completed_job, "audio"))

    assert response.status_code == 200 and body_of(response)[:4] == b"RIFF"
