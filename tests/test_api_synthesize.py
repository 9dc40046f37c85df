"""POST /api/bark/synthesize: plan or queue a job; every bad input is a 400 that says which field."""

import os
from pathlib import Path

import pytest
from django.core.exceptions import RequestDataTooBig

from synthesis.api.errors import exception_handler
from synthesis.engines import reset_engines
from synthesis.models import Job
from tests.api_helpers import SPEECH, error_of, keyed_client, run

URL = "/api/bark/synthesize"


@pytest.fixture
def api(db):
    return keyed_client()[0]


def fields_of(response) -> dict[str, list[str]]:
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["code"] == "invalid"
    return error["fields"]


def test_a_real_submission_is_queued_with_201_and_a_location(api):
    response = api.post(URL, {**SPEECH, "seed": 7, "text_temp": 0.5}, format="json")

    assert response.status_code == 201
    body = response.json()
    job = Job.objects.get()
    assert body["job_id"] == str(job.id) and body["status"] == "queued" == job.status
    assert response["Location"] == f"http://testserver/api/bark/jobs/{job.id}"
    assert body["plan"]["engine"] == "piper" and body["plan"]["segments"] == ["Hello there. This is a test."]
    assert body["artifacts"] == {} and body["error"] is None and body["warnings"] == []
    assert job.params["seed"] == 7 and job.params["text_temp"] == 0.5 and job.api_key is not None


def test_a_dry_run_returns_200_with_the_plan_and_records_a_planned_job(api):
    response = api.post(
        URL,
        {"prompt": "One. Two.", "engine": "piper", "dry_run": True, "render_video": True, "video": {"fps": 24}},
        format="json",
    )

    assert response.status_code == 200
    plan = response.json()["plan"]
    assert response.json()["status"] == "planned" == Job.objects.get().status
    assert plan["model"] == "en_US-joe-medium" and plan["voice"] == "piper/en_US-joe-medium"
    assert plan["estimated_duration_s"] > 0 and plan["modalities"] == ["audio", "video"]
    expected = {
        "preset": "1080p",
        "width": 1920,
        "height": 1080,
        "fps": 24,
        "video_codec": "libx264",
        "audio_codec": "aac",
    }
    assert plan["video"].items() >= expected.items()


def test_without_a_runnable_engine_dry_run_defaults_to_true_and_a_real_run_gets_503(api, monkeypatch, settings):
    from synthesis.engines.piper.engine import PiperEngine

    settings.BARK_MODELS_AVAILABLE = "false"
    reset_engines()
    monkeypatch.setattr(PiperEngine, "_missing", lambda self: "piper is switched off for this test")

    planned = api.post(URL, {"prompt": SPEECH["prompt"]}, format="json")
    refused = api.post(URL, {"prompt": SPEECH["prompt"], "dry_run": False}, format="json")

    assert planned.status_code == 200 and planned.json()["status"] == "planned"
    assert refused.status_code == 503 and error_of(refused)["code"] == "engine_unavailable"
    assert list(Job.objects.values_list("status", flat=True)) == ["planned"]
    reset_engines()


def test_an_engine_asked_for_by_name_that_cannot_run_gets_503_with_the_reason_unless_dry_run(api, monkeypatch):
    from synthesis.engines.piper.engine import PiperEngine

    monkeypatch.setattr(PiperEngine, "_missing", lambda self: "piper is switched off for this test")

    refused = api.post(URL, SPEECH, format="json")
    planned = api.post(URL, {**SPEECH, "dry_run": True}, format="json")

    assert refused.status_code == 503
    assert error_of(refused) == {
        "code": "engine_unavailable",
        "message": "The piper engine cannot run here: piper is switched off for this test",
    }
    assert planned.status_code == 200 and planned.json()["status"] == "planned"
    assert list(Job.objects.values_list("status", flat=True)) == ["planned"]


def test_a_voice_of_an_engine_that_cannot_run_gets_503_too(api, settings):
    settings.BARK_MODELS_AVAILABLE = "false"
    reset_engines()

    refused = api.post(URL, {"prompt": "Hi.", "voice": "v2/en_speaker_6"}, format="json")

    assert refused.status_code == 503
    assert error_of(refused)["message"] == "The bark engine cannot run here: disabled by BARK_MODELS_AVAILABLE=false"
    assert not Job.objects.exists()
    reset_engines()


def test_the_same_seeded_request_after_completion_reuses_the_job_with_200(api):
    first = run(api.post(URL, {**SPEECH, "seed": 3}, format="json").json()["job_id"])

    again = api.post(URL, {**SPEECH, "seed": 3}, format="json")

    assert again.status_code == 200
    assert again.json()["status"] == "completed" and again.json()["deduplicated_from"] == str(first.id)
    assert set(again.json()["artifacts"]) == {"audio", "metadata"}


