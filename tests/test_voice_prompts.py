"""Voices from uploads: `.npz` presets and reference clips, good and hostile, cloned with the tiny Bark checkpoint."""

import io
import subprocess
import wave
import zipfile
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from synthesis.engines import SynthesisOptions
from synthesis.engines.bark.prompts import (
    MAX_CLIP_BYTES,
    PROMPT_KEYS,
    VoicePromptError,
    load_prompt,
    prompt_from_npz,
    save_prompt,
)
from synthesis.engines.piper.engine import PiperEngine

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


@pytest.fixture(scope="module")
def preset(tiny_bark_dir: Path) -> dict[str, np.ndarray]:
    folder = tiny_bark_dir / "speaker_embeddings" / "v2"
    return {key: np.load(folder / f"en_speaker_0_{key}.npy") for key in PROMPT_KEYS}


def npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def encode(data: bytes, fmt: str, tmp_path: Path) -> bytes:
    """WAV bytes re-encoded by ffmpeg (mp3, flac) into a file, so that its header states its length as usual."""
    path = tmp_path / f"clip.{fmt}"
    command = [FFMPEG, "-nostdin", "-loglevel", "error", "-y", "-i", "pipe:0", str(path)]
    subprocess.run(command, input=data, capture_output=True, check=True, timeout=60)
    return path.read_bytes()


def tone(seconds: float, rate: int = 24_000, level: float = 0.3) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return wav_bytes(level * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)), rate)


SPOKEN = "Hello there, this is my voice, recorded for a test of cloning."


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """About 3 s of real speech from the Piper voice, as WAV, MP3 and FLAC (and a tone over 30 s, as FLAC)."""
    piper = PiperEngine()
    (waveform,) = piper.synthesize([SPOKEN], SynthesisOptions(seed=1))
    wav = wav_bytes(waveform, piper.sample_rate)
    folder = tmp_path_factory.mktemp("speech")
    return {
        "wav": wav,
        "mp3": encode(wav, "mp3", folder),
        "flac": encode(wav, "flac", folder),
        "long": encode(tone(31.0), "flac", folder),
    }


# --- .npz presets ------------------------------------------------------------------------------------------


def test_a_bark_npz_preset_is_read_back_exactly_as_int64_arrays(preset):
    prompt = prompt_from_npz(npz(**preset))

    assert set(prompt) == set(PROMPT_KEYS)
    assert all(prompt[key].dtype == np.int64 and np.array_equal(prompt[key], preset[key]) for key in PROMPT_KEYS)


def test_narrower_integer_dtypes_are_accepted_and_widened(preset):
    prompt = prompt_from_npz(npz(**{key: value.astype(np.uint16) for key, value in preset.items()}))

    assert prompt["fine_prompt"].dtype == np.int64 and np.array_equal(prompt["fine_prompt"], preset["fine_prompt"])


def test_save_and_load_round_trip_through_bytes_a_path_and_an_open_file(preset, tmp_path):
    data = save_prompt(preset)
    path = tmp_path / "voice.npz"
    path.write_bytes(data)

    for source in (data, path, str(path), path.open("rb")):
        loaded = load_prompt(source)
        assert all(np.array_equal(loaded[key], preset[key]) for key in PROMPT_KEYS)


