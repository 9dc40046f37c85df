"""Batching across voices and jobs on the tiny checkpoint: each row gives what it gives alone (greedy), jobs that run
at once share batches, a job that arrives mid-run starts at the next step and its first segment goes first, seeds
and cancel hold per job."""

import itertools
import threading
import time

import numpy as np
import pytest
import torch

from synthesis.engines import SynthesisCancelled, SynthesisOptions
from synthesis.engines.bark import causal, decode
from synthesis.engines.bark.fine import fine_logits_steps
from synthesis.engines.bark.sampling import MIN_EOS_P
from synthesis.engines.bark.stages import Sampling
from tests.fixtures_bark import GREEDY, TEXTS, coarse_together_and_alone


def run_in_thread(target, *args) -> tuple[threading.Thread, dict]:
    """Run target(*args) in a thread; the dict gets its "result" or "error"."""
    box: dict = {}

    def run() -> None:
        try:
            box["result"] = target(*args)
        except Exception as exc:  # handed to the test's thread
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def test_rows_with_different_voices_and_history_lengths_give_the_library_tokens_each_gets_alone(bark_engine):
    stages, greedy = bark_engine.stages, Sampling(0.0, 0.0)
    voices = ["v2/en_speaker_1", None, "v2/de_speaker_3", "v2/fr_speaker_2"]
    prompts = [bark_engine._voice_prompt(voice, SynthesisOptions()) for voice in voices]
    prompts[3] = {key: value[..., :-30] for key, value in prompts[3].items()}  # a shorter history than the others
    texts = ["Hello there.", "A much longer sentence than the first, to pad it.", "Third!", "And a fourth one."]

    with torch.inference_mode():
        inputs = bark_engine._processor(texts)
        text_ids = stages.text_rows(inputs["input_ids"], inputs["attention_mask"])
        rows = [stages.row(ids, prompt, greedy) for ids, prompt in zip(text_ids, prompts, strict=True)]
        together = [tokens for tokens, _ in stages.generate_rows(rows)]
        for text, prompt, tokens in zip(texts, prompts, together, strict=True):
            alone = bark_engine._processor([text])
            library_prompt = stages.prompt_tensors(prompt)
            semantic = stages.semantic(alone["input_ids"], alone["attention_mask"], library_prompt, greedy)
            coarse = stages.coarse(semantic, library_prompt, greedy)
            assert np.array_equal(tokens.semantic, semantic[0])
            assert np.array_equal(tokens.coarse, coarse[0])


def test_semantic_rows_that_outgrow_the_decode_cache_block_keep_the_library_tokens(bark_engine):
    # 150 and 100 tokens: the decode cache starts a block (KVCache.GROWTH) past the prompt and grows as rows do.
    stages, greedy = bark_engine.stages, Sampling(0.0, 0.0)
    prompts = [bark_engine._voice_prompt(voice, SynthesisOptions()) for voice in ("v2/en_speaker_1", None)]
    texts, lengths = ["Hello there.", "A second, longer sentence."], [150, 100]

    with torch.inference_mode():
        inputs = bark_engine._processor(texts)
        text_ids = stages.text_rows(inputs["input_ids"], inputs["attention_mask"])
        rows = [stages.row(ids, prompt, greedy) for ids, prompt in zip(text_ids, prompts, strict=True)]
        for row, length in zip(rows, lengths, strict=True):
            row.min_new_tokens = row.max_new_tokens = length
        together = decode.semantic(stages.model, stages.configs(), rows, MIN_EOS_P)
        alone = []
        for text, prompt, length in zip(texts, prompts, lengths, strict=True):
            single = bark_engine._processor([text])
            library_prompt = stages.prompt_tensors(prompt)
            ids, mask = single["input_ids"], single["attention_mask"]
            alone.append(
                stages.semantic(ids, mask, library_prompt, greedy, min_new_tokens=length, max_new_tokens=length)[0]
            )

    assert [len(tokens) for tokens in together] == lengths
    assert all(np.array_equal(a, b) for a, b in zip(together, alone, strict=True))


def test_coarse_rows_of_different_lengths_and_voices_keep_exactly_the_library_codes_of_each_alone(bark_engine):
    rng = np.random.default_rng(0)
    semantic = [rng.integers(0, 10_000, size) for size in (40, 17, 90)]
    prompts = [
        bark_engine._voice_prompt(voice, SynthesisOptions()) for voice in ("v2/en_speaker_1", None, "v2/it_speaker_2")
    ]

    together, alone = coarse_together_and_alone(bark_engine.stages, prompts, semantic)

    assert [codes.shape for codes in together] == [(2, 60), (2, 25), (2, 135)]  # floor(T * 75 / 49.9) frames
    assert all(np.array_equal(a, b) for a, b in zip(together, alone, strict=True))


