"""/api/voices: the catalogue, and voices uploaded as a Bark .npz or a reference clip, cloned from its audio
(HuBERT, where its models are) or from its transcript."""

import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from synthesis.engines import SynthesisOptions, reset_engines
from synthesis.engines.bark.cloning import NO_TRANSCRIPT
from synthesis.engines.bark.prompts import decode_clip, save_prompt
from synthesis.engines.piper.engine import PiperEngine
from synthesis.jobs.voices import prompt_arrays
from synthesis.media.audio import write_wav
from synthesis.models import Job, Voice
from synthesis.tasks import build_voice_task
from tests.api_helpers import error_of, keyed_client, run


def npz_upload(**overrides) -> SimpleUploadedFile:
    rng = np.random.default_rng(0)
    arrays = {
        "semantic_prompt": rng.integers(0, 10_000, 16),
        "coarse_prompt": rng.integers(0, 1024, (2, 24)),
        "fine_prompt": rng.integers(0, 1024, (8, 24)),
        **overrides,
    }
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return SimpleUploadedFile("voice.npz", buffer.getvalue())


@pytest.fixture(scope="module")
def spoken_clip() -> bytes:
    """Three seconds of real speech (Piper), as a WAV file."""
    engine = PiperEngine()
    (waveform,) = engine.synthesize(
        ["Hello there, this is a short recording of my own voice for cloning."], SynthesisOptions(seed=1)
    )
    buffer = io.BytesIO()
    write_wav(buffer, engine.sample_rate, waveform)
    return buffer.getvalue()


def test_the_catalogue_lists_barks_130_presets_by_language_and_pipers_voice(db):
    api, _ = keyed_client()

    body = api.get("/api/voices").json()

    bark = [v for v in body["voices"] if v["engine"] == "bark"]
    assert len(bark) == 130 and {v["language"] for v in bark} >= {"English", "Japanese", "Hindi"}
    assert {
        "id": "piper/en_US-joe-medium",
        "engine": "piper",
        "language": "English",
        "name": "Joe (Piper, US)",
    } in body["voices"]
    assert body["yours"] == []


def test_an_npz_voice_is_ready_at_once_and_only_its_key_can_use_it(db, tiny_bark):
    api, key = keyed_client()
    stranger, _ = keyed_client("stranger")

    response = api.post("/api/voices", {"name": "Narrator", "npz": npz_upload()}, format="multipart")

    assert response.status_code == 201, response.json()
    voice = response.json()
    assert voice["status"] == "ready" and voice["id"].startswith("custom/") and voice["source"] == "npz"
    assert Voice.objects.get(pk=voice["id"].removeprefix("custom/")).api_key == key
    job = api.post("/api/bark/synthesize", {"prompt": "Mine.", "voice": voice["id"]}, format="json").json()
    assert run(job["job_id"]).status == Job.Status.COMPLETED
    refused = stranger.post("/api/bark/synthesize", {"prompt": "Theirs.", "voice": voice["id"]}, format="json")
    assert refused.status_code == 400 and "There is no voice" in error_of(refused)["fields"]["voice"][0]
    assert stranger.get(f"/api/voices/{voice['id']}").status_code == 404
    assert api.get("/api/voices").json()["yours"][0]["name"] == "Narrator"


@pytest.mark.parametrize(
    ("upload", "message"),
    [
        (npz_upload(extra=np.zeros(3, dtype=np.int64)), "extra"),
        (npz_upload(fine_prompt=np.zeros((7, 24), dtype=np.int64)), "fine_prompt"),
        (npz_upload(semantic_prompt=np.full(16, 10_000)), "semantic_prompt"),
        (npz_upload(coarse_prompt=np.zeros((2, 24), dtype=np.float32)), "coarse_prompt"),
        (SimpleUploadedFile("voice.npz", b"not a zip at all"), "npz"),
    ],
)
def test_a_bad_npz_gets_400_with_the_reason_and_creates_nothing(db, upload, message):
    api, _ = keyed_client()

    response = api.post("/api/voices", {"name": "Bad", "npz": upload}, format="multipart")

    assert response.status_code == 400
    assert message in error_of(response)["fields"]["npz"][0]
    assert Voice.objects.count() == 0


