"""Cloning from the audio (the `hubert` method): where its two models are found, the quantizer's published file
format, and the prompts it makes, on the tiny random-weight HuBERT and quantizer the project builds."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import HubertConfig, HubertModel

from synthesis.engines import EngineUnavailable, SynthesisOptions
from synthesis.engines.bark.engine import BarkEngine
from synthesis.engines.bark.hubert_checkpoint import build_hubert_checkpoint
from synthesis.engines.bark.prompts import TranscriptError, decode_clip, load_prompt, save_prompt
from synthesis.engines.bark.quantizer import Quantizer, QuantizerError, load_quantizer, save_quantizer
from synthesis.engines.piper.engine import PiperEngine
from tests.test_voice_prompts import wav_bytes

HUB_MODEL = "facebook/hubert-base-ls960"
HUB_QUANTIZER = "GitMylo/bark-voice-cloning/quantifier_hubert_base_ls960_14.pth"


def tone(seconds: float, rate: int = 24_000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return wav_bytes(0.3 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)), rate)


@pytest.fixture(scope="module")
def speech() -> bytes:
    """About 3.7 s of real speech (Piper) at 22.05 kHz, as a WAV file."""
    piper = PiperEngine()
    (waveform,) = piper.synthesize(["Hello there, this is my voice, recorded for a test."], SynthesisOptions(seed=1))
    return wav_bytes(waveform, piper.sample_rate)


@pytest.fixture(scope="module")
def engine(tiny_bark_dir: Path, tiny_hubert: tuple[Path, Path]) -> BarkEngine:
    return BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto", hubert=tuple(map(str, tiny_hubert)))


def reference_tokens(tiny_hubert: tuple[Path, Path], waveform: np.ndarray) -> np.ndarray:
    """The published method written out with plain torch modules: HuBERT's 9th layer, a 2-layer LSTM, a linear layer."""
    model_dir, quantizer_file = tiny_hubert
    hubert = HubertModel.from_pretrained(model_dir).eval()
    state = torch.load(quantizer_file, weights_only=True)
    lstm = torch.nn.LSTM(32, 16, 2, batch_first=True)
    lstm.load_state_dict({key.removeprefix("lstm."): value for key, value in state.items() if key.startswith("lstm.")})
    fc = torch.nn.Linear(16, 10_000)
    fc.load_state_dict({"weight": state["fc.weight"], "bias": state["fc.bias"]})
    with torch.inference_mode():
        layers = hubert(torch.from_numpy(waveform)[None], output_hidden_states=True).hidden_states
        assert len(layers) == 13 and not torch.equal(layers[9], layers[12])  # layer 9 is not simply the last one
        return fc(lstm(layers[9])[0]).argmax(-1)[0].numpy()


# --- the prompts it makes ------------------------------------------------------------------------------------


def test_a_clip_without_a_transcript_becomes_a_prompt_read_from_its_audio(engine, tiny_hubert, speech):
    prompt = engine.clone_voice(speech, None)

    audio = decode_clip(speech, 16_000)
    expected_tokens = (len(audio) - 400) // 320 + 1  # HuBERT's frames: a 400-sample window every 320 samples
    tokens, frames = len(prompt["semantic_prompt"]), prompt["fine_prompt"].shape[1]
    assert engine.cloning_method().name == "hubert"
    assert tokens == expected_tokens and abs(tokens / (len(audio) / 16_000) - 49.9) < 0.7  # the clip's duration
    assert frames == int(np.floor(tokens * 75 / 49.9))
    assert prompt["semantic_prompt"].min() >= 0 and prompt["semantic_prompt"].max() < 10_000
    assert np.array_equal(prompt["semantic_prompt"], reference_tokens(tiny_hubert, audio))


def test_the_semantic_prompt_comes_from_the_audio_not_the_transcript(engine, speech):
    with_words = engine.clone_voice(speech, "Hello there, this is my voice.")
    other_words = engine.clone_voice(speech, "Entirely different words.")
    other_audio = engine.clone_voice(tone(3.7), None)

    assert np.array_equal(with_words["semantic_prompt"], other_words["semantic_prompt"])
    assert not np.array_equal(with_words["semantic_prompt"][:150], other_audio["semantic_prompt"][:150])


def test_a_clip_longer_than_bark_can_match_keeps_the_tokens_and_codes_of_its_last_15_seconds(engine, tiny_hubert):
    clip = tone(20.0)

    prompt = engine.clone_voice(clip, None)

    every_token = reference_tokens(tiny_hubert, decode_clip(clip, 16_000))
    codes = engine.encode_clip(decode_clip(clip))
    assert len(every_token) == 999 and len(prompt["semantic_prompt"]) == 767
    assert np.array_equal(prompt["semantic_prompt"], every_token[-767:])
    assert np.array_equal(prompt["fine_prompt"], codes[:, -1152:])  # floor(767 * 75 / 49.9) frames