def count_pauses(steps) -> tuple[int, torch.Tensor]:
    pauses = 0
    while True:
        try:
            next(steps)
            pauses += 1
        except StopIteration as done:
            return pauses, done.value


def test_a_growing_cache_keeps_what_it_holds_and_replaces_one_layer_at_a_time():
    cache = causal.KVCache(layers=3, batch=2, heads=2, size=5, head_dim=4, dtype=torch.float32, device="cpu")
    for layer in range(3):
        cache.keys[layer].normal_()
        cache.values[layer].normal_()
    before = [tensor.clone() for tensor in cache.keys + cache.values]
    replaced: list[int] = []
    layers = cache.keys

    class Watched(list):  # records each layer as reserve() replaces it
        def __setitem__(self, index, value):
            replaced.append(index)
            super().__setitem__(index, value)

    cache.keys = Watched(layers)
    cache.reserve(7)

    assert cache.size == 7 + causal.KVCache.GROWTH
    assert replaced == [0, 1, 2]  # layer by layer: the old whole cache and the new one are never both held
    for old, new in zip(before, list(cache.keys) + cache.values, strict=True):
        assert new.shape == (2, 2, cache.size, 4) and new.is_contiguous()
        assert torch.equal(new[:, :, :5], old) and not new[:, :, 5:].any()


def test_a_prefill_and_a_fine_pass_pause_after_every_block_so_a_new_job_waits_for_one_block(bark_engine):
    model = bark_engine.stages.model
    decoder = causal.CausalDecoder(model.coarse_acoustics)
    lengths = torch.tensor([300, 200])

    with torch.inference_mode():
        embeds = decoder.model.input_embeds_layer(torch.randint(0, 10_000, (2, 300), generator=torch.Generator()))
        prefill_pauses, logits = count_pauses(decoder.prefill_steps(embeds, lengths, decoder.new_cache(2, 300)))
        codes = torch.randint(0, 1024, (1, 120, 8), generator=torch.Generator())
        fine_pauses, fine = count_pauses(fine_logits_steps(model.fine_acoustics, 2, codes, start=20))

    # Each row of a CPU prefill goes alone: a pause after each of its blocks but the last, and one after the row.
    assert prefill_pauses == 2 * len(decoder.model.layers)
    assert logits.shape == (2, decoder.model.lm_head.out_features) and torch.isfinite(logits).all()
    assert fine_pauses == len(model.fine_acoustics.layers) - 1
    assert fine.shape == (1, 100, model.fine_acoustics.lm_heads[0].out_features)


def test_two_jobs_running_at_once_share_batches_and_each_gets_what_it_gets_alone(bark_engine):
    first = SynthesisOptions(voice="v2/en_speaker_1", **GREEDY)
    second = SynthesisOptions(voice="v2/de_speaker_2", **GREEDY)
    alone = [bark_engine.synthesize(TEXTS[:3], first), bark_engine.synthesize(TEXTS[3:], second)]
    bark_engine._scheduler_for().most_streams_in_a_window = 0

    threads = [
        run_in_thread(bark_engine.synthesize, TEXTS[:3], first),
        run_in_thread(bark_engine.synthesize, TEXTS[3:], second),
    ]
    for thread, _ in threads:
        thread.join(timeout=120)

    assert bark_engine._scheduler_for().most_streams_in_a_window == 2
    for (_, box), expected in zip(threads, alone, strict=True):
        assert "error" not in box
        assert all(np.array_equal(a, b) for a, b in zip(box["result"], expected, strict=True))


def test_a_job_arriving_mid_run_hears_its_first_segment_before_the_running_batch_finishes_its_next(bark_engine):
    options = SynthesisOptions(voice="v2/en_speaker_4", **GREEDY)
    expected = bark_engine.synthesize(TEXTS[:1], SynthesisOptions(voice="v2/pl_speaker_1", **GREEDY))
    heard: dict[str, float] = {}
    late: dict = {}

    def on_segment(index: int, waveform: np.ndarray) -> None:
        heard.setdefault(f"long {index}", time.monotonic())
        if index == 0:  # the long job's next batch is starting: now the short job arrives
            late["thread"], late["box"] = run_in_thread(
                bark_engine.synthesize,
                TEXTS[:1],
                SynthesisOptions(voice="v2/pl_speaker_1", **GREEDY),
                lambda i, w: heard.setdefault("late", time.monotonic()),
            )

    bark_engine.synthesize(TEXTS * 3, options, on_segment)
    late["thread"].join(timeout=60)

    assert heard["long 0"] < heard["late"] < heard["long 1"]  # its first segment ran ahead of the batch
    assert np.array_equal(late["box"]["result"][0], expected[0])


