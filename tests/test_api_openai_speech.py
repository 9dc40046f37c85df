"""POST /v1/audio/speech and GET /v1/models: OpenAI's shapes, every response_format decoded and checked,
and OpenAI's own Python client talking to the app."""

import io
import json

import httpx2
import numpy as np
import openai
import pytest
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from scipy.io import wavfile

from synthesis.engines import reset_engines
from synthesis.models import Job
from tests.api_helpers import client, keyed_client, new_key
from tests.media_decode import decode, duration_s

URL = "/v1/audio/speech"
SAY = {"model": "tts-1", "input": "Hello there. This is a test.", "voice": "alloy"}


@pytest.fixture
def api(db):
    return keyed_client()[0]


def speak(api, **fields):
    return api.post(URL, {**SAY, **fields}, format="json")


def openai_error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def is_adts(data: bytes) -> bool:
    return data[0] == 0xFF and data[1] & 0xF6 == 0xF0


@pytest.mark.parametrize(
    ("response_format", "content_type", "looks_right"),
    [
        ("wav", "audio/wav", lambda b: b[:4] == b"RIFF" and b[8:12] == b"WAVE"),
        ("mp3", "audio/mpeg", lambda b: b[:3] == b"ID3" or (b[0] == 0xFF and b[1] & 0xE0 == 0xE0)),
        ("flac", "audio/flac", lambda b: b[:4] == b"fLaC"),
        ("opus", "audio/ogg", lambda b: b[:4] == b"OggS" and b"OpusHead" in b[:64]),
        ("aac", "audio/aac", is_adts),
    ],
)
def test_each_container_format_comes_back_decodable_with_its_content_type(
    api, response_format, content_type, looks_right
):
    response = speak(api, response_format=response_format)

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == content_type
    data = response.content
    assert looks_right(data), data[:16]
    job = Job.objects.get(pk=response["X-Job-Id"])
    assert job.status == Job.Status.COMPLETED and job.engine == "piper"
    assert duration_s(data) == pytest.approx(job.duration_s, abs=0.1)  # aac/opus add encoder padding


def test_pcm_is_raw_16_bit_mono_at_24_khz_like_openais(api):
    response = speak(api, response_format="pcm")

    assert response["Content-Type"] == "audio/pcm"
    data = response.content
    job = Job.objects.get(pk=response["X-Job-Id"])
    assert len(data) % 2 == 0
    assert len(data) / 2 / 24000 == pytest.approx(job.duration_s, abs=0.01)
    assert np.abs(np.frombuffer(data, dtype="<i2")).max() > 1000


def test_mp3_is_the_default_format(api):
    assert speak(api)["Content-Type"] == "audio/mpeg"


def test_wav_without_a_speed_change_is_the_stored_artifact_itself(api):
    response = speak(api, response_format="wav")

    job = Job.objects.get(pk=response["X-Job-Id"])
    rate, _ = wavfile.read(io.BytesIO(response.content))
    assert rate == 22050 and response.content == job.audio.open("rb").read()


@pytest.mark.parametrize("speed", [0.25, 2.0, 4.0])
def test_speed_changes_the_duration_not_the_pitch(api, speed):
    response = speak(api, response_format="pcm", speed=speed)

    job = Job.objects.get(pk=response["X-Job-Id"])
    assert duration_s(response.content, ("-f", "s16le", "-ar", "24000", "-ac", "1")) == pytest.approx(
        job.duration_s / speed, rel=0.05
    )


def test_a_real_voice_id_is_accepted_and_an_openai_name_maps_to_the_engines_voice(api):
    named = speak(api, model="piper", voice="shimmer")
    real = speak(api, model="tts-1-hd", voice="piper/en_US-joe-medium")

    assert named.status_code == real.status_code == 200
    assert {job.voice for job in Job.objects.all()} == {"piper/en_US-joe-medium"}


def test_the_speech_job_is_an_ordinary_job_of_the_key(db):
    api, api_key = keyed_client()

    response = speak(api, response_format="wav")

    job = Job.objects.get(pk=response["X-Job-Id"])
    assert job.api_key == api_key and job.prompt == SAY["input"]
    assert api.get(f"/api/bark/jobs/{job.id}").json()["status"] == "completed"


