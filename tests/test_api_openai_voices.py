"""/v1/audio/voices: a custom voice from an audio sample and a consent, made by barksite's cloning (pending until a
worker encodes it), speaking in /v1/audio/speech as `voice: {"id": ...}`; deleted by its owner; OpenAI's error shape
for every bad input, and OpenAI's Python client using it."""

import httpx2
import openai
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.wsgi import get_wsgi_application

from synthesis.engines import reset_engines
from synthesis.models import Job, Voice
from synthesis.tasks import build_voice_task
from tests.api_helpers import keyed_client, new_key
from tests.media_decode import decode, tone

URL = "/v1/audio/voices"
SPOKEN = "A steady tone, standing in for my voice."


def openai_error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def make_consent(api) -> str:
    recording = SimpleUploadedFile("consent.wav", tone("wav"))
    response = api.post(
        "/v1/audio/voice_consents", {"name": "Jo", "language": "en", "recording": recording}, format="multipart"
    )
    assert response.status_code == 200, response.content
    return response.json()["id"]


def create(api, consent: str | None, /, **fields):
    body = {
        "name": "My voice",
        "audio_sample": SimpleUploadedFile("sample.wav", tone("wav")),
        "consent": consent,
        "transcript": SPOKEN,
    }
    body.update(fields)
    return api.post(URL, {name: value for name, value in body.items() if value is not None}, format="multipart")


@pytest.fixture
def api(db):
    client, key = keyed_client()
    return client, key, make_consent(client)


@pytest.mark.parametrize("container", ["mp3", "wav", "ogg", "aac", "flac", "webm", "mp4"])
def test_a_voice_from_a_sample_in_each_container_is_pending_for_its_key_and_named_as_openai_does(
    api, container, django_capture_on_commit_callbacks
):
    client, key, consent = api
    sample = SimpleUploadedFile(f"sample.{container}", tone(container))

    with django_capture_on_commit_callbacks() as callbacks:
        response = create(client, consent, audio_sample=sample)

    assert response.status_code == 200, response.content
    voice = Voice.objects.get()
    assert response.json() == {
        "object": "audio.voice",
        "id": f"voice_{voice.id.hex}",
        "name": "My voice",
        "created_at": int(voice.created_at.timestamp()),
        "type": "audio_sample",
    }
    assert voice.api_key == key and voice.consent.name == "Jo" and voice.transcript == SPOKEN
    assert voice.status == Voice.Status.PENDING and voice.source == Voice.Source.CLIP
    assert voice.clip.name.endswith(f"clip.{container}")
    assert len(callbacks) == 1, "the encoding task is sent once the voice and its consent are committed"


def test_the_voice_speaks_at_once_when_encoded_and_says_it_is_still_being_encoded_before(api, tiny_bark):
    client, _, consent = api
    voice_id = create(client, consent).json()["id"]
    speech = {"model": "tts-1", "input": "In my own voice.", "voice": {"id": voice_id}, "response_format": "wav"}

    pending = openai_error(client.post("/v1/audio/speech", speech, format="json"), 409)
    build_voice_task(str(Voice.objects.get().id))
    spoken = client.post("/v1/audio/speech", speech, format="json")

    assert pending["code"] == "voice_not_ready" and pending["param"] == "voice"
    assert pending["message"] == (
        f"The voice {voice_id!r} is still being encoded from its audio sample by a worker; try again in a few seconds."
    )
    assert spoken.status_code == 200 and len(decode(spoken.content)) > 0
    job = Job.objects.get()
    assert job.voice == f"custom/{Voice.objects.get().id}" and job.engine == "bark" and job.status == "completed"


def test_a_voice_whose_encoding_failed_says_why_when_used(api, settings):
    client, _, consent = api
    voice_id = create(client, consent).json()["id"]
    settings.BARK_MODELS_AVAILABLE = "false"  # the worker cannot load Bark's codec
    reset_engines()
    build_voice_task(str(Voice.objects.get().id))
    speech = {"model": "tts-1", "input": "Hi.", "voice": voice_id}

    error = openai_error(client.post("/v1/audio/speech", speech, format="json"), 400)
    reset_engines()

    assert error["param"] == "voice"
    assert error["message"] == (
        f"voice: The voice {voice_id!r} could not be made: Bark is disabled by BARK_MODELS_AVAILABLE=false."
    )
    assert Voice.objects.get().status == Voice.Status.FAILED and not Job.objects.exists()


def test_another_keys_voice_and_consent_are_not_yours(api):
    client, _, consent = api
    voice_id = create(client, consent).json()["id"]
    stranger = keyed_client("stranger")[0]

    speech = {"model": "tts-1", "input": "Hi.", "voice": voice_id}

    speech = openai_error(stranger.post("/v1/audio/speech", speech, format="json"), 400)
    made = openai_error(create(stranger, consent), 400)
    deleted = openai_error(stranger.delete(f"{URL}/{voice_id}"), 404)

    assert speech["message"] == f"voice: There is no voice {voice_id!r} of yours."
    assert made["param"] == "consent" and f"There is no voice consent {consent!r} of yours." in made["message"]
    assert deleted["message"] == f"There is no voice {voice_id!r} of yours."
    assert Voice.objects.count() == 1


