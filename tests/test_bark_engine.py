"""BarkEngine on the tiny random-weight checkpoint: real transformers Bark code, real files, no network."""

import sys

import numpy as np
import pytest
import torch

from synthesis.engines import (
    EngineFailed,
    EngineUnavailable,
    SynthesisCancelled,
    SynthesisOptions,
    get_engine,
)
from synthesis.engines.bark import loading
from synthesis.engines.bark.checkpoint import TINY_SEMANTIC_TOKENS
from synthesis.engines.bark.engine import BarkEngine
from synthesis.engines.bark.scheduler import Scheduler

TINY_SAMPLES = int(np.floor(TINY_SEMANTIC_TOKENS * 75 / 49.9)) * 320


def test_synthesize_returns_one_nonsilent_float32_24khz_waveform_of_the_exact_length_per_segment(bark_engine):
    options = SynthesisOptions(voice="v2/en_speaker_6", seed=1)

    waveforms = bark_engine.synthesize(["Hello there.", "How are you?"], options)

    assert bark_engine.sample_rate == 24_000
    assert len(waveforms) == 2
    for waveform in waveforms:
        assert waveform.dtype == np.float32 and waveform.shape == (TINY_SAMPLES,)
        assert np.isfinite(waveform).all() and waveform.std() > 0.01


def test_the_same_seed_gives_identical_audio_and_another_seed_does_not(bark_engine):
    first = bark_engine.synthesize(["Same words."], SynthesisOptions(seed=7))[0]
    again = bark_engine.synthesize(["Same words."], SynthesisOptions(seed=7))[0]
    other = bark_engine.synthesize(["Same words."], SynthesisOptions(seed=8))[0]

    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_each_batch_is_seeded_by_the_index_of_its_first_segment_so_a_lone_segment_repeats_on_its_own(bark_engine):
    voice = "v2/en_speaker_6"  # with a preset the second segment runs in a batch of its own
    pair = bark_engine.synthesize(["First.", "Second."], SynthesisOptions(voice=voice, seed=20))
    batches = [run.batch for run in bark_engine.last_run]
    alone = bark_engine.synthesize(["Second."], SynthesisOptions(voice=voice, seed=21))[0]

    assert batches == [(0,), (1,)]
    assert np.array_equal(pair[1], alone)


def test_temperature_zero_decodes_greedily_and_repeats_without_a_seed(bark_engine):
    greedy = SynthesisOptions(text_temp=0.0, waveform_temp=0.0)

    assert np.array_equal(
        bark_engine.synthesize(["Greedy."], greedy)[0], bark_engine.synthesize(["Greedy."], greedy)[0]
    )


def test_a_preset_voice_shapes_the_audio_and_an_unknown_preset_fails_clearly(bark_engine):
    english = bark_engine.synthesize(["Voices."], SynthesisOptions(voice="v2/en_speaker_6", seed=3))[0]
    german = bark_engine.synthesize(["Voices."], SynthesisOptions(voice="v2/de_speaker_1", seed=3))[0]

    assert not np.array_equal(english, german)
    with pytest.raises(EngineFailed, match=r"Unknown Bark voice preset 'v2/xx_speaker_1'.*130 v2 presets"):
        bark_engine.synthesize(["Voices."], SynthesisOptions(voice="v2/xx_speaker_1"))


def test_an_uploaded_voice_speaks_with_its_arrays_and_a_missing_or_malformed_one_fails(bark_engine, tiny_bark_dir):
    folder = tiny_bark_dir / "speaker_embeddings" / "v2"
    prompt = {
        key: np.load(folder / f"fr_speaker_2_{key}.npy") for key in ("semantic_prompt", "coarse_prompt", "fine_prompt")
    }

    uploaded = bark_engine.synthesize(
        ["Mine."], SynthesisOptions(voice="custom/abc", voice_prompts={"custom/abc": prompt}, seed=4)
    )[0]
    preset = bark_engine.synthesize(["Mine."], SynthesisOptions(voice="v2/fr_speaker_2", seed=4))[0]

    assert np.array_equal(uploaded, preset)
    with pytest.raises(EngineFailed, match="custom/other was not loaded for this job"):
        bark_engine.synthesize(["Mine."], SynthesisOptions(voice="custom/other", voice_prompts={"custom/abc": prompt}))
    broken = {"custom/abc": {"semantic_prompt": prompt["semantic_prompt"]}}
    with pytest.raises(EngineFailed, match="custom/abc cannot be used: .*missing coarse_prompt, fine_prompt"):
        bark_engine.synthesize(["Mine."], SynthesisOptions(voice="custom/abc", voice_prompts=broken))
    flat = {"custom/abc": {**prompt, "semantic_prompt": np.zeros((2, 2), dtype=np.int64)}}
    with pytest.raises(EngineFailed, match=r"semantic_prompt must be one row of tokens"):
        bark_engine.synthesize(["Mine."], SynthesisOptions(voice="custom/abc", voice_prompts=flat))


