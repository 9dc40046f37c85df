"""GET /api/bark/jobs/{job_id}/artifacts/{name}: the stored file, with its type, to the job's owner only."""

import io
import json

import numpy as np
import pytest
from scipy.io import wavfile

from tests.api_helpers import SPEECH, client, error_of, keyed_client, run

# Marked tests run with artifacts on the local disk and again in an S3 bucket (moto's server).
ON_DISK_AND_S3 = pytest.mark.usefixtures("artifact_storage")


@pytest.fixture
def done(db):
    api, _ = keyed_client()
    job = run(api.post("/api/bark/synthesize", SPEECH, format="json").json()["job_id"])
    return api, job


def body_of(response) -> bytes:
    return b"".join(response.streaming_content)


@ON_DISK_AND_S3
def test_the_audio_artifact_is_a_valid_wav(done):
    api, job = done

    response = api.get(f"/api/bark/jobs/{job.id}/artifacts/audio", HTTP_ACCEPT="audio/wav")

    assert response.status_code == 200 and response["Content-Type"] == "audio/wav"
    assert response["Content-Disposition"] == 'inline; filename="audio.wav"'
    rate, samples = wavfile.read(io.BytesIO(body_of(response)))
    assert rate == 22050 and samples.dtype == np.int16
    assert len(samples) / rate == pytest.approx(job.duration_s, abs=0.001)


def test_the_metadata_artifact_is_json(done):
    api, job = done

    response = api.get(f"/api/bark/jobs/{job.id}/artifacts/metadata")

    assert response["Content-Type"] == "application/json"
    assert json.loads(body_of(response))["job_id"] == str(job.id)


@ON_DISK_AND_S3
def test_a_byte_range_is_honoured(done):
    api, job = done

    response = api.get(f"/api/bark/jobs/{job.id}/artifacts/audio", HTTP_RANGE="bytes=0-3")

    assert response.status_code == 206 and body_of(response) == b"RIFF"


@pytest.mark.parametrize("name", ["video", "srt", "nonsense", "..%2Faudio.wav"])
def test_an_artifact_the_job_does_not_have_is_a_json_404(done, name):
    api, job = done

    response = api.get(f"/api/bark/jobs/{job.id}/artifacts/{name}")

    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


@ON_DISK_AND_S3
def test_a_file_gone_from_storage_is_a_404_not_a_500(done):
    api, job = done
    job.audio.storage.delete(job.audio.name)

    response = api.get(f"/api/bark/jobs/{job.id}/artifacts/audio")

    assert response.status_code == 404 and "gone from storage" in error_of(response)["message"]


def test_another_keys_artifact_is_404_and_no_key_is_401(done):
    _, job = done
    other, _ = keyed_client("other")

    assert other.get(f"/api/bark/jobs/{job.id}/artifacts/audio").status_code == 404
    assert client().get(f"/api/bark/jobs/{job.id}/artifacts/audio").status_code == 401


def test_a_range_past_the_end_is_a_json_416_with_the_files_size(done):
    api, job = done
    size = job.audio.size

    response = api.get(f"/api/bark/jobs/{job.id}/artifacts/audio", HTTP_RANGE=f"bytes={size + 10}-")

    assert response.status_code == 416 and response["Content-Range"] == f"bytes */{size}"
    assert error_of(response)["code"] == "range_not_satisfiable"