@pytest.mark.parametrize(
    ("fields", "param", "message"),
    [
        ({"name": None}, "name", "This field is required."),
        ({"name": " "}, "name", "may not be blank"),
        ({"name": "x" * 81}, "name", "no more than 80 characters"),
        ({"consent": None}, "consent", "This field is required."),
        ({"consent": "cons_1234"}, "consent", "There is no voice consent 'cons_1234' of yours. Upload the recording"),
        ({"audio_sample": None}, "audio_sample", "No file was submitted."),
        ({"audio_sample": SimpleUploadedFile("s.wav", b"not audio" * 50)}, "audio_sample", "could not be read"),
        ({"audio_sample": SimpleUploadedFile("s.aiff", tone("aiff"))}, "audio_sample", "MP3, WAV, Ogg, AAC, FLAC"),
        ({"audio_sample": SimpleUploadedFile("s.wav", tone("wav", seconds=1.0))}, "audio_sample", "lasts 1.00 s"),
        ({"audio_sample": SimpleUploadedFile("s.wav", tone("wav", volume=0))}, "audio_sample", "The clip is silent."),
        ({"transcript": None}, "transcript", "in the form field 'transcript'"),
        ({"transcript": "word " * 300}, "transcript", "at most 1000"),
        ({"type": "prompt"}, "type", '"prompt" is not a valid choice.'),
    ],
)
def test_a_bad_voice_request_gets_an_openai_400_naming_the_field_and_makes_nothing(
    api, isolated_storage, fields, param, message
):
    client, _, consent = api

    error = openai_error(create(client, consent, **fields), 400)

    assert error["param"] == param and error["type"] == "invalid_request_error" and message in error["message"]
    assert not Voice.objects.exists() and not (isolated_storage / "voices").exists()


def test_without_a_transcript_the_error_says_what_cloning_here_needs(api):
    client, _, consent = api

    error = openai_error(create(client, consent, transcript=None), 400)

    assert error["message"] == (
        "transcript: Give the words spoken in the clip (transcript): this server builds a voice from a clip and its "
        "transcript, since cloning from the audio alone (HuBERT) is not set up here. Send the words spoken in the "
        "audio_sample in the form field 'transcript' (barksite's addition to OpenAI's fields)."
    )


def test_a_sample_over_the_upload_bound_gets_an_openai_413(api):
    client, _, consent = api

    error = openai_error(create(client, consent, audio_sample=SimpleUploadedFile("big.wav", bytes(11 << 20))), 413)

    assert error["code"] == "payload_too_large" and not Voice.objects.exists()


def test_a_voice_is_deleted_by_its_owner_with_its_files(api, isolated_storage):
    client, _, consent = api
    voice_id = create(client, consent).json()["id"]
    clip = Voice.objects.get().clip

    response = client.delete(f"{URL}/{voice_id}")

    assert response.status_code == 200
    assert response.json() == {"id": voice_id, "object": "audio.voice.deleted", "deleted": True}
    assert not Voice.objects.exists() and not clip.storage.exists(clip.name)
    assert openai_error(client.delete(f"{URL}/{voice_id}"), 404)["code"] == "not_found"


def test_openais_python_client_makes_and_deletes_a_voice_unchanged(transactional_db):
    _, raw = new_key()
    transport = httpx2.WSGITransport(app=get_wsgi_application())
    sdk = openai.OpenAI(
        base_url="http://localhost/v1", api_key=raw, http_client=httpx2.Client(transport=transport), max_retries=0
    )
    consent = sdk.audio.voice_consents.create(name="Jo", language="en-US", recording=("jo.wav", tone("wav")))

    voice = sdk.audio.voices.create(
        name="Jo's voice",
        consent=consent.id,
        audio_sample=("sample.webm", tone("webm"), "audio/webm"),
        extra_body={"transcript": SPOKEN},
    )
    with pytest.raises(openai.ConflictError, match="still being encoded"):
        sdk.audio.speech.create(model="tts-1", input="Hi.", voice={"id": voice.id})
    deleted = sdk.audio.voices.delete(voice.id)

    assert voice.object == "audio.voice" and voice.type == "audio_sample" and voice.name == "Jo's voice"
    assert deleted.deleted is True and deleted.object == "audio.voice.deleted" and not Voice.objects.exists()
    with pytest.raises(openai.BadRequestError, match="transcript"):
        sdk.audio.voices.create(name="No words", consent=consent.id, audio_sample=("s.wav", tone("wav")))
