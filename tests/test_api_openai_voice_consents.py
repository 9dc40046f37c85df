"""/v1/audio/voice_consents: OpenAI's consent recordings (create, list, retrieve, update, delete), the caller's own,
in OpenAI's objects and error shape, and OpenAI's Python client using them."""

import time

import httpx2
import openai
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.wsgi import get_wsgi_application

from synthesis.models import Voice, VoiceConsent
from tests.api_helpers import client as keyless_client
from tests.api_helpers import keyed_client, new_key
from tests.media_decode import tone

URL = "/v1/audio/voice_consents"


def recording(container: str = "wav", **tone_options) -> SimpleUploadedFile:
    return SimpleUploadedFile(f"consent.{container}", tone(container, **tone_options))


def upload(api, **fields):
    body = {"name": "Jo Doe", "language": "en-US", "recording": recording(), **fields}
    return api.post(URL, {name: value for name, value in body.items() if value is not None}, format="multipart")


def openai_error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


@pytest.fixture
def api(db):
    return keyed_client()


def test_a_consent_recording_is_stored_for_its_key_as_the_container_it_is_and_answered_as_openais_object(api):
    client, key = api
    ogg = tone("ogg")

    response = upload(client, recording=SimpleUploadedFile("consent.mp3", ogg, "audio/mpeg"))  # told by its bytes

    assert response.status_code == 200, response.content
    body = response.json()
    consent = VoiceConsent.objects.get()
    assert body == {
        "object": "audio.voice_consent",
        "id": f"cons_{consent.id.hex}",
        "name": "Jo Doe",
        "language": "en-US",
        "created_at": int(consent.created_at.timestamp()),
    }
    assert abs(body["created_at"] - time.time()) < 60
    assert consent.api_key == key and consent.owner is None
    assert consent.recording.name == f"consents/{consent.id}/recording.ogg"
    assert consent.recording.read() == ogg


@pytest.mark.parametrize(
    ("fields", "param", "message"),
    [
        ({"name": None}, "name", "This field is required."),
        ({"name": "   "}, "name", "may not be blank"),
        ({"name": "x" * 201}, "name", "no more than 200 characters"),
        ({"language": None}, "language", "This field is required."),
        ({"language": "English!"}, "language", "'English!' is not a BCP 47 language tag; use one such as 'en-US'."),
        ({"recording": None}, "recording", "No file was submitted."),
        ({"recording": SimpleUploadedFile("c.wav", b"")}, "recording", "The submitted file is empty."),
        ({"recording": SimpleUploadedFile("c.wav", b"words " * 99)}, "recording", "could not be read as audio"),
        ({"recording": recording("aiff")}, "recording", "upload an MP3, WAV, Ogg, AAC, FLAC, WebM or MP4 file"),
        ({"recording": recording(seconds=0.5)}, "recording", "lasts 0.50 s; a consent lasts at least 1 s"),
        ({"recording": recording(volume=0.0)}, "recording", "The recording is silent."),
    ],
)
def test_a_bad_consent_gets_an_openai_400_naming_the_field_and_stores_nothing(
    api, isolated_storage, fields, param, message
):
    error = openai_error(upload(api[0], **fields), 400)

    assert error["param"] == param and error["type"] == "invalid_request_error" and error["code"] == "invalid"
    assert message in error["message"]
    assert not VoiceConsent.objects.exists() and not (isolated_storage / "consents").exists()


def test_a_body_over_the_upload_bound_gets_an_openai_413(api):
    big = SimpleUploadedFile("big.wav", bytes(11 * 1024 * 1024))

    error = openai_error(upload(api[0], recording=big), 413)

    assert error["code"] == "payload_too_large" and not VoiceConsent.objects.exists()


def test_json_instead_of_a_multipart_upload_gets_an_openai_415(api):
    error = openai_error(api[0].post(URL, {"name": "Jo", "language": "en"}, format="json"), 415)

    assert error["code"] == "unsupported_media_type"


def test_the_list_is_newest_first_in_pages_of_limit_after_an_id_and_holds_only_the_callers(api):
    client, _ = api
    ids = [upload(client, name=f"consent {n}").json()["id"] for n in range(3)]
    upload(keyed_client("stranger")[0], name="not yours")

    first = client.get(URL, {"limit": 2}).json()
    second = client.get(URL, {"limit": 2, "after": first["last_id"]}).json()
    whole = client.get(URL).json()

    assert [item["id"] for item in first["data"]] == ids[:0:-1] and first["has_more"] is True
    assert first["object"] == "list" and first["first_id"] == ids[2] and first["last_id"] == ids[1]
    assert [item["id"] for item in second["data"]] == [ids[0]] and second["has_more"] is False
    assert [item["name"] for item in whole["data"]] == ["consent 2", "consent 1", "consent 0"]
    assert client.get(URL, {"after": ids[0]}).json() == {
        "object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("query", "param", "message"),
    [
        ({"limit": 0}, "limit", "greater than or equal to 1"),
        ({"limit": 101}, "limit", "less than or equal to 100"),
        ({"limit": "many"}, "limit", "A valid integer is required."),
        ({"after": "cons_" + "0" * 32}, "after", "There is no voice consent 'cons_000"),
    ],
)
def test_a_bad_page_request_gets_an_openai_400(api, query, param, message):
    error = openai_error(api[0].get(URL, query), 400)

    assert error["param"] == param and message in error["message"]


