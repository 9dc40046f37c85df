"""Coarse-window prefixes (a voice's semantic history) computed once and reused by every prefill that starts with
the same tokens: the same logits, cache and codes as computing them, bit for bit; a bounded store; none where the
results would differ (int8)."""

import numpy as np
import pytest
import torch

from synthesis.engines import SynthesisOptions
from synthesis.engines.bark import causal, decode, windows
from synthesis.engines.bark.engine import BarkEngine
from synthesis.engines.bark.prefixes import PrefixStore
from synthesis.engines.bark.stages import Sampling
from tests.fixtures_bark import coarse_together_and_alone

ONEDNN_BF16 = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def window_prefill(decoder, ids: torch.Tensor, prefix):
    """Logits and cache of one row's prefill over `ids` (1, L), with `prefix` (or None)."""
    cache = decoder.new_cache(1, ids.shape[1])
    steps = decoder.prefill_steps(decoder.model.input_embeds_layer(ids), torch.tensor([ids.shape[1]]), cache, [prefix])
    return decode.run_to_end(steps), cache


@pytest.mark.parametrize(
    "dtype", ["float32", pytest.param("bfloat16", marks=pytest.mark.skipif(not ONEDNN_BF16, reason="no bf16 oneDNN"))]
)
def test_a_prefill_that_takes_a_computed_prefix_gives_the_whole_prefills_logits_and_cache_bit_for_bit(
    tiny_bark_dir, dtype
):
    engine = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto", dtype=dtype)
    engine.load()
    decoder = causal.CausalDecoder(engine.stages.model.coarse_acoustics)
    ids = torch.randint(10_000, 12_000, (1, 300), generator=torch.Generator().manual_seed(0))
    store = PrefixStore()

    with torch.inference_mode():
        whole, whole_cache = window_prefill(decoder, ids, None)
        computing, _ = window_prefill(decoder, ids, store.prefix(ids[0, :120].numpy()))
        reusing, reusing_cache = window_prefill(decoder, ids, store.prefix(ids[0, :120].numpy()))

    assert store.reused == 1
    assert torch.equal(computing, whole)
    assert torch.equal(reusing, whole)
    assert torch.equal(torch.stack(reusing_cache.keys), torch.stack(whole_cache.keys))
    assert torch.equal(torch.stack(reusing_cache.values), torch.stack(whole_cache.values))


@pytest.mark.parametrize(
    "dtype", ["float32", pytest.param("bfloat16", marks=pytest.mark.skipif(not ONEDNN_BF16, reason="no bf16 oneDNN"))]
)
def test_a_stored_prefix_keeps_its_queries_only_where_the_attention_reads_them(tiny_bark_dir, dtype):
    engine = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto", dtype=dtype)
    engine.load()
    decoder = causal.CausalDecoder(engine.stages.model.coarse_acoustics)
    ids = torch.randint(10_000, 12_000, (1, 300), generator=torch.Generator().manual_seed(0))
    prefix = PrefixStore().prefix(ids[0, :120].numpy())

    with torch.inference_mode():
        window_prefill(decoder, ids, prefix)

    # float32 runs a prefill's attention as one fused causal square, queries of the prefix included; bf16 runs it in
    # blocks of queries that start after the prefix, so its store holds keys and values only.
    keys_and_values = (
        2 * len(decoder.model.layers) * 120 * decoder.model.config.hidden_size * (4 if dtype == "float32" else 2)
    )
    assert all((block[0] is None) == (dtype == "bfloat16") for block in prefix.blocks)
    assert prefix.nbytes == keys_and_values * (3 / 2 if dtype == "float32" else 1)


def test_segments_in_one_voice_reuse_its_prefixes_and_keep_the_library_codes(bark_engine):
    store = bark_engine.stages.prefixes
    store.clear()
    rng = np.random.default_rng(1)
    semantic = [rng.integers(0, 10_000, size) for size in (40, 90, 25, 60)]
    prompt = bark_engine._voice_prompt("v2/en_speaker_1", SynthesisOptions())
    prompts = [prompt, prompt, prompt, bark_engine._voice_prompt("v2/de_speaker_3", SynthesisOptions())]

    together, alone = coarse_together_and_alone(bark_engine.stages, prompts, semantic)

    assert all(np.array_equal(a, b) for a, b in zip(together, alone, strict=True))
    assert store.reused > 0


