"""GET /api/capabilities: modalities, video presets, bitrates, codecs, notes, engines, voices, limits, auth."""

from tests.api_helpers import client, new_key


def test_capabilities_describe_the_srd_fields_and_ours(db, settings):
    settings.BARK_RATE_LIMIT_PER_MIN = 12

    response = client().get("/api/capabilities")

    assert response.status_code == 200
    body = response.json()
    assert body["modalities"] == ["audio", "video", "captions"]
    assert set(body["video_presets"]) == {"4k", "1080p", "720p"}
    assert body["video_presets"]["1080p"]["width"] == 1920
    assert "192k" in body["audio_bitrates"]
    assert body["codecs"] == {"video": ["libx264"], "audio": ["aac"]}
    assert body["notes"] and all(isinstance(note, str) for note in body["notes"])
    assert {engine["name"] for engine in body["engines"]} == {"bark", "piper"}
    assert body["voices"]["by_engine"] == {"bark": 130, "piper": 1} and "English" in body["voices"]["languages"]
    assert body["limits"]["rate_limit_per_min"] == 12 and body["limits"]["temperature"] == [0.0, 1.5]
    assert body["default_engine"] == "piper" and body["dry_run_default"] is False
    assert body["auth"]["mode"] == "open"


def test_capabilities_say_dry_run_is_the_default_when_no_engine_can_run(db, monkeypatch):
    from synthesis.engines.piper.engine import PiperEngine

    monkeypatch.setattr(PiperEngine, "_missing", lambda self: "switched off")

    body = client().get("/api/capabilities").json()

    assert body["dry_run_default"] is True and body["default_engine"] is None


def test_capabilities_say_a_key_is_needed_once_one_exists(db):
    new_key()

    assert client().get("/api/capabilities").json()["auth"]["mode"] == "key"
