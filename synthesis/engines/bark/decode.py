"""Bark's two autoregressive stages (semantic, coarse) batched over rows that each have their own speaker prompt.

transformers' `BarkSemanticModel.generate` and `BarkCoarseModel.generate` take one speaker prompt per batch. Here the
same models run (through `causal.CausalDecoder`) with:

- one prompt per row: rows of different voices (or no voice) go in one batch; rows whose prompts have different
  lengths are right-padded, each row keeps its own positions, and its cache slots past its own length are masked;
- a preallocated KV cache written in place, and the head applied only to the positions that are sampled;
- a `torch.Generator` per row for sampling, so a seeded row gives the same tokens whatever it is batched with
  (`sampling.py`);
- attention over whole sequences (prefills, and the fine model) through torch's fused kernel, or with bf16 on a CPU
  as the library computes it a block of queries at a time (`attention.py`);
- on a CPU, a coarse window's first positions, when they are a voice's semantic history, computed once per voice and
  window rather than once per segment (`prefixes.PrefixStore`).

The arithmetic is the library's (the same modules, the same logits processing; the library's eager attention for
decode steps, and for whole sequences in bf16 on a CPU; elsewhere the same softmax(QK^T)V summed in another order),
so under greedy decoding each row's tokens equal what `BarkModel.generate` gives for it alone
(tests/test_bark_batching.py, test_bark_longform.py, test_bark_fidelity.py); docs/fidelity.md lists every place the
arithmetic departs from the library's and what that does to the codes.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

from synthesis.engines.bark import windows
from synthesis.engines.bark.causal import CausalDecoder, KVCache
from synthesis.engines.bark.sampling import Truncation, choose
from synthesis.engines.bark.windows import CoarseRow

if TYPE_CHECKING:
    from synthesis.engines.bark.prefixes import PrefixStore
    from synthesis.engines.bark.spec import Row, StageConfigs

T = TypeVar("T")


def pad_rows(rows: list[np.ndarray], pad: int, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (B, L) int64 tensor of `rows` and their lengths."""
    lengths = [len(row) for row in rows]
    batch = np.full((len(rows), max(lengths)), pad, dtype=np.int64)
    for index, row in enumerate(rows):
        batch[index, : len(row)] = row
    return torch.from_numpy(batch).to(device), torch.tensor(lengths, device=device)


# --- the semantic stage -----------------------------------------------------------------------------------


def semantic(model: Any, configs: StageConfigs, rows: list[Row], min_eos_p: float | None) -> list[np.ndarray]:
    """Semantic tokens (0..9999) per row, each cut at its EOS; what BarkSemanticModel.generate does per row."""
    return run_to_end(semantic_steps(model, configs, rows, min_eos_p))


def semantic_steps(
    model: Any, configs: StageConfigs, rows: list[Row], min_eos_p: float | None
) -> Generator[None, None, list[np.ndarray]]:
    """`semantic`, pausing (yielding) in its prefill (see `CausalDecoder.prefill_steps`) and after each decode step;
    returns the tokens."""
    config = configs.semantic
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
    truncation = Truncation.of(config)
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
        temperatures, generators = [row.text_temp for row in rows], [row.generator for row in rows]
        tokens = choose(scores, temperatures, generators, [not d for d in done], truncation)
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


def coarse(
    model: Any,
    configs: StageConfigs,
    rows: list[CoarseRow],
    codebook_size: int,
    prefixes: PrefixStore | None = None,
) -> list[np.ndarray]:
    """Coarse codes (2, F) per row: Bark's sliding 60-token windows, each window batched over the rows."""
    while any(row.generated < row.length for row in rows):
        coarse_window(model, configs, [row for row in rows if row.generated < row.length], codebook_size, prefixes)
    return [windows.coarse_codes(row, configs, codebook_size) for row in rows]


def coarse_window(
    model: Any,
    configs: StageConfigs,
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
    configs: StageConfigs,
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
    contexts = [windows.coarse_window_input(row, configs) for row in rows]
    inputs, lengths = pad_rows(contexts, 0, decoder.device)
    shared = None
    if prefixes is not None:
        voices = [windows.voice_positions(row, configs) for row in rows]
        shared = [prefixes.prefix(ids[:voice]) for voice, ids in zip(voices, contexts, strict=True)]
    steps = [min(coarse_config.sliding_window_len, row.length - row.generated) for row in rows]
    cache = decoder.new_cache(len(rows), inputs.shape[1] + max(steps))
    embeds = model.coarse_acoustics.input_embeds_layer(inputs)
    scores = yield from decoder.prefill_steps(embeds, lengths, cache, shared)
    truncation = Truncation.of(coarse_config)
    for step in range(max(steps)):
        # AlternatingCodebooksLogitsProcessor: even steps take codebook 0; odd steps anything from codebook 1 up
        # (the library leaves the tokens past codebook 1 open there, and so does this, to give the same tokens).
        scores[:, : first if step % 2 == 0 else second] = -float("inf")
        if step % 2 == 0:
            scores[:, second:] = -float("inf")
        temperatures, generators = [row.temperature for row in rows], [row.generator for row in rows]
        tokens = choose(scores, temperatures, generators, [step < wanted for wanted in steps], truncation)
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
            result: T = done.value
            return result