def test_a_clip_voice_is_pending_until_a_worker_encodes_it(
    db, without_hubert, spoken_clip, django_capture_on_commit_callbacks
):
    api, key = keyed_client()
    clip = SimpleUploadedFile("me.wav", spoken_clip)

    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post(
            "/api/voices", {"name": "Me", "clip": clip, "transcript": "Hello there, this is me."}, format="multipart"
        )

    assert response.status_code == 202 and response.json()["status"] == "pending"
    assert response.json()["method"] == "", "the worker decides the method when it builds the voice"
    assert len(callbacks) == 1, "the encoding task is sent once the voice row is committed"
    voice_id = response.json()["id"]
    build_voice_task(voice_id.removeprefix("custom/"))
    voice = api.get(f"/api/voices/{voice_id}").json()
    assert voice["status"] == "ready" and voice["error"] == ""
    prompt = prompt_arrays(Voice.objects.get(pk=voice_id.removeprefix("custom/")))
    assert prompt["fine_prompt"].shape[0] == 8 and prompt["coarse_prompt"].shape[0] == 2


def test_with_hubert_a_clip_without_a_transcript_becomes_a_voice_read_from_its_audio_that_speaks(
    db, hubert_cloning, spoken_clip
):
    api, _ = keyed_client()
    cloning = api.get("/api/capabilities").json()["cloning"]

    response = api.post(
        "/api/voices", {"name": "Me", "clip": SimpleUploadedFile("me.wav", spoken_clip)}, format="multipart"
    )
    voice_id = response.json()["id"]
    build_voice_task(voice_id.removeprefix("custom/"))

    assert cloning["method"] == "hubert" and cloning["needs_transcript"] is False
    assert cloning["reason"].startswith(f"HuBERT found in {hubert_cloning[0]}")
    assert response.status_code == 202 and response.json()["transcript"] == ""
    voice = api.get(f"/api/voices/{voice_id}").json()
    assert voice["status"] == "ready" and voice["method"] == "hubert" and voice["error"] == ""
    assert api.get("/api/voices").json()["yours"][0]["method"] == "hubert"
    row = Voice.objects.get(pk=voice_id.removeprefix("custom/"))
    semantic = prompt_arrays(row)["semantic_prompt"]
    samples = len(decode_clip(spoken_clip, 16_000))
    assert len(semantic) == (samples - 400) // 320 + 1  # one token per HuBERT frame: 49.9 a second of the clip
    assert semantic.min() >= 0 and semantic.max() < 10_000
    assert row.method == Voice.Method.HUBERT and not row.clip, "the clip is dropped once the prompt is kept"
    job = api.post("/api/bark/synthesize", {"prompt": "Now in my voice.", "voice": voice_id}, format="json").json()
    done = run(job["job_id"])
    assert done.status == Job.Status.COMPLETED and done.voice == voice_id and done.duration_s > 0.5


def test_without_the_models_a_clip_voice_is_built_from_its_transcript_and_says_so(db, without_hubert, spoken_clip):
    api, _ = keyed_client()
    cloning = api.get("/api/capabilities").json()["cloning"]
    upload = {"name": "Me", "clip": SimpleUploadedFile("me.wav", spoken_clip), "transcript": "Hello there."}

    voice_id = api.post("/api/voices", upload, format="multipart").json()["id"]
    build_voice_task(voice_id.removeprefix("custom/"))

    assert cloning["method"] == "transcript" and cloning["needs_transcript"] is True
    assert cloning["reason"].startswith(
        "HuBERT cloning is not available: facebook/hubert-base-ls960 is not in the Hugging Face cache"
    )
    voice = api.get(f"/api/voices/{voice_id}").json()
    assert voice["status"] == "ready" and voice["method"] == "transcript" and voice["transcript"] == "Hello there."
    semantic = prompt_arrays(Voice.objects.get(pk=voice_id.removeprefix("custom/")))["semantic_prompt"]
    assert len(semantic) == round(len(decode_clip(spoken_clip)) / 24_000 * 49.9)  # as many tokens as the clip lasts


@pytest.mark.parametrize("hubert", ["available", "unavailable"])
@pytest.mark.parametrize("transcript", [None, "   "])
def test_a_clip_without_a_transcript_is_refused_only_when_hubert_is_not_available(
    db, request, spoken_clip, hubert, transcript
):
    request.getfixturevalue("hubert_cloning" if hubert == "available" else "without_hubert")
    api, _ = keyed_client()
    upload = {"name": "Me", "clip": SimpleUploadedFile("me.wav", spoken_clip)}
    if transcript is not None:
        upload["transcript"] = transcript

    response = api.post("/api/voices", upload, format="multipart")

    if hubert == "available":
        assert response.status_code == 202 and Voice.objects.get().status == Voice.Status.PENDING
    else:
        assert response.status_code == 400 and error_of(response)["fields"] == {"transcript": [NO_TRANSCRIPT]}
        assert Voice.objects.count() == 0