def test_a_voice_cloned_from_the_audio_speaks_and_survives_storage(engine, speech):
    prompt = load_prompt(save_prompt(engine.clone_voice(speech, None)))
    options = SynthesisOptions(voice="custom/mine", voice_prompts={"custom/mine": prompt}, seed=3)

    (waveform,) = engine.synthesize(["Now I say something new."], options)

    assert [run.prompt for run in engine.last_run] == ["custom/mine"]
    assert len(waveform) == 15_360 and waveform.std() > 0.01


def test_the_models_load_on_the_first_clip_on_barks_device_and_stay_loaded(tiny_bark_dir, tiny_hubert, speech):
    engine = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto", hubert=tuple(map(str, tiny_hubert)))
    assert engine.hubert.loaded is None and engine.cloning_method().name == "hubert"

    engine.clone_voice(speech, None)
    first = engine.hubert.loaded
    engine.clone_voice(speech, None)

    assert first is not None and engine.hubert.loaded is first
    assert {parameter.device.type for model in first for parameter in model.parameters()} == {engine.device}


def test_the_published_pair_holds_0_48_gb_in_float32_and_0_62_with_a_version_1_quantizer():
    with torch.device("meta"):  # HubertConfig()'s defaults are HuBERT base's sizes
        sizes = [sum(p.numel() for p in model.parameters()) for model in (HubertModel(HubertConfig()), Quantizer())]
        version_1 = sum(p.numel() for p in Quantizer(intermediate_size=4096).parameters())

    assert round(sum(sizes) * 4 / 1e9, 2) == 0.48 and round(sum(sizes) / 1e6) == 120
    assert round((sizes[0] + version_1) * 4 / 1e9, 2) == 0.62


def test_the_transcript_method_can_still_be_asked_for_and_then_needs_the_words(engine, speech):
    by_words = engine.clone_voice(speech, "Hello there, this is my voice.", "transcript")

    assert len(by_words["semantic_prompt"]) == round(len(decode_clip(speech)) / 24_000 * 49.9)
    with pytest.raises(TranscriptError, match="Give the words spoken in the clip"):
        engine.clone_voice(speech, "  ", "transcript")  # hubert was there at upload, and is gone at build time


def test_with_hubert_a_transcript_is_optional_but_one_given_is_still_checked(engine, speech):
    assert engine.check_clip(speech, None) == "wav" and engine.check_clip(speech, "") == "wav"
    with pytest.raises(TranscriptError, match="at most 1000"):
        engine.check_clip(speech, "word " * 400)


def test_without_hubert_a_clip_needs_its_transcript(tiny_bark_dir, speech, tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    engine = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto", hubert=(HUB_MODEL, HUB_QUANTIZER))

    method = engine.cloning_method()

    assert method.name == "transcript" and method.needs_transcript
    with pytest.raises(TranscriptError, match="cloning from the audio alone \\(HuBERT\\) is not set up here"):
        engine.check_clip(speech, None)
    assert engine.check_clip(speech, "Hello there, this is my voice.") == "wav"


# --- where the models are ------------------------------------------------------------------------------------


def test_the_default_models_not_in_the_cache_are_not_downloaded_and_the_reason_says_how_to_get_them(
    tiny_bark_dir, tmp_path, monkeypatch
):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))

    reason = BarkEngine(str(tiny_bark_dir), "cpu", "auto", hubert=(HUB_MODEL, HUB_QUANTIZER)).cloning_method().reason

    assert reason.startswith("HuBERT cloning is not available: facebook/hubert-base-ls960 is not in the Hugging Face")
    assert "`.venv/bin/hf download facebook/hubert-base-ls960`" in reason
    assert "`.venv/bin/hf download GitMylo/bark-voice-cloning quantifier_hubert_base_ls960_14.pth`" in reason


def test_with_downloads_allowed_hub_ids_not_in_the_cache_plan_a_download(tiny_bark_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))

    method = BarkEngine(str(tiny_bark_dir), "cpu", "true", hubert=(HUB_MODEL, HUB_QUANTIZER)).cloning_method()

    assert method.name == "hubert" and "will be downloaded on first use" in method.reason


def test_hub_ids_in_the_hugging_face_cache_resolve_and_load_offline(
    tiny_bark_dir, tiny_hubert, speech, tmp_path, monkeypatch
):
    model_dir, quantizer_file = tiny_hubert
    for repo, target in (("models--someone--hubert-tiny", model_dir), ("models--someone--quantizer", None)):
        snapshot = tmp_path / repo / "snapshots" / ("0" * 40)
        (tmp_path / repo / "refs").mkdir(parents=True)
        (tmp_path / repo / "refs" / "main").write_text("0" * 40)
        if target is not None:
            snapshot.parent.mkdir(parents=True)
            snapshot.symlink_to(target, target_is_directory=True)
        else:
            (snapshot / "tiny").mkdir(parents=True)
            (snapshot / "tiny" / "q.pth").symlink_to(quantizer_file)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    engine = BarkEngine(
        str(tiny_bark_dir), "cpu", "auto", hubert=("someone/hubert-tiny", "someone/quantizer/tiny/q.pth")
    )

    method = engine.cloning_method()

    assert method.name == "hubert" and str(tmp_path) in method.reason
    assert len(engine.clone_voice(speech, None)["semantic_prompt"]) > 150