def test_on_segment_receives_each_waveform_and_can_cancel_the_rest(bark_engine):
    seen: list[tuple[int, int]] = []

    def stop_after_first(index: int, waveform: np.ndarray) -> bool:
        seen.append((index, len(waveform)))
        return False

    with pytest.raises(SynthesisCancelled):
        bark_engine.synthesize(["One.", "Two.", "Three."], SynthesisOptions(seed=1), stop_after_first)
    assert seen == [(0, TINY_SAMPLES)]


def test_voices_lists_the_130_v2_presets_without_loading_and_defaults_to_en_speaker_6(tiny_bark_dir):
    engine = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto")

    voices = engine.voices()

    assert len(voices) == 130 and voices == sorted(voices) and voices[0] == "v2/de_speaker_0"
    assert engine.default_voice() == "v2/en_speaker_6"
    assert not engine.health().loaded


def test_health_is_ok_for_a_checkpoint_directory_without_loading_it(tiny_bark_dir):
    health = BarkEngine(model=str(tiny_bark_dir), device="auto", mode="auto").health()

    assert health.ok and not health.loaded and health.device == "cpu"
    assert str(tiny_bark_dir) in health.reason


def test_health_and_load_report_loaded_weights(bark_engine):
    health = bark_engine.health()

    assert health.ok and health.loaded and health.reason.startswith("loaded ")


def test_health_tells_how_to_get_weights_when_the_directory_is_missing(tmp_path):
    engine = BarkEngine(model=str(tmp_path / "missing"), device="cpu", mode="auto")

    health = engine.health()

    assert not health.ok and not health.loaded
    assert "does not exist" in health.reason
    assert "hf download suno/bark-small" in health.reason
    assert "manage.py build_bark_checkpoint DIR --arch tiny" in health.reason
    with pytest.raises(EngineUnavailable, match="Bark weights not found"):
        engine.load()


def test_health_tells_how_to_get_weights_for_a_hub_id_not_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))

    health = BarkEngine(model="suno/bark", device="cpu", mode="auto").health()

    assert not health.ok and "suno/bark is not in the Hugging Face cache" in health.reason
    assert "hf download suno/bark" in health.reason


def test_a_hub_id_in_the_hugging_face_cache_resolves_and_loads_offline(tmp_path, monkeypatch, tiny_bark_dir):
    repo = tmp_path / "models--someone--bark-tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    (repo / "snapshots").mkdir()
    (repo / "snapshots" / ("0" * 40)).symlink_to(tiny_bark_dir, target_is_directory=True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    engine = BarkEngine(model="someone/bark-tiny", device="cpu", mode="auto")

    assert engine.health().ok
    engine.load()
    assert engine.health().loaded and len(engine.voices()) == 130


def test_health_reports_disabled_and_load_refuses_when_bark_models_available_is_false(tiny_bark_dir):
    engine = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="false")

    health = engine.health()

    assert not health.ok and health.reason == "disabled by BARK_MODELS_AVAILABLE=false"
    with pytest.raises(EngineUnavailable, match="disabled by BARK_MODELS_AVAILABLE=false"):
        engine.load()


def test_health_reports_a_failed_load_with_its_reason(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    engine = BarkEngine(model=str(tmp_path), device="cpu", mode="auto")
    assert engine.health().ok, "a config.json is all health checks before a load"

    with pytest.raises(EngineUnavailable, match=f"could not load Bark from {tmp_path}"):
        engine.load()

    health = engine.health()
    assert not health.ok and health.reason.startswith(f"could not load Bark from {tmp_path}")


def test_health_names_the_import_that_failed(tiny_bark_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)

    health = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto").health()

    assert not health.ok and health.reason.startswith("cannot import transformers' Bark")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda_is_unavailable_with_a_reason(tiny_bark_dir):
    engine = BarkEngine(model=str(tiny_bark_dir), device="cuda", mode="auto")

    assert "CUDA is not available" in engine.health().reason
    with pytest.raises(EngineUnavailable, match="BARK_DEVICE=cuda but CUDA is not available"):
        engine.load()


def test_get_engine_builds_bark_from_the_settings(tiny_bark):
    engine = get_engine("bark")

    assert isinstance(engine, BarkEngine) and engine.model_id == str(tiny_bark)
    assert engine.health().ok


def test_loading_runs_torch_on_one_thread_and_generation_on_the_processs_thread_count(tiny_bark_dir, monkeypatch):
    # Only the scheduler's thread may run torch on several threads (loading.one_torch_thread says why).
    engine = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto")
    seen, read, scheduler_step = {}, loading.read, Scheduler._step

    def reading(plan):
        seen["loading"] = torch.get_num_threads()
        return read(plan)

    def stepping(self):
        seen["scheduler"] = torch.get_num_threads()
        return scheduler_step(self)

    monkeypatch.setattr(loading, "read", reading)
    monkeypatch.setattr(Scheduler, "_step", stepping)
    suite_threads = torch.get_num_threads()  # bin/test runs one per test worker
    torch.set_num_threads(2)
    try:
        engine.synthesize(["Hello."], SynthesisOptions(seed=1))
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(suite_threads)

    assert seen == {"loading": 1, "scheduler": 2}
    assert after == 2
