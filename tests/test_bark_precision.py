"""BARK_DTYPE: choosing the weights' number format for the hardware, converting the model, and generating in it."""

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BarkModel

from synthesis.engines import EngineUnavailable, SynthesisOptions, get_engine
from synthesis.engines.bark.checkpoint import TINY_SEMANTIC_TOKENS
from synthesis.engines.bark.engine import BarkEngine
from synthesis.engines.bark.precision import PrecisionError, bf16_speedup, choose_dtype, cpu_flags

XEON = frozenset({"avx512f", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile"})
EPYC_ZEN3 = frozenset({"avx2", "fma", "sse4_2"})


def samples_for(semantic_tokens: int) -> int:
    return int(np.floor(semantic_tokens * 75 / 49.9)) * 320


@pytest.mark.parametrize(
    ("device", "flags", "expected"),
    [
        ("cuda", frozenset(), "float16"),
        ("cuda:1", XEON, "float16"),
        ("cpu", XEON, "bfloat16"),
        ("cpu", frozenset({"amx_bf16"}), "bfloat16"),
        ("cpu", EPYC_ZEN3, "float32"),
        ("cpu", frozenset(), "float32"),
        ("mps", XEON, "float32"),
    ],
)
def test_auto_picks_float16_on_cuda_bfloat16_on_cpus_with_amx_and_float32_otherwise(device, flags, expected):
    assert choose_dtype("auto", device, flags, speedup=lambda: pytest.fail("no measurement needed")) == expected


AVX512_BF16 = frozenset({"avx512f", "avx512_bf16", "avx512_vnni"})


@pytest.mark.parametrize(
    ("speedup", "expected"),
    [(4.0, "bfloat16"), (2.2, "bfloat16"), (1.5, "bfloat16"), (1.4, "float32"), (0.7, "float32")],
)
def test_auto_on_a_cpu_with_avx512_bf16_alone_picks_bfloat16_only_where_it_measures_clearly_faster(speedup, expected):
    assert choose_dtype("auto", "cpu", AVX512_BF16, speedup=lambda: speedup) == expected


def test_the_bf16_measurement_is_a_positive_ratio_taken_once_per_process():
    first = bf16_speedup()

    assert first > 0 and bf16_speedup() == first


def test_a_burst_of_load_during_the_bf16_timings_does_not_flip_the_measurement(monkeypatch):
    # Stand-in products that take a known time: float32 20 ms, bf16 5 ms, and three bf16 timings in a row slowed by
    # 100 ms, as when the rest of the service imports at the same moment. Timed in turns, the fastest of each wins.
    bf16_calls = []

    def linear(inputs, weights):
        if inputs.dtype == torch.bfloat16:
            bf16_calls.append(1)
            time.sleep(0.005 + (0.1 if 2 <= len(bf16_calls) <= 4 else 0.0))
        else:
            time.sleep(0.02)

    monkeypatch.setattr(torch.nn.functional, "linear", linear)
    bf16_speedup.cache_clear()
    try:
        speedup = bf16_speedup()
    finally:
        bf16_speedup.cache_clear()

    assert 3.0 < speedup < 4.5
    assert choose_dtype("auto", "cpu", AVX512_BF16, speedup=lambda: speedup) == "bfloat16"


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16", "int8"])
def test_an_explicit_dtype_is_used_as_given_on_a_cpu_whatever_its_flags(dtype):
    assert choose_dtype(dtype, "cpu", EPYC_ZEN3) == dtype


def test_int8_on_cuda_and_an_unknown_name_are_refused_with_what_to_use_instead():
    with pytest.raises(PrecisionError, match="int8 quantizes for CPUs only.*use auto or float16"):
        choose_dtype("int8", "cuda", frozenset())
    with pytest.raises(PrecisionError, match="BARK_DTYPE='fp8' is not one of auto, float32, bfloat16, float16, int8"):
        choose_dtype("fp8", "cpu", frozenset())


def test_this_machines_cpu_flags_are_read_and_auto_resolves_from_them(tiny_bark_dir):
    engine = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto", dtype="auto")

    flags = cpu_flags()

    assert "fpu" in flags or "fp" in flags or not Path("/proc/cpuinfo").is_file()
    assert engine.dtype == choose_dtype("auto", "cpu", flags)
    assert engine.health().as_dict()["dtype"] == engine.dtype


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16", "int8"])
def test_each_dtype_loads_and_generates_audio_of_the_exact_length_with_a_float32_codec(tiny_bark_dir, dtype):
    engine = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto", dtype=dtype)

    waveforms = engine.synthesize(["Hello there."], SynthesisOptions(voice="v2/en_speaker_6", seed=1))

    model = engine.stages.model
    assert engine.dtype == dtype and engine.health().dtype == dtype
    assert engine.health().reason.endswith(f"on cpu in {dtype}")
    assert {parameter.dtype for parameter in model.codec_model.parameters()} == {torch.float32}
    checkpoint_codec = BarkModel.from_pretrained(tiny_bark_dir).codec_model.state_dict()
    assert all(torch.equal(value, checkpoint_codec[key]) for key, value in model.codec_model.state_dict().items())
    if dtype == "int8":
        quantized = [m for m in model.semantic.modules() if type(m).__module__.startswith("torch.ao.nn.quantized")]
        assert quantized, "the semantic model's Linear layers are quantized"
    else:
        assert model.semantic.input_embeds_layer.weight.dtype == getattr(torch, dtype)
    for waveform in waveforms:
        assert waveform.dtype == np.float32 and waveform.shape == (samples_for(TINY_SEMANTIC_TOKENS),)
        assert np.isfinite(waveform).all() and waveform.std() > 0.01


def test_an_unknown_dtype_makes_bark_unavailable_with_a_message_naming_bark_dtype(tiny_bark_dir):
    engine = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto", dtype="fp8")

    health = engine.health()

    assert not health.ok and health.reason.startswith("BARK_DTYPE='fp8' is not one of")
    with pytest.raises(EngineUnavailable, match="BARK_DTYPE='fp8'"):
        engine.load()


def test_forced_semantic_tokens_give_every_segment_exactly_that_length(tiny_bark_dir):
    engine = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto", force_semantic_tokens=20)

    waveforms = engine.synthesize(["One.", "Two, a little longer."], SynthesisOptions(seed=2))

    assert [len(waveform) for waveform in waveforms] == [samples_for(20)] * 2
    assert [len(run.tokens.semantic) for run in engine.last_run] == [20, 20]


def test_get_engine_reads_bark_dtype_and_the_forced_token_count_from_the_settings(settings, tiny_bark):
    settings.BARK_DTYPE = "int8"
    settings.BARK_FORCE_SEMANTIC_TOKENS = 24

    engine = get_engine("bark")

    assert isinstance(engine, BarkEngine)
    assert engine.dtype == "int8" and engine.force_semantic_tokens == 24