def test_unknown_fields_are_ignored_and_reported_as_warnings(api):
    response = api.post(URL, {**SPEECH, "dry_run": True, "temperature": 0.3}, format="json")

    assert response.status_code == 200
    assert response.json()["warnings"] == ["Unknown field 'temperature' was ignored."]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "prompt", "This field is required."),
        ({"prompt": "   "}, "prompt", "This field may not be blank."),
        ({"prompt": 42}, "prompt", "Not a valid string."),
        ({"prompt": ["a"]}, "prompt", "Not a valid string."),
        ({**SPEECH, "text_temp": 1.6}, "text_temp", "Ensure this value is less than or equal to 1.5."),
        ({**SPEECH, "waveform_temp": -0.1}, "waveform_temp", "Ensure this value is greater than or equal to 0.0."),
        ({**SPEECH, "text_temp": "0.5"}, "text_temp", "A valid number is required."),
        ({**SPEECH, "seed": 2**32}, "seed", "Ensure this value is less than or equal to 4294967295."),
        ({**SPEECH, "seed": "7"}, "seed", "A valid integer is required."),
        ({**SPEECH, "seed": True}, "seed", "A valid integer is required."),
        ({**SPEECH, "dry_run": "yes"}, "dry_run", "Must be a valid boolean."),
        ({**SPEECH, "engine": "tacotron"}, "engine", '"tacotron" is not a valid choice.'),
        ({**SPEECH, "modalities": ["smell"]}, "modalities[0]", '"smell" is not a valid choice.'),
        ({**SPEECH, "modalities": "audio"}, "modalities", 'Expected a list of items but got type "str".'),
        ({**SPEECH, "modalities": []}, "modalities", "This list may not be empty."),
        ({**SPEECH, "video": {"fps": 61}}, "video.fps", "61 fps is out of range; use 1 to 60."),
        ({**SPEECH, "video": {"resolution": "8k"}}, "video.resolution", "Write it as WIDTHxHEIGHT"),
        ({**SPEECH, "video": {"video_codec": "vp9"}}, "video.video_codec", "Unsupported codec 'vp9'"),
        ({**SPEECH, "video": "4k"}, "video", "Expected an object of video options."),
        ({**SPEECH, "routing_priorities": {"audio": 11}}, "routing_priorities.audio", "less than or equal to 10"),
        ({**SPEECH, "routing_priorities": {"smell": 1}}, "routing_priorities", "Unknown modality 'smell'"),
        ({**SPEECH, "control_events": [{"type": "pause", "segment": 0}]}, "control_events[0].ms", "needs 'ms'"),
        (
            {**SPEECH, "control_events": [{"type": "pause", "segment": 0, "ms": 20000}]},
            "control_events[0].ms",
            "less than or equal to 10000",
        ),
        ({**SPEECH, "control_events": [{"type": "cue", "segment": 0, "cue": "[burps]"}]}, "control_events[0].cue", ""),
        (
            {**SPEECH, "control_events": [{"type": "voice", "segment": 0, "voice": "v9/xx"}]},
            "control_events[0].voice",
            "Unknown voice 'v9/xx'.",
        ),
        (
            {**SPEECH, "control_events": [{"type": "pause", "segment": 5, "ms": 100}]},
            "control_events[0].segment",
            "The prompt has 1 segment(s); segment 5 does not exist.",
        ),
        ({**SPEECH, "control_events": [{"type": "explode", "segment": 0}]}, "control_events[0].type", "not a valid"),
    ],
)
def test_bad_fields_get_400_naming_the_field_and_record_nothing(api, body, field, message):
    fields = fields_of(api.post(URL, body, format="json"))

    assert message in fields[field][0], fields
    assert Job.objects.count() == 0


def test_a_prompt_over_the_limit_gets_400_with_the_count(api, settings):
    settings.BARK_MAX_PROMPT_CHARS = 20

    fields = fields_of(api.post(URL, {**SPEECH, "prompt": "x" * 21}, format="json"))

    assert fields == {"prompt": ["The prompt has 21 characters; the limit is 20."]}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({**SPEECH, "voice": "v9/xx_speaker_1"}, "voice", "Unknown voice 'v9/xx_speaker_1'"),
        ({**SPEECH, "voice": "v2/en_speaker_1"}, "voice", "belongs to the bark engine, not piper"),
        ({"prompt": "Hi.", "voice": "custom/00000000-0000-0000-0000-000000000000"}, "voice", "There is no voice"),
    ],
)
def test_voices_that_do_not_exist_or_do_not_fit_the_engine_get_400(api, body, field, message):
    assert message in fields_of(api.post(URL, body, format="json"))[field][0]