@pytest.mark.parametrize(
    ("model", "quantizer", "reason"),
    [
        ("missing-dir", "q", "the directory {tmp}/missing-dir does not exist (BARK_HUBERT_MODEL)"),
        ("empty-dir", "q", "the directory {tmp}/empty-dir has no config.json with model.safetensors or pytorch_model"),
        ("m", "missing.pth", "the file {tmp}/missing.pth does not exist (BARK_HUBERT_QUANTIZER"),
        ("", "q", "it is turned off (BARK_HUBERT_MODEL or BARK_HUBERT_QUANTIZER is empty)"),
        ("m", "", "it is turned off"),
    ],
)
def test_a_model_that_cannot_be_found_leaves_the_transcript_method_with_the_reason(
    tiny_bark_dir, tiny_hubert, tmp_path, model, quantizer, reason
):
    (tmp_path / "empty-dir").mkdir()
    paths = {"m": str(tiny_hubert[0]), "q": str(tiny_hubert[1]), "": ""}
    settings_pair = (paths.get(model, str(tmp_path / model)), paths.get(quantizer, str(tmp_path / quantizer)))

    method = BarkEngine(str(tiny_bark_dir), "cpu", "auto", hubert=settings_pair).cloning_method()

    assert method.name == "transcript"
    assert reason.format(tmp=tmp_path) in method.reason


def test_a_quantizer_that_does_not_fit_huberts_features_fails_with_the_reason(
    tiny_bark_dir, tiny_hubert, tmp_path, speech
):
    save_quantizer(Quantizer(input_size=48, hidden_size=8), tmp_path / "wide.pth")
    engine = BarkEngine(str(tiny_bark_dir), "cpu", "auto", hubert=(str(tiny_hubert[0]), str(tmp_path / "wide.pth")))

    with pytest.raises(EngineUnavailable, match="takes 48-dim features but HuBERT from .* gives 32"):
        engine.clone_voice(speech, None)


# --- the quantizer's published file format -------------------------------------------------------------------


def test_a_saved_quantizer_is_a_torch_zip_with_the_published_info_member(tiny_hubert):
    with zipfile.ZipFile(tiny_hubert[1]) as archive:
        info = json.loads(archive.read("quantizer/.info"))
        assert "quantizer/data.pkl" in archive.namelist()

    assert info == {"input_size": 32, "hidden_size": 16, "output_size": 10_000, "version": 0}
    assert set(torch.load(tiny_hubert[1], weights_only=True)) == {
        *(f"lstm.{kind}_{part}_l{layer}" for layer in (0, 1) for kind in ("weight", "bias") for part in ("ih", "hh")),
        "fc.weight",
        "fc.bias",
    }


def test_a_version_1_quantizer_with_its_intermediate_layer_loads_and_clones(tiny_bark_dir, tmp_path, speech):
    model_dir, quantizer_file = build_hubert_checkpoint(tmp_path, arch="tiny", seed=1, version=1)
    engine = BarkEngine(str(tiny_bark_dir), "cpu", "auto", hubert=(str(model_dir), str(quantizer_file)))

    quantizer = load_quantizer(quantizer_file)

    assert quantizer.version == 1 and quantizer.info()["version"] == 1 and quantizer.intermediate is not None
    assert engine.clone_voice(speech, None)["semantic_prompt"].max() < 10_000


def test_a_quantizer_saved_before_the_info_member_existed_loads_by_its_weights(tiny_hubert, tmp_path):
    torch.save(torch.load(tiny_hubert[1], weights_only=True), tmp_path / "old.pth")

    quantizer = load_quantizer(tmp_path / "old.pth")

    assert quantizer.info() == {"input_size": 32, "hidden_size": 16, "output_size": 10_000, "version": 0}


class Pwned:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/barksite-quantizer-pwned"),))


def _info_saying_version_1(path: Path) -> None:
    torch.save(Quantizer(8, 4).state_dict(), path)  # a version 0 model
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(f"{path.stem}/.info", json.dumps({"version": 1}))


@pytest.mark.parametrize(
    ("write", "reason"),
    [
        (lambda path: path.write_bytes(b"not a zip at all"), "not a quantizer checkpoint"),
        (lambda path: torch.save({"fc.weight": Pwned()}, path), "not a quantizer checkpoint"),
        (lambda path: torch.save({"fc.weight": torch.zeros(3)}, path), "lacks lstm.weight_ih_l0"),
        (lambda path: save_quantizer(Quantizer(8, 4, output_size=5_000), path), "outputs 5000 tokens"),
        (_info_saying_version_1, "its .info says version=1 but its weights have 0"),
    ],
    ids=["not a zip", "a pickle with code", "not a quantizer", "wrong vocabulary", "info disagrees"],
)
def test_a_file_that_is_not_a_usable_quantizer_is_refused_with_the_reason(tmp_path, write, reason):
    Path("/tmp/barksite-quantizer-pwned").unlink(missing_ok=True)
    path = tmp_path / "bad.pth"
    write(path)

    with pytest.raises(QuantizerError, match=reason):
        load_quantizer(path)
    assert not Path("/tmp/barksite-quantizer-pwned").exists(), "weights_only: no pickled code ever runs"
