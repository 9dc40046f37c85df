"""Long-form Bark on the tiny checkpoint: batches of one voice, a carried voice, dialogue, seeds and streaming order.

The tiny checkpoint always generates 32 semantic tokens (0.64 s); rows of other lengths are fed to the stages directly.
"""

import numpy as np
import pytest
import torch

from synthesis.engines import EngineFailed, SynthesisCancelled, SynthesisOptions
from synthesis.engines.bark.engine import BarkEngine
from synthesis.engines.bark.stages import Sampling
from tests.fixtures_bark import GREEDY, TEXTS


def one_at_a_time(engine: BarkEngine, texts: list[str], voices: list[str | None], **options) -> list[np.ndarray]:
    return [
        engine.synthesize([text], SynthesisOptions(voice=voice, **options))[0]
        for text, voice in zip(texts, voices, strict=True)
    ]


def test_a_jobs_first_segment_runs_alone_then_the_rest_share_batches_of_up_to_max_batch(bark_engine, tiny_bark_dir):
    small = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto", max_batch=3)

    bark_engine.synthesize(TEXTS, SynthesisOptions(voice="v2/en_speaker_3", **GREEDY))
    small.synthesize(TEXTS, SynthesisOptions(voice="v2/en_speaker_3", **GREEDY))

    assert [run.batch for run in bark_engine.last_run] == [(0,), *[(1, 2, 3, 4, 5)] * 5]
    assert [run.batch for run in small.last_run] == [(0,), *[(1, 2, 3)] * 3, *[(4, 5)] * 2]


def test_batched_generation_equals_one_segment_at_a_time_exactly_under_greedy_decoding(bark_engine):
    options = SynthesisOptions(voice="v2/en_speaker_3", **GREEDY)

    batched = bark_engine.synthesize(TEXTS, options)

    for together, alone in zip(
        batched, one_at_a_time(bark_engine, TEXTS, ["v2/en_speaker_3"] * 6, **GREEDY), strict=True
    ):
        assert np.array_equal(together, alone)


def test_rows_of_different_lengths_in_one_coarse_batch_keep_exactly_the_frames_they_get_alone(bark_engine):
    rng = np.random.default_rng(0)
    rows = [rng.integers(0, 10_000, size) for size in (40, 17, 29)]
    stages = bark_engine.stages
    prompt = stages.prompt_tensors(bark_engine._voice_prompt("v2/en_speaker_1", SynthesisOptions()))
    greedy = Sampling(0.0, 0.0)

    with torch.inference_mode():
        batched = stages.coarse(rows, prompt, greedy)
        alone = [stages.coarse([row], prompt, greedy)[0] for row in rows]
        waveforms = [stages.decode(stages.fine(coarse, prompt, greedy)) for coarse in batched]

    assert [codes.shape for codes in batched] == [(2, 60), (2, 25), (2, 43)]  # floor(T * 75 / 49.9) frames
    assert all(np.array_equal(together, own) for together, own in zip(batched, alone, strict=True))
    assert [len(waveform) for waveform in waveforms] == [60 * 320, 25 * 320, 43 * 320]


def test_without_a_preset_the_first_segments_tokens_become_the_voice_of_the_rest(bark_engine):
    audio = bark_engine.synthesize(TEXTS[:3], SynthesisOptions(**GREEDY))
    runs = bark_engine.last_run
    carried = runs[0].tokens.as_prompt()

    as_uploaded = bark_engine.synthesize(
        TEXTS[1:3], SynthesisOptions(voice="custom/first", voice_prompts={"custom/first": carried}, **GREEDY)
    )
    voiceless = bark_engine.synthesize(TEXTS[1:2], SynthesisOptions(**GREEDY))[0]

    assert [(run.batch, run.prompt) for run in runs] == [((0,), "none"), ((1, 2), "segment 0"), ((1, 2), "segment 0")]
    assert np.array_equal(carried["semantic_prompt"], runs[0].tokens.semantic)
    assert np.array_equal(carried["fine_prompt"], runs[0].tokens.fine)
    assert all(np.array_equal(a, b) for a, b in zip(audio[1:], as_uploaded, strict=True))
    assert not np.array_equal(audio[1], voiceless)


def test_a_carried_voice_is_trimmed_from_the_end_to_a_presets_span():
    from synthesis.engines.bark.stages import HISTORY_FRAMES, HISTORY_SEMANTIC_TOKENS, BarkTokens

    fine = np.arange(8 * 1000).reshape(8, 1000) % 1024
    tokens = BarkTokens(semantic=np.arange(665), coarse=fine[:2], fine=fine)

    prompt = tokens.as_prompt()

    assert np.array_equal(prompt["semantic_prompt"], np.arange(665)[-HISTORY_SEMANTIC_TOKENS:])
    assert np.array_equal(prompt["fine_prompt"], fine[:, -HISTORY_FRAMES:])
    assert prompt["coarse_prompt"].shape == (2, HISTORY_FRAMES)


