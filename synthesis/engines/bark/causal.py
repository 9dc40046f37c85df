"""Bark's causal GPT models (semantic, coarse) run over a batch of rows, each at its own position, with a KV cache
written in place.

transformers' `BarkSemanticModel.generate` and `BarkCoarseModel.generate` grow a `DynamicCache` by concatenation
(every decode step copies the whole cache) and compute the language-model head for every position of a prefill. Here
the same models run through their own modules with a preallocated cache (`KVCache`), each row right-padded to the
longest and masked past its own length, and the head applied only at the positions that are sampled. Prefills run
their attention through `attention.attention`; decode steps keep the library's eager attention, op for op.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import torch

from synthesis.engines.bark.attention import attention, reads_earlier_queries
from synthesis.engines.bark.prefixes import Block, Prefix


class KVCache:
    """Keys and values of every layer for a batch, preallocated to `size` positions and written in place.

    A decode step attends over the whole buffer, masking the slots past each row's position: each layer's (B, heads,
    size, D) block is then contiguous, which torch's CPU matrix products need to read it in place (with bf16 weights a
    slice of it was copied whole at every step, 2.2 ms instead of 0.2 ms per layer at batch 8; float32 is also a
    little faster). So the buffer is kept close to the positions in use: `reserve` grows it a block at a time.

    Each layer has a tensor of its own, so that growing copies one layer at a time and holds one layer twice at most:
    a single buffer for all layers held the old and the new whole cache at once, the largest transient of a batch
    of 8 semantic rows (docs/bark-batching.md, "Memory").
    """

    GROWTH = 64  # slots added at a time when a decode step needs more (a copy of the cache every 64 tokens)

    def __init__(self, layers: int, batch: int, heads: int, size: int, head_dim: int, dtype: torch.dtype, device: Any):
        shape = (batch, heads, size, head_dim)
        # Zeros, not empty: masked slots are multiplied by 0 attention weight, and 0 * NaN would poison a row.
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]

    @property
    def size(self) -> int:
        return int(self.keys[0].shape[2])

    def rows(self, start: int, stop: int) -> KVCache:
        """The cache of rows start..stop-1, sharing this cache's memory (writes go through)."""
        view = object.__new__(KVCache)
        view.keys = [layer[start:stop] for layer in self.keys]
        view.values = [layer[start:stop] for layer in self.values]
        return view

    def reserve(self, slots: int) -> None:
        """Make room for at least `slots` positions, copying what is cached into a larger buffer if needed."""
        if slots <= self.size:
            return
        size, grown = self.size, slots + self.GROWTH
        for layers in (self.keys, self.values):
            for index, old in enumerate(layers):
                new = old.new_zeros((*old.shape[:2], grown, old.shape[3]))
                new[:, :, :size] = old
                layers[index] = new  # the old layer's memory goes back before the next layer is copied


