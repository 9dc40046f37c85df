"""Attention over whole sequences (a prefill's positions, a fine pass's frames) for Bark's models, in the format's
fastest exact form: torch's fused kernel, or with bf16 on a CPU the library's own arithmetic a block of queries at a
time. Decode steps (one query per row) keep the library's eager attention (decode.py). Measurements:
docs/bark-batching.md, "What barksite does instead".
"""

from __future__ import annotations

import math

import torch


def attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float, causal: bool, first: int = 0
) -> torch.Tensor:
    """softmax(QK^T * scale) V over whole sequences (B, heads, L, D), for the queries from `first` on. `query` may hold
    only those (a prefill after a stored prefix) unless `reads_earlier_queries` says this form needs them all.

    The library's eager attention builds the (B, heads, L, L) scores, masks, softmaxes and multiplies in separate
    passes over all of them; over a coarse window's ~890 positions that was 75% of a prefill with int8 weights (40% in
    float32) on 2 AMD EPYC cores. So whole sequences go through torch's fused kernel (scaled_dot_product_attention),
    except with bf16 on a CPU, where the fused kernel computes in float32 and the library's own arithmetic, run a
    block of queries at a time (`blocked_attention`), was 1.3-1.5x faster (docs/bark-batching.md)."""
    if not reads_earlier_queries(query):
        return blocked_attention(query, key, value, scale, causal, first)
    if not causal:  # every query sees every key: the ones before `first` need not run at all
        return torch.nn.functional.scaled_dot_product_attention(
            later_queries(query, key, first), key, value, scale=scale
        )
    # (SDPA aligns a causal mask to the first key, so a causal square with fewer queries would mask the wrong keys.)
    output = torch.nn.functional.scaled_dot_product_attention(query, key, value, is_causal=True, scale=scale)
    return output[:, :, first:]


def reads_earlier_queries(query: torch.Tensor) -> bool:
    """Whether `attention` over the queries from `first` on reads the queries before `first` too: only as torch's
    fused causal square (float32, int8's float32 activations, a GPU), not in bf16's blocks on a CPU."""
    return not (query.device.type == "cpu" and query.dtype == torch.bfloat16)


def later_queries(query: torch.Tensor, key: torch.Tensor, first: int) -> torch.Tensor:
    """The queries from position `first` on, whether `query` holds every position's (as many as `key`) or only those."""
    return query[:, :, first:] if query.shape[2] == key.shape[2] else query


QUERY_BLOCK = 128  # queries per matrix product in blocked_attention (64, 128, 192, 256 measured: 128 or 192 best)


def blocked_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float, causal: bool, first: int = 0
) -> torch.Tensor:
    """`attention` as the library computes it (BarkSelfAttention._attn: QK^T in the model's dtype, scaled, masked with
    the dtype's lowest value, softmax, times V), QUERY_BLOCK queries at a time, so that one block's scores stay in the
    CPU's caches and a causal block reads only the keys up to its end (what the library masks to zero weight).

    Blocks start at multiples of QUERY_BLOCK whatever `first` is, so a query sees the same keys in the same matrix
    products with or without the queries before it: a prefill that skips a voice's prefix gets bitwise the outputs of
    the whole one. Returned as a (B, heads, L - first, D) view of a (B, L - first, heads, D) buffer, so that the
    output projection's merge of the heads copies nothing."""
    batch, heads, length, dim = key.shape
    query = later_queries(query, key, first)
    if math.frexp(scale)[0] == 0.5:  # a power of two (1/8 for Bark's 64-wide heads): scaling the query is exact
        query, scale = query * scale, 1.0
    query, key, value = query.contiguous(), key.contiguous(), value.contiguous()
    keys_t = key.transpose(-1, -2)
    output = query.new_empty(batch, length - first, heads, dim).transpose(1, 2)
    lowest = torch.finfo(query.dtype).min
    for block in range(first - first % QUERY_BLOCK, length, QUERY_BLOCK):
        start, stop = max(block, first), min(block + QUERY_BLOCK, length)
        seen = stop if causal else length
        scores = torch.matmul(query[:, :, start - first : stop - first], keys_t[..., :seen])
        if scale != 1.0:
            scores = scores * scale
        if causal:  # within the block's own keys, query i sees keys up to i
            ahead = torch.arange(block, stop)[None, :] > torch.arange(start, stop)[:, None]
            scores[..., block:stop].masked_fill_(ahead.to(scores.device), lowest)
        output[:, :, start - first : stop - first] = torch.matmul(torch.softmax(scores, dim=-1), value[:, :, :seen])
    return output