def test_bark_puts_the_cues_the_instructions_ask_for_at_the_start_of_the_input_and_a_header_names_them(api, tiny_bark):
    response = speak(api, model="bark", response_format="wav", instructions="Laugh, then sigh, in a woman's voice.")

    assert response.status_code == 200, response.content
    assert json.loads(response["X-Instructions-Applied"]) == ["[laughs]", "[sighs]", "[WOMAN]"]
    assert response["X-Instructions-Ignored"] == (
        "Only the words that ask for a cue were acted on; the rest was ignored."
    )
    job = Job.objects.get(pk=response["X-Job-Id"])
    assert job.get_plan().segments == ["[laughs] [sighs] [WOMAN] Hello there. This is a test."]
    assert job.status == Job.Status.COMPLETED and job.engine == "bark"


def test_instructions_made_only_of_cue_words_are_applied_whole_in_an_ascii_header(api, tiny_bark):
    response = speak(api, model="bark", response_format="wav", instructions="[sings] ♪")

    assert response["X-Instructions-Applied"] == '["\\u266a"]' and "X-Instructions-Ignored" not in response
    assert Job.objects.get().get_plan().segments == ["♪ Hello there. This is a test."]


@pytest.mark.parametrize(
    ("model", "instructions", "ignored"),
    [
        ("piper", "Laugh, warmly.", "The piper engine cannot act on instructions."),
        (
            "bark",
            "Speak in a calm, even tone.",
            "None of the words the bark engine acts on are in the instructions (README: instructions).",
        ),
    ],
)
def test_instructions_the_engine_cannot_act_on_are_ignored_and_a_header_says_so(
    api, tiny_bark, model, instructions, ignored
):
    response = speak(api, model=model, response_format="wav", instructions=instructions)

    assert response.status_code == 200 and response["X-Instructions-Ignored"] == ignored
    assert "X-Instructions-Applied" not in response
    job = Job.objects.get(pk=response["X-Job-Id"])
    assert job.get_plan().segments == [SAY["input"]] and job.params["control_events"] == []


def test_without_instructions_neither_header_is_sent(api):
    response = speak(api, instructions="  ")

    assert response.status_code == 200
    assert "X-Instructions-Applied" not in response and "X-Instructions-Ignored" not in response


@pytest.mark.parametrize(
    ("fields", "param", "message"),
    [
        ({"model": "whisper-1"}, "model", "Unknown model 'whisper-1'"),
        ({"voice": "darth"}, "voice", "Unknown voice 'darth'"),
        ({"voice": {"id": ""}}, "voice", "Expected a voice name"),
        ({"input": ""}, "input", "may not be blank"),
        ({"input": 7}, "input", "Not a valid string."),
        ({"response_format": "ogg"}, "response_format", '"ogg" is not a valid choice.'),
        ({"speed": 5}, "speed", "less than or equal to 4.0"),
        ({"speed": 0.1}, "speed", "greater than or equal to 0.25"),
        ({"stream_format": "webrtc"}, "stream_format", '"webrtc" is not a valid choice.'),
        ({"stream_format": "sse", "response_format": "opus"}, "response_format", "Streaming sends wav, pcm, mp3"),
        ({"stream_format": "sse", "speed": 2.0}, "speed", "Streaming plays at speed 1.0 only."),
        ({"instructions": "x" * 4097}, "instructions", "no more than 4096 characters"),
        ({"voice": {"id": "voice_" + "0" * 32}}, "voice", "There is no voice 'voice_000"),
        ({"voice": "voice_nothex"}, "voice", "Unknown voice 'voice_nothex'"),
        ({"model": "bark", "voice": "piper/en_US-joe-medium"}, "voice", "belongs to the piper engine, not bark"),
    ],
)
def test_bad_requests_get_openai_shaped_400s_naming_the_param(api, fields, param, message):
    error = openai_error(speak(api, **fields), 400)

    assert error["type"] == "invalid_request_error" and error["param"] == param and error["code"] == "invalid"
    assert message in error["message"]
    assert Job.objects.count() == 0


def test_malformed_json_gets_an_openai_shaped_400(api):
    error = openai_error(api.post(URL, "{nope", content_type="application/json"), 400)

    assert error["code"] == "malformed_json" and error["param"] is None


def test_json_nested_a_thousand_deep_gets_an_openai_shaped_400_not_a_500(api):
    body = '{"model": "tts-1", "input": "Hi.", "voice": ' + "[" * 1000 + "]" * 1000 + "}"

    error = openai_error(api.post(URL, body, content_type="application/json"), 400)

    assert error["code"] == "malformed_json" and "nested deeper" in error["message"]


