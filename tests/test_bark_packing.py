"""bf16 on a CPU: the token models' Linear layers with oneDNN-packed weights, and what they must not change."""

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


def linear_layers(model, kind):
    return [module for module in model.modules() if type(module) is kind]


def synthesize(engine):
    return engine.synthesize(
        ["Hello there.", "A second, longer sentence follows it."], SynthesisOptions(voice="v2/en_speaker_6", seed=3)
    )


@needs_onednn_bf16
def test_bf16_on_a_cpu_packs_every_linear_layer_of_the_token_models_and_leaves_the_codec_alone(tiny_bark_dir):
    engine = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto", dtype="bfloat16")
    engine.load()

    model = engine.stages.model
    for name in TOKEN_MODELS:
        assert linear_layers(getattr(model, name), torch.nn.Linear) == []
        assert linear_layers(getattr(model, name), PackedLinear)
    assert {parameter.dtype for parameter in model.codec_model.parameters()} == {torch.float32}


@needs_onednn_bf16
def test_packed_layers_give_bitwise_the_tokens_and_audio_of_the_plain_bf16_model(tiny_bark_dir, monkeypatch):
    packed = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto", dtype="bfloat16")
    packed_audio = synthesize(packed)
    monkeypatch.setattr(packing, "pack_linear_layers", lambda models: False)
    plain = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto", dtype="bfloat16")
    plain_audio = synthesize(plain)

    assert linear_layers(plain.stages.model.semantic, torch.nn.Linear)
    assert linear_layers(packed.stages.model.semantic, torch.nn.Linear) == []
    for packed_run, plain_run in zip(packed.last_run, plain.last_run, strict=True):
        assert np.array_equal(packed_run.tokens.semantic, plain_run.tokens.semantic)
        assert np.array_equal(packed_run.tokens.coarse, plain_run.tokens.coarse)
        assert np.array_equal(packed_run.tokens.fine, plain_run.tokens.fine)
    assert all(np.array_equal(a, b) for a, b in zip(packed_audio, plain_audio, strict=True))


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_float32_and_int8_models_keep_their_layers_as_they_were(tiny_bark_dir, dtype):
    engine = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto", dtype=dtype)
    engine.load()

    assert linear_layers(engine.stages.model.semantic, PackedLinear) == []


@needs_onednn_bf16
def test_layers_stay_plain_where_the_packed_product_differs_from_torchs_by_a_bit(monkeypatch):
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 8)).to(torch.bfloat16)
    real_forward = PackedLinear.forward

    def one_bit_off(self, inputs):  # each output moved to the next bf16 value up
        outputs = real_forward(self, inputs)
        return torch.nextafter(outputs, torch.full_like(outputs, float("inf")))

    monkeypatch.setattr(PackedLinear, "forward", one_bit_off)

    assert pack_linear_layers([model]) is False
    assert len(linear_layers(model, torch.nn.Linear)) == 2


@needs_onednn_bf16
def test_a_packed_layer_computes_what_the_linear_layer_it_replaces_computed():
    linear = torch.nn.Linear(48, 96).to(torch.bfloat16)
    model = torch.nn.Sequential(linear)
    inputs = torch.randn(3, 5, 48, dtype=torch.bfloat16)  # (batch, positions, features), as the models feed it
    with torch.inference_mode():
        expected = linear(inputs)

        assert pack_linear_layers([model]) is True
        assert isinstance(model[0], PackedLinear)
        assert torch.equal(model[0](inputs), expected)