def test_a_job_gives_the_same_audio_with_its_prefixes_reused_as_without(bark_engine):
    options = SynthesisOptions(voice="v2/en_speaker_6", seed=5)
    texts = ["The first line.", "A second one.", "Then a third.", "A fourth here."]
    store = bark_engine.stages.prefixes
    store.clear()

    reused = bark_engine.synthesize(texts, options)
    bark_engine.stages.prefixes = None
    try:
        computed = bark_engine.synthesize(texts, options)
    finally:
        bark_engine.stages.prefixes = store

    assert store.reused > 0
    assert all(np.array_equal(a, b) for a, b in zip(reused, computed, strict=True))


def test_a_prefill_abandoned_between_blocks_leaves_its_prefix_for_the_next_to_compute(bark_engine):
    decoder = causal.CausalDecoder(bark_engine.stages.model.coarse_acoustics)
    ids = torch.randint(10_000, 12_000, (1, 200), generator=torch.Generator().manual_seed(2))
    store = PrefixStore()
    prefix = store.prefix(ids[0, :50].numpy())

    with torch.inference_mode():
        cache = decoder.new_cache(1, 200)
        steps = decoder.prefill_steps(decoder.model.input_embeds_layer(ids), torch.tensor([200]), cache, [prefix])
        next(steps)  # one block, then the job is cancelled
        steps.close()
        assert prefix.blocks == []
        window_prefill(decoder, ids, store.prefix(ids[0, :50].numpy()))

    assert len(prefix.blocks) == len(decoder.model.layers)
    assert prefix.reused == 0


def test_a_store_past_its_budget_forgets_the_least_recently_used_prefix():
    store = PrefixStore(max_bytes=3 * 4 * 1000)  # room for two prefixes of 1,000 float32 values per block
    tokens = [np.arange(start, start + 10) for start in range(3)]

    def compute(prefix):
        prefix.blocks = [tuple(torch.zeros(500) for _ in range(3))]  # 6,000 bytes

    compute(store.prefix(tokens[0]))
    compute(store.prefix(tokens[1]))
    store.prefix(tokens[0])  # used again: now the most recent
    compute(store.prefix(tokens[2]))
    store.prefix(tokens[2])

    assert len(store) == 2
    assert store.prefix(tokens[0]).blocks  # kept
    assert not store.prefix(tokens[1]).blocks  # forgotten: a new, empty entry


def test_no_prefix_of_zero_positions_is_stored():
    assert PrefixStore().prefix(np.zeros(0, dtype=np.int64)) is None


def test_an_int8_engine_keeps_no_prefix_store_since_its_quantization_depends_on_every_position(tiny_bark_dir):
    int8 = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto", dtype="int8")
    float32 = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto", dtype="float32")
    int8.load()
    float32.load()

    assert int8.stages.prefixes is None
    assert isinstance(float32.stages.prefixes, PrefixStore)


def test_coarse_rows_of_one_voice_share_each_windows_prefix_while_the_context_starts_in_its_history(bark_engine):
    stages, configs = bark_engine.stages, bark_engine.stages.configs()
    prompt = bark_engine._voice_prompt("v2/en_speaker_1", SynthesisOptions())
    rows = [
        windows.coarse_row(stages.row(np.zeros(256, dtype=np.int64), prompt, Sampling(0.0, 0.0)), tokens, configs, 1024)
        for tokens in (np.arange(30), np.arange(100, 150))
    ]

    shared = [windows.coarse_window_input(row, configs)[: windows.voice_positions(row, configs)] for row in rows]

    assert len(shared[0]) == rows[0].base > 0
    assert np.array_equal(shared[0], shared[1])