def _bad_npz_cases() -> list[tuple[str, object, str]]:
    """(id, a function of the good preset giving the upload, the reason expected in the error)."""

    def with_(**changes):
        return lambda p: npz(**{**p, **changes})

    def without(key):
        return lambda p: npz(**{k: v for k, v in p.items() if k != key})

    def bomb(p):
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **{**p, "fine_prompt": np.zeros((8, 5_000_000), dtype=np.int8)})
        return buffer.getvalue()

    def header_only(p):
        return npz(**p)[:200]

    return [
        ("empty", lambda p: b"", "empty"),
        ("not a zip", lambda p: b"hello, I am a text file", "not an .npz"),
        ("damaged zip", header_only, "damaged"),
        ("too big", lambda p: b"PK\x03\x04" + bytes(3 * 1024 * 1024), "at most"),
        ("missing key", without("fine_prompt"), "missing fine_prompt"),
        ("extra key", with_(speaker_name=np.arange(3)), "unexpected speaker_name"),
        ("2-D semantic", with_(semantic_prompt=np.zeros((2, 8), dtype=np.int64)), "one row of tokens"),
        ("3-row coarse", lambda p: npz(**{**p, "coarse_prompt": p["fine_prompt"][:3]}), r"shape \(2, frames\)"),
        ("7-row fine", lambda p: npz(**{**p, "fine_prompt": p["fine_prompt"][:7]}), r"shape \(8, frames\)"),
        ("widths differ", lambda p: npz(**{**p, "coarse_prompt": p["coarse_prompt"][:, :-5]}), "same frames"),
        (
            "frames do not match tokens",
            lambda p: npz(**{**p, "semantic_prompt": np.concatenate([p["semantic_prompt"]] * 4)}),
            "do not belong together",
        ),
        ("semantic out of range", with_(semantic_prompt=np.full(16, 10_000)), r"outside 0\.\.9999"),
        ("negative code", lambda p: npz(**{**p, "fine_prompt": -p["fine_prompt"] - 1}), r"outside 0\.\.1023"),
        ("code out of range", lambda p: npz(**{**p, "coarse_prompt": p["coarse_prompt"] + 1024}), r"0\.\.1023"),
        ("float dtype", lambda p: npz(**{**p, "semantic_prompt": p["semantic_prompt"] * 1.0}), "not float64"),
        ("too few tokens", with_(semantic_prompt=np.arange(4)), "8 to 1024"),
        ("huge semantic", with_(semantic_prompt=np.zeros(50_000, dtype=np.int64)), "8 to 1024"),
        ("huge unpacked", with_(fine_prompt=np.zeros((8, 20_000), dtype=np.int64)), "unpack to more than"),
        ("zip bomb", bomb, "unpack to more than"),
        ("pickled objects", with_(semantic_prompt=np.array([{"x": 1}], dtype=object)), "not object"),
    ]


@pytest.mark.parametrize(
    ("upload", "reason"), [case[1:] for case in _bad_npz_cases()], ids=[case[0] for case in _bad_npz_cases()]
)
def test_a_bad_npz_is_refused_with_a_reason(preset, upload, reason):
    with pytest.raises(VoicePromptError, match=reason):
        prompt_from_npz(upload(preset))


def test_a_pickle_in_an_npz_is_never_unpickled(preset, tmp_path, monkeypatch):
    import pickle

    class Boom:
        def __reduce__(self):
            return (Path(tmp_path / "pwned").touch, ())

    data = npz(**{**preset, "semantic_prompt": np.array([Boom()], dtype=object)})
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))

    with pytest.raises(VoicePromptError):
        prompt_from_npz(data)
    assert not (tmp_path / "pwned").exists()


# --- reference clips ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["wav", "mp3", "flac"])
def test_a_spoken_clip_becomes_a_prompt_of_its_own_length(bark_engine, speech, fmt):
    prompt = bark_engine.clone_voice(speech[fmt], SPOKEN)

    tokens, frames = len(prompt["semantic_prompt"]), prompt["fine_prompt"].shape[1]
    assert 2.0 < tokens / 49.9 < 6.0  # Piper says this in about 3-4 s
    assert frames == int(np.floor(tokens * 75 / 49.9))
    assert np.array_equal(prompt["coarse_prompt"], prompt["fine_prompt"][:2])
    assert prompt["semantic_prompt"].max() < 10_000 and prompt["fine_prompt"].max() < 1024


def test_the_clips_codes_are_bark_codecs_codes_of_the_clips_end(bark_engine, speech):
    from synthesis.engines.bark.prompts import decode_clip

    prompt = bark_engine.clone_voice(speech["wav"], SPOKEN)
    codes = bark_engine.encode_clip(decode_clip(speech["wav"]))

    assert codes.shape[0] == 8
    assert np.array_equal(prompt["fine_prompt"], codes[:, codes.shape[1] - prompt["fine_prompt"].shape[1] :])


def test_a_cloned_voice_is_usable_for_synthesis_and_survives_storage(bark_engine, speech):
    prompt = load_prompt(save_prompt(bark_engine.clone_voice(speech["mp3"], SPOKEN)))
    options = SynthesisOptions(voice="custom/mine", voice_prompts={"custom/mine": prompt}, seed=3)

    cloned = bark_engine.synthesize(["Now I say something new.", "And more."], options)
    prompts = [run.prompt for run in bark_engine.last_run]
    preset = bark_engine.synthesize(["Now I say something new."], SynthesisOptions(voice="v2/en_speaker_0", seed=3))[0]

    assert prompts == ["custom/mine", "custom/mine"]
    assert all(len(waveform) == 15_360 and waveform.std() > 0.01 for waveform in cloned)
    assert not np.array_equal(cloned[0], preset)