def test_a_consent_is_retrieved_and_renamed_by_its_owner_only(api):
    client, _ = api
    consent = upload(client).json()
    stranger = keyed_client("stranger")[0]
    detail = f"{URL}/{consent['id']}"
    stored = VoiceConsent.objects.get().recording.read()

    renamed = client.post(detail, {"name": "  Jo Q. Doe "}, format="json")

    assert renamed.status_code == 200 and renamed.json() == {**consent, "name": "Jo Q. Doe"}
    assert client.get(detail).json() == renamed.json()
    assert VoiceConsent.objects.get().name == "Jo Q. Doe" and VoiceConsent.objects.get().recording.read() == stored
    for other in (
        stranger.get(detail),
        stranger.post(detail, {"name": "Mine"}, format="json"),
        stranger.delete(detail),
    ):
        assert openai_error(other, 404)["message"] == f"There is no voice consent {consent['id']!r} of yours."
    assert VoiceConsent.objects.get().name == "Jo Q. Doe"


@pytest.mark.parametrize(
    ("body", "message"),
    [({}, "This field is required."), ({"name": ""}, "may not be blank"), ({"name": 7 * "x" * 30}, "no more than 200")],
)
def test_a_bad_rename_gets_an_openai_400_and_keeps_the_name(api, body, message):
    consent = upload(api[0]).json()

    error = openai_error(api[0].post(f"{URL}/{consent['id']}", body, format="json"), 400)

    assert error["param"] == "name" and message in error["message"]
    assert VoiceConsent.objects.get().name == "Jo Doe"


@pytest.mark.parametrize("consent_id", ["nope", "cons_xyz", "cons_" + "0" * 32, "voice_" + "0" * 32])
def test_an_id_that_names_no_consent_of_yours_gets_an_openai_404(api, consent_id):
    error = openai_error(api[0].get(f"{URL}/{consent_id}"), 404)

    assert error["code"] == "not_found" and consent_id in error["message"]


def test_deleting_a_consent_removes_its_recording_unless_a_voice_made_with_it_remains(api, isolated_storage):
    client, key = api
    consent = upload(client).json()
    row = VoiceConsent.objects.get()
    voice = Voice.objects.create(name="Made with it", source=Voice.Source.CLIP, api_key=key, consent=row)

    voice_id = f"voice_{voice.id.hex}"

    refused = openai_error(client.delete(f"{URL}/{consent['id']}"), 409)
    voice.delete()
    deleted = client.delete(f"{URL}/{consent['id']}")

    assert refused["code"] == "conflict" and voice_id in refused["message"]
    assert "delete them first (DELETE /v1/audio/voices/{voice_id})" in refused["message"]
    assert deleted.status_code == 200
    assert deleted.json() == {"id": consent["id"], "object": "audio.voice_consent", "deleted": True}
    assert not VoiceConsent.objects.exists() and not row.recording.storage.exists(row.recording.name)
    assert openai_error(client.get(f"{URL}/{consent['id']}"), 404)["code"] == "not_found"


def test_a_missing_key_gets_an_openai_401(db):
    new_key()

    error = openai_error(keyless_client().get(URL), 401)

    assert error["type"] == "authentication_error"


def test_openais_python_client_manages_consents_unchanged(transactional_db):
    _, raw = new_key()
    transport = httpx2.WSGITransport(app=get_wsgi_application())
    sdk = openai.OpenAI(
        base_url="http://localhost/v1", api_key=raw, http_client=httpx2.Client(transport=transport), max_retries=0
    )

    made = [
        sdk.audio.voice_consents.create(
            name=f"Jo {n}", language="en-GB", recording=("jo.mp3", tone("mp3"), "audio/mpeg")
        )
        for n in range(3)
    ]
    listed = list(sdk.audio.voice_consents.list(limit=2))  # the client follows `after` across both pages
    renamed = sdk.audio.voice_consents.update(made[0].id, name="Jo Senior")
    deleted = sdk.audio.voice_consents.delete(made[1].id)

    assert all(consent.object == "audio.voice_consent" and consent.id.startswith("cons_") for consent in made)
    assert [consent.id for consent in listed] == [consent.id for consent in reversed(made)]
    assert renamed.name == "Jo Senior" and sdk.audio.voice_consents.retrieve(made[0].id).name == "Jo Senior"
    assert deleted.deleted is True and deleted.id == made[1].id
    assert sorted(VoiceConsent.objects.values_list("name", flat=True)) == ["Jo 2", "Jo Senior"]
    with pytest.raises(openai.NotFoundError):
        sdk.audio.voice_consents.retrieve(made[1].id)
    with pytest.raises(openai.BadRequestError, match="language"):
        sdk.audio.voice_consents.create(name="Jo", language="??", recording=("jo.wav", tone("wav")))