@pytest.mark.parametrize(
    ("output_path", "message"),
    [
        ("../escape", "may not contain '..'"),
        ("a/../../escape", "may not contain '..'"),
        ("/etc/passwd", "must be relative"),
        ("C:\\Windows\\x", "must be relative"),
        ("bad\x00name", "Null characters are not allowed."),
        ("a/b/c/d/e", "up to 4 parts"),
    ],
)
def test_unsafe_output_paths_get_400_and_nothing_is_written(api, output_path, message, isolated_storage):
    assert message in fields_of(api.post(URL, {**SPEECH, "output_path": output_path}, format="json"))["output_path"][0]
    assert not isolated_storage.exists() or not any(isolated_storage.rglob("*"))


def test_a_safe_output_path_names_the_artifacts_inside_the_jobs_directory(api, isolated_storage):
    job = run(api.post(URL, {**SPEECH, "output_path": "chapter1/intro.wav"}, format="json").json()["job_id"])

    assert job.audio.name == f"jobs/{job.id}/chapter1/intro.wav"
    assert (isolated_storage / "jobs" / str(job.id) / "chapter1" / "intro.wav").is_file()


def test_a_symlink_planted_under_the_output_root_cannot_carry_artifacts_outside(api, isolated_storage, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    job_id = api.post(URL, {**SPEECH, "output_path": "escape/deeper/speech"}, format="json").json()["job_id"]
    job_dir = isolated_storage / "jobs" / job_id
    job_dir.mkdir(parents=True)
    os.symlink(outside, job_dir / "escape")

    job = run(job_id)

    assert job.status == Job.Status.FAILED and "outside BARK_OUTPUT_ROOT" in job.error
    assert list(outside.iterdir()) == []
    assert not any(Path(p).is_file() for p in isolated_storage.rglob("*") if not Path(p).is_symlink())


def test_malformed_json_gets_400_malformed_json(api):
    response = api.post(URL, '{"prompt": "hi",', content_type="application/json")

    assert response.status_code == 400
    assert error_of(response)["code"] == "malformed_json"


@pytest.mark.parametrize("depth", [33, 100_000])
def test_json_nested_too_deep_gets_400_malformed_json_not_a_500(api, depth):
    response = api.post(URL, "[" * depth + "]" * depth, content_type="application/json")

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "malformed_json" and "nested deeper than 32 levels" in error["message"]
    assert Job.objects.count() == 0


def test_a_json_body_that_is_not_an_object_gets_400(api):
    fields = fields_of(api.post(URL, '["hello"]', content_type="application/json"))

    assert fields == {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}


def test_a_form_encoded_body_gets_415(api):
    response = api.post(URL, {"prompt": "hi"})  # multipart

    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


def test_a_body_over_the_limit_gets_413_and_records_nothing(api, settings):
    settings.BARK_MAX_BODY_BYTES = 2048

    response = api.post(URL, {**SPEECH, "caption_text": "x" * 4096}, format="json")

    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "payload_too_large" and "the limit is 2048 bytes (BARK_MAX_BODY_BYTES)" in error["message"]
    assert Job.objects.count() == 0


def test_djangos_request_data_too_big_is_answered_413_json_not_400():
    # DRF reads bodies as a stream, so Django's DATA_UPLOAD_MAX_MEMORY_SIZE check only fires where code
    # touches request.body or request.POST; wherever that happens inside the API, the answer is this.
    response = exception_handler(RequestDataTooBig("too big"), {"view": None, "request": None})

    assert response.status_code == 413
    assert response.data == {"error": {"code": "payload_too_large", "message": "The request body is too large."}}


def test_get_is_not_allowed_on_synthesize(api):
    response = api.get(URL)

    assert response.status_code == 405
    assert error_of(response) == {"code": "method_not_allowed", "message": 'Method "GET" not allowed.'}


def test_the_estimated_length_follows_the_engines_recent_pace(api):
    text = "x" * 175
    first = api.post(URL, {**SPEECH, "prompt": text, "dry_run": True}, format="json").json()["plan"]
    for _ in range(3):  # three finished Piper jobs here spoke 10 characters a second
        Job.objects.create(prompt="y" * 100, engine="piper", status=Job.Status.COMPLETED, duration_s=10.0)
    later = api.post(URL, {**SPEECH, "prompt": text, "dry_run": True}, format="json").json()["plan"]

    assert first["estimated_duration_s"] == 10.0  # Piper's measured default: 17.5 characters a second
    assert later["estimated_duration_s"] == 17.5
