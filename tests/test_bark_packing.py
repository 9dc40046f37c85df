"""The token models' Linear layers with oneDNN-packed weights (bf16 and float32 on a CPU), and what they must not
change."""

import numpy as np
import pytest
import torch

from synthesis.engines import SynthesisOptions
from synthesis.engines.bark import packing
from synthesis.engines.bark.engine import BarkEngine
from synthesis.engines.bark.packing import PackedLinear, pack_linear_layers
from synthesis.engines.bark.precision import TOKEN_MODELS

ONEDNN_BF16 = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
needs_onednn_bf16 = pytest.mark.skipif(not ONEDNN_BF16, reason="oneDNN cannot run bf16 on this CPU")
needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch has no oneDNN")
PACKED_FORMATS = [
    pytest.param("bfloat16", marks=needs_onednn_bf16),
    pytest.param("float32", marks=needs_onednn),
]


def linear_layers(model, kind):
    return [module for module in model.modules() if type(module) is kind]


def synthesize(engine):
    return engine.synthesize(
        ["Hello there.", "A second, longer sentence follows it."], SynthesisOptions(voice="v2/en_speaker_6", seed=3)
    )


def one_ulp_up(outputs):
    """Each output moved to the next representable value up, in its own format."""
    return torch.nextafter(outputs, torch.full_like(outputs, float("inf")))


@pytest.mark.parametrize("dtype", PACKED_FORMATS)
def test_a_cpu_model_packs_every_linear_layer_of_the_token_models_and_leaves_the_codec_alone(tiny_bark_dir, dtype):
    engine = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto", dtype=dtype)
    engine.load()

    model = engine.stages.model
    for name in TOKEN_MODELS:
        assert linear_layers(getattr(model, name), torch.nn.Linear) == []
        assert linear_layers(getattr(model, name), PackedLinear)
    assert {parameter.dtype for parameter in model.codec_model.parameters()} == {torch.float32}


@pytest.mark.parametrize(
    ("dtype", "audio_tolerance"),
    [pytest.param("bfloat16", 0.0, marks=needs_onednn_bf16), pytest.param("float32", 1e-4, marks=needs_onednn)],
)
def test_packed_layers_give_the_plain_models_tokens_and_its_audio_bitwise_in_bf16_and_to_rounding_in_float32(
    tiny_bark_dir, monkeypatch, dtype, audio_tolerance
):
    packed = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto", dtype=dtype)
    packed_audio = synthesize(packed)
    monkeypatch.setattr(packing, "pack_linear_layers", lambda models: False)
    plain = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto", dtype=dtype)
    plain_audio = synthesize(plain)

    assert linear_layers(plain.stages.model.semantic, torch.nn.Linear)
    assert linear_layers(packed.stages.model.semantic, torch.nn.Linear) == []
    for packed_run, plain_run in zip(packed.last_run, plain.last_run, strict=True):
        assert np.array_equal(packed_run.tokens.semantic, plain_run.tokens.semantic)
        assert np.array_equal(packed_run.tokens.coarse, plain_run.tokens.coarse)
        assert np.array_equal(packed_run.tokens.fine, plain_run.tokens.fine)
    for packed_wave, plain_wave in zip(packed_audio, plain_audio, strict=True):
        np.testing.assert_allclose(packed_wave, plain_wave, rtol=0, atol=audio_tolerance)


def test_int8_models_keep_their_quantized_layers(tiny_bark_dir):
    engine = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto", dtype="int8")
    engine.load()

    assert linear_layers(engine.stages.model.semantic, PackedLinear) == []
    assert linear_layers(engine.stages.model.semantic, torch.ao.nn.quantized.dynamic.Linear)


@needs_onednn_bf16
def test_bf16_layers_stay_plain_where_the_packed_product_differs_from_torchs_by_a_bit(monkeypatch):
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 8)).to(torch.bfloat16)
    real_forward = PackedLinear.forward
    monkeypatch.setattr(PackedLinear, "forward", lambda self, inputs: one_ulp_up(real_forward(self, inputs)))

    assert pack_linear_layers([model]) is False
    assert len(linear_layers(model, torch.nn.Linear)) == 2


@needs_onednn
def test_float32_layers_are_packed_when_off_by_rounding_and_stay_plain_when_off_by_more(monkeypatch):
    real_forward = PackedLinear.forward
    rounding = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.GELU(), torch.nn.Linear(32, 8))
    monkeypatch.setattr(PackedLinear, "forward", lambda self, inputs: one_ulp_up(real_forward(self, inputs)))

    assert pack_linear_layers([rounding]) is True
    assert len(linear_layers(rounding, PackedLinear)) == 2

    wrong = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.GELU(), torch.nn.Linear(32, 8))
    monkeypatch.setattr(PackedLinear, "forward", lambda self, inputs: real_forward(self, inputs) * (1 + 1e-4))

    assert pack_linear_layers([wrong]) is False
    assert len(linear_layers(wrong, torch.nn.Linear)) == 2


@pytest.mark.parametrize("dtype", PACKED_FORMATS)
def test_a_packed_layer_computes_what_the_linear_layer_it_replaces_computed(dtype):
    torch_dtype = getattr(torch, dtype)
    linear = torch.nn.Linear(48, 96).to(torch_dtype)
    model = torch.nn.Sequential(linear)
    inputs = torch.randn(3, 5, 48, dtype=torch_dtype)  # (batch, positions, features), as the models feed it
    with torch.inference_mode():
        expected = linear(inputs)

        assert pack_linear_layers([model]) is True
        assert isinstance(model[0], PackedLinear)
        assert packing.within(model[0](inputs), expected, packing.TOLERANCE[torch_dtype])