def arrive_during(bark_engine, monkeypatch, owner, name: str, when) -> dict:
    """Run a 12-segment job; the first time `owner.name` (a pausing stage) is called with arguments for which `when`
    is true, a one-segment job arrives after that call's first unit. Returns what happened: "delivered when it
    ended" is how many segments the short job had received when that call ended, and "result" its audio."""
    scheduler, real_steps = bark_engine._scheduler_for(), getattr(owner, name)
    arrived: dict = {}
    submitted = threading.Event()
    real_submit = scheduler.submit

    def submit(stream) -> None:
        real_submit(stream)
        arrived["stream"] = stream
        submitted.set()

    def steps(*args):
        units = real_steps(*args)
        watched = "thread" not in arrived and when(*args)
        if watched:
            next(units)
            submitted.clear()  # set by the long job's own submission
            short = SynthesisOptions(voice="v2/pl_speaker_1", **GREEDY)
            arrived["thread"], arrived["box"] = run_in_thread(bark_engine.synthesize, TEXTS[:1], short)
            while not submitted.wait(0.01):
                yield  # the scheduler loops (and releases the model) while the short job is on its way
        result = yield from units
        if watched:
            arrived["delivered when it ended"] = arrived["stream"].delivered
        return result

    monkeypatch.setattr(scheduler, "submit", submit)
    monkeypatch.setattr(owner, name, steps)
    bark_engine.synthesize(TEXTS * 2, SynthesisOptions(voice="v2/en_speaker_4", **GREEDY))
    arrived["thread"].join(timeout=60)
    arrived["result"] = arrived["box"]["result"]
    return arrived


def test_a_job_arriving_during_another_jobs_semantic_batch_is_delivered_before_that_batch_ends(
    bark_engine, monkeypatch
):
    expected = bark_engine.synthesize(TEXTS[:1], SynthesisOptions(voice="v2/pl_speaker_1", **GREEDY))

    arrived = arrive_during(
        bark_engine, monkeypatch, decode, "semantic_steps", lambda model, configs, rows, *_: len(rows) > 1
    )

    assert arrived["delivered when it ended"] == 1  # the batch paused while the short job ran
    assert np.array_equal(arrived["result"][0], expected[0])


def test_a_job_arriving_during_another_jobs_fine_stage_is_delivered_before_that_fine_stage_ends(
    bark_engine, monkeypatch
):
    expected = bark_engine.synthesize(TEXTS[:1], SynthesisOptions(voice="v2/pl_speaker_1", **GREEDY))
    calls = itertools.count()

    arrived = arrive_during(bark_engine, monkeypatch, bark_engine.stages, "fine_steps", lambda *_: next(calls) == 1)

    assert arrived["delivered when it ended"] == 1  # the long job's second segment paused between codebook passes
    assert np.array_equal(arrived["result"][0], expected[0])


def test_a_seeded_job_gives_the_same_audio_alone_and_batched_with_another_job(bark_engine):
    seeded = SynthesisOptions(voice="v2/en_speaker_2", seed=7)
    alone = bark_engine.synthesize(TEXTS[:2], seeded)

    other, _ = run_in_thread(bark_engine.synthesize, TEXTS, SynthesisOptions(voice="v2/es_speaker_1", seed=99))
    together = bark_engine.synthesize(TEXTS[:2], seeded)
    other.join(timeout=120)
    reseeded = bark_engine.synthesize(TEXTS[:2], SynthesisOptions(voice="v2/en_speaker_2", seed=8))

    assert all(np.array_equal(a, b) for a, b in zip(alone, together, strict=True))
    assert not np.array_equal(alone[0], reseeded[0])


def test_cancelling_one_job_stops_it_at_its_next_segment_and_the_other_job_still_completes(bark_engine):
    options = SynthesisOptions(voice="v2/en_speaker_1", **GREEDY)
    expected = bark_engine.synthesize(TEXTS, options)
    heard: list[int] = []

    other, box = run_in_thread(bark_engine.synthesize, TEXTS, options)
    with pytest.raises(SynthesisCancelled):
        bark_engine.synthesize(TEXTS, SynthesisOptions(voice="v2/de_speaker_1"), lambda i, w: heard.append(i) or i < 1)
    other.join(timeout=120)

    assert heard == [0, 1]
    assert all(np.array_equal(a, b) for a, b in zip(box["result"], expected, strict=True))
