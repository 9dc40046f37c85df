"""Attention over whole sequences (prefills, fine passes): bf16 on a CPU runs the library's own eager arithmetic a
block of queries at a time, bit for bit; other formats go through torch's fused kernel; either can skip the queries
before `first` and give the same rows."""

import pytest
import torch
from transformers import BarkSemanticConfig
from transformers.models.bark.modeling_bark import BarkSelfAttention

from synthesis.engines.bark.attention import QUERY_BLOCK, attention

ONEDNN_BF16 = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
needs_bf16 = pytest.mark.skipif(not ONEDNN_BF16, reason="no bf16 oneDNN on this CPU")
# Lengths on both sides of the block size, and a coarse window's.
LENGTHS = [1, QUERY_BLOCK - 1, QUERY_BLOCK, QUERY_BLOCK + 1, 300, 887]


def heads(length: int, dtype: torch.dtype, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Query, key and value (1, 2 heads, length, 64) as split_heads makes them: strided views of one projection."""
    generator = torch.Generator().manual_seed(seed)
    projection = torch.randn(1, length, 3 * 128, generator=generator).to(dtype)
    return tuple(t.view(1, length, 2, 64).permute(0, 2, 1, 3) for t in projection.split(128, dim=2))


def library_attention(query, key, value, causal: bool) -> torch.Tensor:
    """What transformers' Bark computes: BarkSelfAttention._attn, its eager attention."""
    config = BarkSemanticConfig(hidden_size=128, num_heads=2, block_size=1024, num_layers=1)
    return BarkSelfAttention(config, is_causal=causal)._attn(query, key, value)[0]


@needs_bf16
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("length", LENGTHS)
def test_bf16_attention_on_a_cpu_is_the_librarys_eager_attention_bit_for_bit(length, causal):
    query, key, value = heads(length, torch.bfloat16)

    output = attention(query, key, value, 1 / 8, causal)

    assert output.shape == (1, 2, length, 64)
    assert torch.equal(output, library_attention(query, key, value, causal))


@needs_bf16
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("first", [1, QUERY_BLOCK - 1, QUERY_BLOCK, 202])
def test_bf16_attention_from_a_later_query_gives_the_whole_attentions_rows_bit_for_bit(first, causal):
    query, key, value = heads(300, torch.bfloat16)

    output = attention(query, key, value, 1 / 8, causal, first=first)

    assert output.shape == (1, 2, 300 - first, 64)
    assert torch.equal(output, attention(query, key, value, 1 / 8, causal)[:, :, first:])


@needs_bf16
@pytest.mark.parametrize("causal", [True, False])
def test_bf16_attention_with_a_scale_that_is_not_a_power_of_two_scales_the_scores_as_the_library_does(causal):
    query, key, value = heads(300, torch.bfloat16)
    scale = 1 / 7  # heads 49 wide

    output = attention(query, key, value, scale, causal)

    weights = torch.matmul(query, key.transpose(-1, -2)) * scale
    if causal:
        weights = weights.masked_fill(torch.ones(300, 300, dtype=torch.bool).triu(1), torch.finfo(weights.dtype).min)
    assert torch.equal(output, torch.matmul(torch.softmax(weights, dim=-1), value))


@pytest.mark.parametrize("causal", [True, False])
def test_float32_attention_goes_through_the_fused_kernel_and_skips_the_queries_before_first(causal):
    query, key, value = heads(300, torch.float32)
    fused = torch.nn.functional.scaled_dot_product_attention(query, key, value, is_causal=causal, scale=1 / 8)

    output = attention(query, key, value, 1 / 8, causal, first=100)

    assert output.shape == (1, 2, 200, 64)
    torch.testing.assert_close(output, fused[:, :, 100:], rtol=0, atol=1e-6)
    torch.testing.assert_close(output, library_attention(query, key, value, causal)[:, :, 100:], rtol=0, atol=1e-5)