class CausalDecoder:
    """Runs one of Bark's causal GPT models (semantic or coarse) with a per-row-position KV cache."""

    def __init__(self, model: Any) -> None:
        self.model = model
        config = model.config
        self.heads = config.num_heads
        self.head_dim = config.hidden_size // config.num_heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.device = model.position_embeds_layer.weight.device

    def new_cache(self, batch: int, size: int) -> KVCache:
        dtype = self.model.position_embeds_layer.weight.dtype
        return KVCache(len(self.model.layers), batch, self.heads, size, self.head_dim, dtype, self.device)

    def _prefill_projections(
        self, layer: int, hidden: torch.Tensor, cache: KVCache, prefix: Prefix | None, computed: list[Block] | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Query, key and value (B, heads, L, D) of block `layer` in a prefill, for every position: those of `hidden`
        (the positions after `prefix`, if it is computed already) preceded by the prefix's; the prefix's queries only
        where the attention reads them (`attention.reads_earlier_queries`: not in bf16 on a CPU, whose store then holds
        a third less). Every position's key and value go to the cache; `computed` (when given) collects the prefix's
        positions for the store."""
        query, key, value = split_heads(self.model.layers[layer].attn, hidden, self.heads)
        if computed is not None:
            assert prefix is not None
            known_query = query[:, :, : prefix.length].clone() if reads_earlier_queries(query) else None
            computed.append((known_query, *(tensor[:, :, : prefix.length].clone() for tensor in (key, value))))
        elif prefix is not None:
            known_query, known_key, known_value = prefix.blocks[layer]
            if known_query is not None:
                query = torch.cat([known_query, query], dim=2)
            key, value = torch.cat([known_key, key], dim=2), torch.cat([known_value, value], dim=2)
        cache.keys[layer][:, :, : key.shape[2]] = key
        cache.values[layer][:, :, : key.shape[2]] = value
        return query, key, value

    def _prefill(
        self, embeds: torch.Tensor, lengths: torch.Tensor, cache: KVCache, prefix: Prefix | None = None
    ) -> Generator[None, None, torch.Tensor]:
        """Hidden states (B, H) at each row's last real position, with every position's keys and values cached,
        pausing (yielding) after each block but the last.

        Every block but the last runs on all positions. The last one caches its keys and values for all of them too
        but computes attention and the MLP only at the last position, the one whose logits are sampled: the other
        outputs of the last block feed nothing (in a coarse window's prefill, 1/12 of the work at bark-small's depth).

        `prefix` (one row only): its positions' queries, keys and values come from it when it is computed, and only
        the positions after it run through the blocks (their attention still spans the whole row, so it runs as one
        causal square and the prefix's own outputs are dropped); otherwise this prefill computes it.
        """
        batch, length, _ = embeds.shape
        if prefix is not None and (batch > 1 or prefix.length >= length):
            prefix = None
        start = prefix.length if prefix is not None and prefix.blocks else 0
        computed: list[Block] | None = [] if prefix is not None and not start else None
        if start:
            assert prefix is not None
            prefix.reused += 1
        positions = torch.arange(length, device=self.device)[None]
        *blocks, last = self.model.layers
        hidden = embeds[:, start:] + self.model.position_embeds_layer(positions[:, start:])
        for index, block in enumerate(blocks):
            query, key, value = self._prefill_projections(index, block.layernorm_1(hidden), cache, prefix, computed)
            # Rows are right-padded, so the causal mask is each row's own: pad positions come after its last real
            # one and are overwritten by its decode steps before any step reads them.
            output = attention(query, key, value, self.scale, causal=True, first=start)
            hidden = hidden + merge_heads(block.attn, output)
            hidden = hidden + block.mlp(block.layernorm_2(hidden))
            yield
        query, key, value = self._prefill_projections(len(blocks), last.layernorm_1(hidden), cache, prefix, computed)
        if computed is not None:
            assert prefix is not None
            prefix.blocks = computed  # whole, or not at all: a prefill can be abandoned between blocks
        rows = torch.arange(batch, device=self.device)
        skipped = length - query.shape[2]  # the stored prefix's queries, where they were not needed
        query, hidden = query[rows, :, lengths - 1 - skipped][:, :, None], hidden[rows, lengths - 1 - start][:, None]
        # The last position attends to all of its row's positions: only the right padding is masked.
        keep = (positions < lengths[:, None])[:, None, None, :] if batch > 1 else None
        output = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=keep, scale=self.scale)
        hidden = hidden + merge_heads(last.attn, output)
        return (hidden + last.mlp(last.layernorm_2(hidden)))[:, 0]

    def _step_attention(
        self, layer: int, hidden: torch.Tensor, cache: KVCache, positions: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Block `layer`'s attention in a decode step: each row's one new position, written to its cache slot."""
        attn = self.model.layers[layer].attn
        query, key, value = split_heads(attn, hidden, self.heads)
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        cache.keys[layer][rows, :, positions] = key[:, :, 0]
        cache.values[layer][rows, :, positions] = value[:, :, 0]
        key, value = cache.keys[layer], cache.values[layer]  # the whole buffer (see KVCache), masked past each row
        # The library's eager attention, op for op (BarkSelfAttention._attn), with this batch's mask.
        # (SDPA with a mask was no faster here for one query per row, and slower at batch 8 with int8 weights.)
        weights = torch.matmul(query, key.transpose(-1, -2)) * self.scale
        weights = weights.masked_fill(mask, torch.finfo(weights.dtype).min)
        return merge_heads(attn, torch.matmul(torch.nn.functional.softmax(weights, dim=-1).to(value.dtype), value))

    def prefill_steps(
        self,
        embeds: torch.Tensor,
        lengths: torch.Tensor,
        cache: KVCache,
        prefixes: list[Prefix | None] | None = None,
    ) -> Generator[None, None, torch.Tensor]:
        """Logits (B, V) at each row's last real position (`embeds` (B, L, H) is right-padded past `lengths`),
        pausing (yielding) after each block of the model.

        The pauses are where the scheduler can start a job that just arrived: a whole coarse-window prefill (887
        positions) took 3.2 s in float32 on 2 slow AMD EPYC (Zen 2) cores, one block a twelfth of that. Pausing
        changes nothing in the arithmetic. On a CPU the rows go through one at a time, each cut to its own length: a
        prefill is compute-bound there, so this costs no speed, no padding is computed and one row's activations are
        all that is held at once, and a row whose first positions are a computed prefix (`prefixes`, one per row, see
        `PrefixStore`) skips them. A GPU takes the batch at once and ignores `prefixes`."""
        batch = embeds.shape[0]
        if self.device.type == "cuda":
            last = yield from self._prefill(embeds, lengths, cache)
            yield
        else:
            hidden = []
            for row in range(batch):
                length = int(lengths[row])
                row_embeds, row_cache = embeds[row : row + 1, :length], cache.rows(row, row + 1)
                prefix = prefixes[row] if prefixes is not None else None
                hidden.append((yield from self._prefill(row_embeds, lengths[row : row + 1], row_cache, prefix)))
                yield
            last = torch.cat(hidden)
        return self.model.lm_head(self.model.layernorm_final(last)).float()

    def step(self, tokens: torch.Tensor, positions: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Logits (B, V) for one new token per row, each at its own position (= its cache slot)."""
        cache.reserve(int(positions.max()) + 1)
        slots = torch.arange(cache.size, device=self.device)
        mask = (slots[None, :] > positions[:, None])[:, None, None, :]  # a row sees its own slots up to its position
        hidden = self.model.input_embeds_layer(tokens)[:, None] + self.model.position_embeds_layer(positions[:, None])
        for index, block in enumerate(self.model.layers):
            hidden = hidden + self._step_attention(index, block.layernorm_1(hidden), cache, positions, mask)
            hidden = hidden + block.mlp(block.layernorm_2(hidden))
        return self.model.lm_head(self.model.layernorm_final(hidden[:, 0])).float()


def split_heads(attn: Any, hidden: torch.Tensor, heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A Bark attention block's query, key and value for `hidden` (B, L, H), each (B, heads, L, H / heads)."""
    batch, length, _ = hidden.shape
    return tuple(
        t.view(batch, length, heads, -1).permute(0, 2, 1, 3) for t in attn.att_proj(hidden).split(attn.embed_dim, dim=2)
    )


def merge_heads(attn: Any, output: torch.Tensor) -> torch.Tensor:
    """The block's output projection of attention `output` (B, heads, L, D)."""
    batch, _, length, _ = output.shape
    return attn.out_proj(output.transpose(1, 2).contiguous().view(batch, length, attn.embed_dim))