def test_a_voice_uploaded_without_transcript_fails_with_the_reason_when_hubert_is_gone_by_the_time_it_is_built(
    db, settings, hubert_cloning, spoken_clip
):
    api, _ = keyed_client()
    upload = {"name": "Me", "clip": SimpleUploadedFile("me.wav", spoken_clip)}
    voice_id = api.post("/api/voices", upload, format="multipart").json()["id"]
    settings.BARK_HUBERT_MODEL = ""  # the operator turned it off before a worker got to the clip
    reset_engines()

    build_voice_task(voice_id.removeprefix("custom/"))

    voice = api.get(f"/api/voices/{voice_id}").json()
    assert voice["status"] == "failed" and voice["method"] == "transcript" and voice["error"] == NO_TRANSCRIPT


def test_a_pending_voice_cannot_be_used_yet(db, spoken_clip):
    api, _ = keyed_client()
    voice = api.post(
        "/api/voices",
        {"name": "Me", "clip": SimpleUploadedFile("me.wav", spoken_clip), "transcript": "Hi."},
        format="multipart",
    ).json()

    response = api.post("/api/bark/synthesize", {"prompt": "Hi.", "voice": voice["id"]}, format="json")

    assert response.status_code == 400 and "pending, not ready" in error_of(response)["fields"]["voice"][0]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"clip": b"this is not audio"}, "clip", "could not be read as audio"),
        ({"clip": b""}, "clip", "empty"),
        ({"clip": "truncated"}, "clip", "truncated"),
        ({"clip": "short"}, "clip", "lasts"),
        ({"clip": "ok", "transcript": "  "}, "transcript", "words spoken"),
        ({}, "npz", "exactly one"),
    ],
)
def test_a_bad_clip_gets_400_at_once_and_creates_nothing(db, without_hubert, spoken_clip, fields, field, message):
    api, _ = keyed_client()
    clips = {"truncated": spoken_clip[: len(spoken_clip) // 2], "short": _short_wav(), "ok": spoken_clip}
    data = {"name": "Me", "transcript": fields.get("transcript", "Hello there.")}
    if "clip" in fields:
        raw = fields["clip"]
        data["clip"] = SimpleUploadedFile("me.wav", clips.get(raw, raw) if isinstance(raw, str) else raw)

    response = api.post("/api/voices", data, format="multipart")

    assert response.status_code == 400
    assert message in error_of(response)["fields"][field][0]
    assert Voice.objects.count() == 0


def _short_wav() -> bytes:
    buffer = io.BytesIO()
    write_wav(buffer, 24000, 0.3 * np.sin(np.linspace(0, 400, 24000)).astype(np.float32))  # one second
    return buffer.getvalue()


def test_an_upload_over_the_size_bound_gets_413(db):
    api, _ = keyed_client()
    big = SimpleUploadedFile("big.wav", b"\0" * (11 * 1024 * 1024))

    response = api.post("/api/voices", {"name": "Big", "clip": big, "transcript": "Hi."}, format="multipart")

    assert response.status_code == 413 and error_of(response)["code"] == "payload_too_large"


def test_a_voice_can_be_deleted_by_its_owner(db):
    api, _ = keyed_client()
    voice = api.post("/api/voices", {"name": "Gone", "npz": npz_upload()}, format="multipart").json()
    stored = Voice.objects.get().prompt_file

    assert api.delete(f"/api/voices/{voice['id']}").status_code == 204
    assert api.get(f"/api/voices/{voice['id']}").status_code == 404
    assert not stored.storage.exists(stored.name)


@pytest.mark.usefixtures("artifact_storage")  # the prompt file on the local disk, and in an S3 bucket
def test_save_prompt_round_trips_through_the_stored_file(db):
    prompt = {
        "semantic_prompt": np.arange(16),
        "coarse_prompt": np.zeros((2, 24), dtype=np.int64),
        "fine_prompt": np.ones((8, 24), dtype=np.int64),
    }
    api, _ = keyed_client()
    upload = SimpleUploadedFile("v.npz", save_prompt(prompt))

    api.post("/api/voices", {"name": "Round", "npz": upload}, format="multipart")

    loaded = prompt_arrays(Voice.objects.get())
    assert all(np.array_equal(loaded[k], prompt[k]) for k in prompt)