def test_a_clip_longer_than_the_semantic_model_can_match_keeps_its_end(bark_engine, monkeypatch):
    from synthesis.engines.bark import prompts as voice_prompts
    from synthesis.engines.bark.prompts import decode_clip

    assert voice_prompts.MAX_CLIP_SEMANTIC_TOKENS == 1024 - 257  # positions less Bark's text input (about 15 s)
    monkeypatch.setattr(voice_prompts, "MAX_CLIP_SEMANTIC_TOKENS", 100)  # the same rule at 2 s, cheaply
    clip = tone(3.0)

    prompt = bark_engine.clone_voice(clip, "A steady tone.")

    codes = bark_engine.encode_clip(decode_clip(clip))
    assert len(prompt["semantic_prompt"]) == 100
    assert np.array_equal(prompt["fine_prompt"], codes[:, -150:])  # floor(100 * 75 / 49.9) of the clip's 225 frames


def test_a_wav_streamed_without_its_length_in_the_header_is_not_mistaken_for_a_truncated_one(bark_engine, speech):
    command = [FFMPEG, "-nostdin", "-loglevel", "error", "-i", "pipe:0", "-f", "wav", "pipe:1"]
    streamed = subprocess.run(command, input=speech["wav"], capture_output=True, check=True, timeout=60).stdout
    assert streamed[4:8] == b"\xff\xff\xff\xff"  # ffmpeg cannot seek back on a pipe to fill in the size

    assert len(bark_engine.clone_voice(streamed, SPOKEN)["semantic_prompt"]) > 100


def _bad_clip_cases() -> list[tuple[str, object, str, str]]:
    """(id, a function of the good clips giving the upload, its transcript, the reason expected)."""

    def half(fmt):
        return lambda clips: clips[fmt][: len(clips[fmt]) // 2]

    silent = wav_bytes(np.zeros(3 * 24_000), 24_000)
    return [
        ("too short", lambda clips: tone(1.0), SPOKEN, r"lasts 1\.00 s"),
        ("too long", lambda clips: clips["long"], SPOKEN, "more than 30 s"),
        ("truncated wav", half("wav"), SPOKEN, "truncated"),
        ("truncated mp3", half("mp3"), SPOKEN, "truncated"),
        ("truncated flac", half("flac"), SPOKEN, "truncated"),
        (
            "not audio",
            lambda clips: b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40,
            SPOKEN,
            "could not be read as audio",
        ),
        ("text file", lambda clips: b"just some words, no sound at all\n" * 100, SPOKEN, "could not be read as audio"),
        ("empty file", lambda clips: b"", SPOKEN, "empty"),
        ("oversized", lambda clips: bytes(MAX_CLIP_BYTES + 1), SPOKEN, "at most"),
        ("silent", lambda clips: silent, SPOKEN, "silent"),
        ("empty transcript", lambda clips: clips["wav"], "   \n", "Give the words spoken in the clip"),
        ("huge transcript", lambda clips: clips["wav"], "word " * 400, "at most 1000"),
    ]


@pytest.mark.parametrize(
    ("upload", "transcript", "reason"),
    [case[1:] for case in _bad_clip_cases()],
    ids=[case[0] for case in _bad_clip_cases()],
)
def test_a_bad_clip_is_refused_with_a_reason(bark_engine, speech, upload, transcript, reason):
    with pytest.raises(VoicePromptError, match=reason):
        bark_engine.clone_voice(upload(speech), transcript)


def test_a_container_outside_the_accepted_ones_is_refused_even_holding_audio(bark_engine, tmp_path):
    path = tmp_path / "clip.aiff"
    command = [FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=220:duration=3", str(path)]
    subprocess.run(command, check=True, timeout=60)

    with pytest.raises(VoicePromptError, match="MP3, WAV, Ogg, AAC, FLAC, WebM or MP4"):
        bark_engine.clone_voice(path.read_bytes(), SPOKEN)


def test_a_zip_disguised_as_audio_is_refused(bark_engine, preset):
    with pytest.raises(VoicePromptError, match="could not be read as audio"):
        bark_engine.clone_voice(npz(**preset), SPOKEN)


def test_an_npz_member_whose_header_claims_more_data_than_it_has_is_refused(preset):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key, value in preset.items():
            raw = io.BytesIO()
            np.save(raw, value)
            data = raw.getvalue()
            archive.writestr(f"{key}.npy", data[: len(data) // 2] if key == "fine_prompt" else data)

    with pytest.raises(VoicePromptError, match="damaged"):
        prompt_from_npz(buffer.getvalue())
