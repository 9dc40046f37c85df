"""Bark's two autoregressive stages (semantic, coarse) batched over rows that each have their own speaker prompt.

transformers' `BarkSemanticModel.generate` and `BarkCoarseModel.generate` take one speaker prompt per batch, grow a
`DynamicCache` by concatenation (every decode step copies the whole cache), and compute the language-model head for
every prompt position of every prefill. This module runs the same models, through their own modules, with:

- one prompt per row: rows of different voices (or no voice) go in one batch; rows whose prompts have different
  lengths are right-padded, each row keeps its own positions, and its cache slots past its own length are masked;
- a preallocated KV cache written in place, and the head applied only to the positions that are sampled;
- a `torch.Generator` per row for sampling, so a seeded row gives the same tokens whatever it is batched with;
- attention over whole sequences (prefills, and the fine model) through torch's fused kernel, or with bf16 on a CPU
  as the library computes it a block of queries at a time (`attention.py`);
- on a CPU, a coarse window's first positions, when they are a voice's semantic history, computed once per voice and
  window rather than once per segment (`prefixes.PrefixStore`).

The arithmetic is the library's (the same modules, the same logits processing; the library's eager attention for
decode steps, and for whole sequences in bf16 on a CPU; elsewhere the same softmax(QK^T)V summed in another order),
so under greedy decoding each row's tokens equal what `BarkModel.generate` gives for it alone
(tests/test_bark_batching.py, test_bark_longform.py); docs/bark-batching.md says where floating-point summation order
can differ and what that means.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from synthesis.engines.bark.attention import attention, reads_earlier_queries
from synthesis.engines.bark.prefixes import Prefix, PrefixStore

# Sampling temperature 0 means greedy (argmax).
GREEDY = 0.0
T = TypeVar("T")


@dataclass
class Row:
    """One segment to generate: its text (token ids from the processor), speaker prompt and sampling."""

    text_ids: np.ndarray  # (256,) the processor's input_ids, padding already replaced (see text_row)
    prompt: dict[str, np.ndarray] | None
    text_temp: float
    waveform_temp: float
    generator: torch.Generator | None = None  # None: torch's global RNG
    min_new_tokens: int = 0
    max_new_tokens: int = 768


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
        return self.keys[0].shape[2]

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
        self, layer: int, hidden: torch.Tensor, cache: KVCache, prefix: Prefix | None, computed: list | None
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
        computed: list | None = [] if prefix is not None and not start else None
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

    def _step_attention(self, layer: int, hidden: torch.Tensor, cache: KVCache, positions: torch.Tensor, mask):
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


def fine_logits_steps(
    model: Any, codebook: int, codes: torch.Tensor, start: int = 0
) -> Generator[None, None, torch.Tensor]:
    """`BarkFineModel(codebook, codes).logits[:, start:]` (B, L - start, V) through the model's own modules, with
    `attention`, pausing (yielding) after each block but the last (a pass over a segment's ~600 frames took about
    2 s in float32 on 2 Zen 2 cores: a job arriving meanwhile waits for one block, not the pass).

    `codes` (B, L, 8): codebooks 0..`codebook` are embedded and summed; the model is non-causal, every frame sees all.
    The last block runs its attention queries and its MLP only from `start` on (the frames whose codes are predicted;
    before them, the voice's history), since its other outputs feed nothing.
    """
    heads = model.config.num_heads
    scale = 1.0 / math.sqrt(model.config.hidden_size // heads)
    embeds = torch.stack([model.input_embeds_layers[i](codes[:, :, i]) for i in range(codebook + 1)], dim=-1).sum(-1)
    hidden = embeds + model.position_embeds_layer(torch.arange(codes.shape[1], device=codes.device))[None]
    *blocks, last = model.layers
    for block in blocks:
        query, key, value = split_heads(block.attn, block.layernorm_1(hidden), heads)
        hidden = hidden + merge_heads(block.attn, attention(query, key, value, scale, causal=False))
        hidden = hidden + block.mlp(block.layernorm_2(hidden))
        yield
    query, key, value = split_heads(last.attn, last.layernorm_1(hidden), heads)
    hidden = hidden[:, start:] + merge_heads(last.attn, attention(query, key, value, scale, False, first=start))
    hidden = hidden + last.mlp(last.layernorm_2(hidden))
    return model.lm_heads[codebook - model.config.n_codes_given](model.layernorm_final(hidden))


def choose(
    scores: torch.Tensor, temperatures: list[float], generators: list[torch.Generator | None], wanted: list[bool]
) -> torch.Tensor:
    """One token per row: argmax at temperature 0, else a sample from softmax(scores / t) with the row's generator.

    Rows not `wanted` (done, or past the end of their window) take the argmax: their generator is only ever advanced
    by the tokens they keep, so a seeded row samples the same whatever else shares its batch.
    """
    tokens = torch.argmax(scores, dim=-1)
    for row, (temperature, generator) in enumerate(zip(temperatures, generators, strict=True)):
        if temperature > 0 and wanted[row]:
            tokens[row] = draw(torch.softmax(scores[row] / temperature, dim=-1), generator)
    return tokens


def draw(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One index drawn from the distribution `probs` (V,), by inverting its cumulative sum at one uniform number.

    The same distribution as `torch.multinomial(probs, 1)`, which instead draws one exponential number per category
    and takes an argmax: 0.26 ms for Bark's 12k-token vocabulary on a 2026 AMD EPYC core, a tenth of a batch-8
    coarse decode step, against about 0.03 ms here. A category of probability 0 is never drawn (`right=True` skips
    the empty intervals); the sum runs in float64 so that 12k float32 terms do not drift."""
    cumulative = torch.cumsum(probs, dim=0, dtype=torch.float64)
    point = torch.rand(1, generator=generator, dtype=torch.float64, device=probs.device) * cumulative[-1]
    return torch.searchsorted(cumulative, point, right=True).clamp_(max=len(probs) - 1)[0]


def pad_rows(rows: list[np.ndarray], pad: int, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (B, L) int64 tensor of `rows` and their lengths."""
    lengths = [len(row) for row in rows]
    batch = np.full((len(rows), max(lengths)), pad, dtype=np.int64)
    for index, row in enumerate(rows):
        batch[index, : len(row)] = row
    return torch.from_numpy(batch).to(device), torch.tensor(lengths, device=device)


# --- the semantic stage -----------------------------------------------------------------------------------


def semantic(model: Any, configs: tuple[Any, Any, Any], rows: list[Row], min_eos_p: float | None) -> list[np.ndarray]:
    """Semantic tokens (0..9999) per row, each cut at its EOS; what BarkSemanticModel.generate does per row."""
    return run_to_end(semantic_steps(model, configs, rows, min_eos_p))


def semantic_steps(
    model: Any, configs: tuple[Any, Any, Any], rows: list[Row], min_eos_p: float | None
) -> Generator[None, None, list[np.ndarray]]:
    """`semantic`, pausing (yielding) in its prefill (see `CausalDecoder.prefill_steps`) and after each decode step;
    returns the tokens."""
    config = configs[0]
    decoder = CausalDecoder(model.semantic)
    device, history_length = decoder.device, config.max_input_semantic_length
    text = torch.from_numpy(np.stack([row.text_ids for row in rows])).to(device)
    history = np.full((len(rows), history_length), config.semantic_pad_token, dtype=np.int64)
    for index, row in enumerate(rows):
        if row.prompt is not None:
            prompt = row.prompt["semantic_prompt"][-history_length:]
            history[index, : len(prompt)] = prompt
    embed = model.semantic.input_embeds_layer
    infer = torch.full((len(rows), 1), config.semantic_infer_token, dtype=torch.int64, device=device)
    embeds = torch.cat(
        [embed(text[:, :history_length]) + embed(torch.from_numpy(history).to(device)), embed(infer)], dim=1
    )
    start = embeds.shape[1]
    longest = max(row.max_new_tokens for row in rows)
    cache = decoder.new_cache(len(rows), start + min(longest, KVCache.GROWTH))  # grows as the rows do
    lengths = torch.full((len(rows),), start, device=device)
    scores = yield from decoder.prefill_steps(embeds, lengths, cache)
    eos, vocab = config.eos_token_id, config.semantic_vocab_size
    out: list[list[int]] = [[] for _ in rows]
    done = [False] * len(rows)
    for step in range(longest):
        scores[:, vocab + 1 :] = -float("inf")  # only semantic tokens and EOS (SuppressTokensLogitsProcessor)
        scores[:, vocab:eos] = -float("inf")
        for index, row in enumerate(rows):
            if step < row.min_new_tokens:
                scores[index, eos] = -float("inf")
        if min_eos_p:  # BarkEosPrioritizerLogitsProcessor: EOS once its probability passes min_eos_p
            stop = torch.softmax(scores, dim=-1)[:, eos] > min_eos_p
            eos_only = torch.full_like(scores, -float("inf"))
            eos_only[:, eos] = scores[:, eos]
            scores = torch.where(stop[:, None], eos_only, scores)
        tokens = choose(scores, [row.text_temp for row in rows], [row.generator for row in rows], [not d for d in done])
        for index, token in enumerate(tokens.tolist()):
            if not done[index]:
                done[index] = token == eos
                if not done[index]:
                    out[index].append(token)
                done[index] = done[index] or len(out[index]) >= rows[index].max_new_tokens
        if all(done):
            break
        scores = decoder.step(tokens, lengths + step, cache)
        yield
    return [np.asarray(tokens, dtype=np.int64) for tokens in out]


# --- the coarse stage -------------------------------------------------------------------------------------


@dataclass
class CoarseRow:
    """One row's sliding-window state: its semantic tokens after their history, and its coarse tokens so far."""

    semantic: np.ndarray  # semantic history + the row's semantic tokens
    coarse: list[int]  # coarse history (flattened, offset) + generated coarse tokens
    base: int  # where the row's own semantic tokens start
    history: int  # how many of `coarse` are history
    length: int  # how many coarse tokens to generate
    temperature: float
    generator: torch.Generator | None

    @property
    def generated(self) -> int:
        return len(self.coarse) - self.history


def coarse_row(row: Row, semantic_tokens: np.ndarray, configs: tuple[Any, Any, Any], codebook_size: int) -> CoarseRow:
    """A row's histories, trimmed exactly as BarkCoarseModel.preprocess_histories trims them, and its length."""
    semantic_config, coarse_config, _ = configs
    ratio = coarse_config.coarse_rate_hz / semantic_config.semantic_rate_hz * coarse_config.n_coarse_codebooks
    semantic_history = np.zeros(0, dtype=np.int64)
    coarse_history = np.zeros(0, dtype=np.int64)
    if row.prompt is not None:
        semantic_history = np.asarray(row.prompt["semantic_prompt"], dtype=np.int64)
        codes = np.asarray(row.prompt["coarse_prompt"], dtype=np.int64).copy()
        codes += (np.arange(codes.shape[0]) * codebook_size)[:, None]
        flat = codes.T.reshape(-1) + semantic_config.semantic_vocab_size
        provided = min(
            int(np.floor(coarse_config.max_coarse_history / ratio)),
            len(semantic_history) - len(semantic_history) % 2,
            int(np.floor(len(flat) / ratio)),
        )
        semantic_history = semantic_history[-provided:]
        coarse_history = flat[-int(round(provided * ratio)) :][:-2]  # Bark's time-alignment trim
    own = np.where(
        semantic_tokens == semantic_config.semantic_pad_token, coarse_config.coarse_semantic_pad_token, semantic_tokens
    )
    frames = int(np.floor(len(own) * ratio / coarse_config.n_coarse_codebooks))
    return CoarseRow(
        semantic=np.concatenate([semantic_history, own]),
        coarse=coarse_history.tolist(),
        base=len(semantic_history),
        history=len(coarse_history),
        length=int(round(frames * coarse_config.n_coarse_codebooks)),
        temperature=row.waveform_temp,
        generator=row.generator,
    )


def context_start(row: CoarseRow, configs: tuple[Any, Any, Any]) -> int:
    """Where the next window's semantic context starts in `row.semantic`: 209 tokens before the current point."""
    semantic_config, coarse_config, _ = configs
    ratio = coarse_config.coarse_rate_hz / semantic_config.semantic_rate_hz * coarse_config.n_coarse_codebooks
    max_semantic_history = int(np.floor(coarse_config.max_coarse_history / ratio))
    index = row.base + int(round(row.generated / ratio))
    return max(0, index - max_semantic_history)


def coarse_window_input(row: CoarseRow, configs: tuple[Any, Any, Any]) -> np.ndarray:
    """The next window's input: semantic context (padded to 256), the infer token, the last 630 coarse tokens."""
    _, coarse_config, _ = configs
    context = row.semantic[context_start(row, configs) :][: coarse_config.max_coarse_input_length]
    padded = np.full(coarse_config.max_coarse_input_length, coarse_config.coarse_semantic_pad_token, dtype=np.int64)
    padded[: len(context)] = context
    history = np.asarray(row.coarse[-coarse_config.max_coarse_history :] if row.coarse else [], dtype=np.int64)
    return np.concatenate([padded, [coarse_config.coarse_infer_token], history])


def voice_positions(row: CoarseRow, configs: tuple[Any, Any, Any]) -> int:
    """How many of the next window's first positions hold the row's semantic history (its speaker prompt's), the
    same for every segment in that voice at this point of its generation."""
    return max(0, row.base - context_start(row, configs))


def coarse(
    model: Any,
    configs: tuple[Any, Any, Any],
    rows: list[CoarseRow],
    codebook_size: int,
    prefixes: PrefixStore | None = None,
) -> list[np.ndarray]:
    """Coarse codes (2, F) per row: Bark's sliding 60-token windows, each window batched over the rows."""
    while any(row.generated < row.length for row in rows):
        coarse_window(model, configs, [row for row in rows if row.generated < row.length], codebook_size, prefixes)
    return [coarse_codes(row, configs, codebook_size) for row in rows]


def coarse_window(
    model: Any,
    configs: tuple[Any, Any, Any],
    rows: list[CoarseRow],
    codebook_size: int,
    prefixes: PrefixStore | None = None,
) -> None:
    """The next window of every row (up to 60 tokens each), as one batch: a batched prefill, then the decode steps.

    Each window re-reads its whole context (semantic window, infer token, up to 630 coarse tokens): its positions
    shift from one window to the next, so the library's tokens depend on that re-prefill and it is kept. Only the
    positions that hold a voice's semantic history are the same from one segment (and window) to the next: with a
    `prefixes` store, those are computed once (see PrefixStore).
    """
    run_to_end(coarse_window_steps(model, configs, rows, codebook_size, prefixes))


def coarse_window_steps(
    model: Any,
    configs: tuple[Any, Any, Any],
    rows: list[CoarseRow],
    codebook_size: int,
    prefixes: PrefixStore | None = None,
) -> Generator[None, None, None]:
    """`coarse_window`, pausing (yielding) in its prefill (after each block) and after each decode step, so that the
    scheduler can run a newly arrived job's first segment in between and come back; each row's tokens are appended as
    they come."""
    semantic_config, coarse_config, _ = configs
    decoder = CausalDecoder(model.coarse_acoustics)
    first, second = semantic_config.semantic_vocab_size, semantic_config.semantic_vocab_size + codebook_size
    windows = [coarse_window_input(row, configs) for row in rows]
    inputs, lengths = pad_rows(windows, 0, decoder.device)
    shared = None
    if prefixes is not None:
        shared = [prefixes.prefix(ids[: voice_positions(row, configs)]) for row, ids in zip(rows, windows, strict=True)]
    steps = [min(coarse_config.sliding_window_len, row.length - row.generated) for row in rows]
    cache = decoder.new_cache(len(rows), inputs.shape[1] + max(steps))
    embeds = model.coarse_acoustics.input_embeds_layer(inputs)
    scores = yield from decoder.prefill_steps(embeds, lengths, cache, shared)
    for step in range(max(steps)):
        # AlternatingCodebooksLogitsProcessor: even steps take codebook 0; odd steps anything from codebook 1 up
        # (the library leaves the tokens past codebook 1 open there, and so does this, to give the same tokens).
        scores[:, : first if step % 2 == 0 else second] = -float("inf")
        if step % 2 == 0:
            scores[:, second:] = -float("inf")
        temperatures, generators = [row.temperature for row in rows], [row.generator for row in rows]
        tokens = choose(scores, temperatures, generators, [step < wanted for wanted in steps])
        for row, token, wanted in zip(rows, tokens.tolist(), steps, strict=True):
            if step < wanted:
                row.coarse.append(token)
        if step + 1 < max(steps):
            scores = decoder.step(tokens, lengths + step, cache)
            yield


def run_to_end(steps: Generator[None, None, T]) -> T:
    """Run a pausing computation (a generator) to its end; its return value."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def coarse_codes(row: CoarseRow, configs: tuple[Any, Any, Any], codebook_size: int) -> np.ndarray:
    """A finished row's coarse tokens as codes (2, F) in 0..codebook_size-1."""
    semantic_config, coarse_config, _ = configs
    tokens = np.asarray(row.coarse[row.history :], dtype=np.int64)
    codes = (tokens - semantic_config.semantic_vocab_size) % codebook_size
    return codes.reshape(-1, coarse_config.n_coarse_codebooks).T.copy()