def test_a_missing_or_wrong_key_gets_an_openai_shaped_401(db):
    new_key()

    for api in (client(), client("sk-wrong", bearer=True)):
        error = openai_error(api.post(URL, SAY, format="json"), 401)
        assert error["type"] == "authentication_error"


def test_no_runnable_engine_gets_503(api, monkeypatch):
    from synthesis.engines.piper.engine import PiperEngine

    monkeypatch.setattr(PiperEngine, "_missing", lambda self: "switched off")

    error = openai_error(speak(api, model="piper"), 503)

    assert error["type"] == "server_error" and "switched off" in error["message"]


def test_a_job_that_fails_gets_a_500_with_its_error(api, monkeypatch):
    from synthesis.engines import EngineFailed
    from synthesis.engines.piper.engine import PiperEngine

    def broken(self, segments, options, on_segment=None):
        raise EngineFailed("the voice broke")

    monkeypatch.setattr(PiperEngine, "synthesize", broken)

    error = openai_error(speak(api), 500)

    assert error["code"] == "synthesis_failed" and error["message"].endswith("failed: the voice broke")


def test_with_a_worker_running_the_request_waits_for_it_and_gives_up_after_the_timeout(api, settings, monkeypatch):
    from synthesis.api import openai as speech

    settings.BARK_SPEECH_TIMEOUT = 1
    monkeypatch.setattr(speech, "live_clusters", lambda: 1)  # a worker exists, but never picks the job up

    error = openai_error(speak(api), 504)

    job = Job.objects.get()
    assert job.status == Job.Status.QUEUED
    assert error["code"] == "timeout" and f"GET /api/bark/jobs/{job.id}" in error["message"]


def test_models_lists_every_model_that_can_run_in_openais_format(api, tiny_bark):
    response = api.get("/v1/models")

    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    ids = {model["id"]: model["engine"] for model in body["data"]}
    assert ids["tts-1"] == "bark" and ids["bark"] == "bark" and ids[str(tiny_bark)] == "bark"
    assert ids["piper"] == ids["en_US-joe-medium"] == "piper"
    assert all(model["object"] == "model" and model["owned_by"] == "barksite" for model in body["data"])
    assert api.get("/v1/models/bark").json()["engine"] == "bark"
    assert openai_error(api.get("/v1/models/nope"), 404)["code"] == "not_found"
    assert openai_error(api.get("/v1/nothing/here"), 404)["code"] == "not_found"


def test_models_leaves_out_an_engine_that_cannot_run_and_asking_for_it_gets_503_with_the_reason(api, settings):
    settings.BARK_MODELS_AVAILABLE = "false"
    reset_engines()

    ids = {model["id"] for model in api.get("/v1/models").json()["data"]}
    detail = openai_error(api.get("/v1/models/bark"), 404)
    speech = openai_error(speak(api, model="bark", voice="alloy"), 503)

    assert ids == {"tts-1", "tts-1-hd", "gpt-4o-mini-tts", "gpt-4o-mini-tts-2025-12-15", "piper", "en_US-joe-medium"}
    assert detail["message"] == "The model 'bark' cannot run here: disabled by BARK_MODELS_AVAILABLE=false"
    assert speech["code"] == "engine_unavailable"
    assert speech["message"] == "The bark engine cannot run here: disabled by BARK_MODELS_AVAILABLE=false"
    assert not Job.objects.exists()
    reset_engines()


@pytest.fixture
def wsgi_app_in_the_test_transaction():
    """The real WSGI application, run inside this test's transaction. After each request Django closes
    connections that are not in autocommit mode, which a test transaction never is: on PostgreSQL that
    would close the test's own connection. Django's test client switches this off the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_openais_python_client_works_unchanged(db, wsgi_app_in_the_test_transaction):
    _, raw = new_key()
    transport = httpx2.WSGITransport(app=wsgi_app_in_the_test_transaction)
    sdk = openai.OpenAI(
        base_url="http://localhost/v1", api_key=raw, http_client=httpx2.Client(transport=transport), max_retries=0
    )

    speech = sdk.audio.speech.create(model="tts-1", voice="nova", input="Hi from the client.", response_format="mp3")
    models = sdk.models.list()

    assert speech.content[:3] == b"ID3" and len(decode(speech.content)) > 0
    assert "tts-1" in {model.id for model in models.data}
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            base_url="http://localhost/v1", api_key="sk-wrong", http_client=httpx2.Client(transport=transport)
        ).models.list()