def test_dialogue_segments_speak_with_their_own_voices_in_one_batch(bark_engine, tiny_bark_dir):
    folder = tiny_bark_dir / "speaker_embeddings" / "v2"
    uploaded = {
        key: np.load(folder / f"it_speaker_4_{key}.npy") for key in ("semantic_prompt", "coarse_prompt", "fine_prompt")
    }
    voices = ["v2/en_speaker_1", "v2/en_speaker_1", "v2/de_speaker_2", "v2/de_speaker_2", "custom/it", None]
    options = SynthesisOptions(
        voice="v2/en_speaker_1", segment_voices=voices, voice_prompts={"custom/it": uploaded}, **GREEDY
    )

    dialogue = bark_engine.synthesize(TEXTS, options)

    runs = [(run.batch, run.prompt) for run in bark_engine.last_run]
    assert runs == [
        ((0,), "v2/en_speaker_1"),
        ((1, 2, 3, 4, 5), "v2/en_speaker_1"),
        ((1, 2, 3, 4, 5), "v2/de_speaker_2"),
        ((1, 2, 3, 4, 5), "v2/de_speaker_2"),
        ((1, 2, 3, 4, 5), "custom/it"),
        ((1, 2, 3, 4, 5), "v2/en_speaker_1"),  # no voice of its own: the job's voice
    ]
    expected = one_at_a_time(bark_engine, TEXTS[:4], voices[:4], **GREEDY)
    expected.append(bark_engine.synthesize(TEXTS[4:5], SynthesisOptions(voice="v2/it_speaker_4", **GREEDY))[0])
    expected.append(bark_engine.synthesize(TEXTS[5:], SynthesisOptions(voice="v2/en_speaker_1", **GREEDY))[0])
    assert all(np.array_equal(a, b) for a, b in zip(dialogue, expected, strict=True))


def test_an_unknown_voice_anywhere_in_a_dialogue_fails_before_any_segment_is_generated(bark_engine):
    heard: list[int] = []
    options = SynthesisOptions(voice="v2/en_speaker_1", segment_voices=[None, None, "v2/en_speaker_99"])

    with pytest.raises(EngineFailed, match="Unknown Bark voice preset 'v2/en_speaker_99'"):
        bark_engine.synthesize(TEXTS[:3], options, lambda index, waveform: heard.append(index))
    with pytest.raises(EngineFailed, match="names 3 voices for 2 segments"):
        bark_engine.synthesize(TEXTS[:2], options, lambda index, waveform: heard.append(index))
    assert heard == []


def test_the_same_seed_gives_identical_audio_for_a_batched_job_and_another_seed_does_not(bark_engine):
    first = bark_engine.synthesize(TEXTS, SynthesisOptions(seed=11))
    again = bark_engine.synthesize(TEXTS, SynthesisOptions(seed=11))
    other = bark_engine.synthesize(TEXTS, SynthesisOptions(seed=12))

    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not any(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_on_segment_hears_every_segment_in_order_the_first_from_a_batch_of_its_own(bark_engine):
    heard: list[int] = []

    bark_engine.synthesize(TEXTS, SynthesisOptions(seed=1), lambda index, waveform: heard.append(index))

    assert heard == [0, 1, 2, 3, 4, 5]
    assert bark_engine.last_run[0].batch == (0,)


def test_cancelling_mid_batch_stops_at_once_and_leaves_the_engine_usable(bark_engine):
    heard: list[int] = []

    def stop_at_two(index: int, waveform: np.ndarray) -> bool:
        heard.append(index)
        return index != 2

    with pytest.raises(SynthesisCancelled):
        bark_engine.synthesize(TEXTS, SynthesisOptions(seed=1), stop_at_two)

    assert heard == [0, 1, 2]
    assert not torch.is_inference_mode_enabled()
    assert len(bark_engine.synthesize(TEXTS[:1], SynthesisOptions(seed=1))) == 1


# BarkModel.generate's keywords for greedy decoding (the engine's temperature 0). Sampled generations do not repeat the
# library's: each of the engine's segments samples from its own generator (see scheduler.py).
LIBRARY_GREEDY = {"semantic_do_sample": False, "coarse_do_sample": False, "fine_temperature": None}


def test_the_full_fine_window_reproduces_barkmodel_generate_exactly_under_greedy_decoding(tiny_bark_dir):
    engine = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto", fine_window="full")
    text, voice = "Words for both paths.", "v2/en_speaker_6"

    staged = engine.synthesize([text], SynthesisOptions(voice=voice, **GREEDY))[0]
    inputs = engine._processor([text], voice_preset=voice)
    with torch.inference_mode():
        audio, lengths = engine._model.generate(**inputs, return_output_lengths=True, min_eos_p=0.2, **LIBRARY_GREEDY)

    assert np.array_equal(staged, audio[0, : lengths[0]].numpy())


def test_the_fine_stage_on_real_lengths_changes_only_the_fine_codebooks(bark_engine, tiny_bark_dir):
    real_window = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto", fine_window="real")
    options = SynthesisOptions(voice="v2/en_speaker_6", **GREEDY)

    real_window.synthesize(TEXTS[:1], options)
    bark_engine.synthesize(TEXTS[:1], options)

    real, padded = real_window.last_run[0].tokens, bark_engine.last_run[0].tokens
    assert np.array_equal(real.semantic, padded.semantic) and np.array_equal(real.coarse, padded.coarse)
    assert np.array_equal(real.fine[:2], padded.fine[:2])
    assert real.fine.shape == padded.fine.shape == (8, 48)
