"""Bark's fine stage (codebooks 3-8 predicted from the coarse two, one non-causal pass per codebook) over a batch of
rows, in the library's 1024-frame window or on each row's real length.

transformers (like upstream Bark) pads every item to the fine model's 1024-frame window: the voice's fine history, the
item's frames, then pad codes up to 1024. The model is non-causal, so the pad frames are attended to (they change the
real frames' codes) and cost as much as real ones. `BARK_FINE_WINDOW=full` (the default) pads the same way and gives
exactly the library's codes; every row then has the same length, so rows of any voice and job can share one pass.
`real` runs each row on its history and frames only: about a third of the work for a short segment, and codebooks 3-8
differ from the library's (docs/fidelity.md). A row longer than the window goes through the library's own sliding
loop (`BarkStages.fine_steps`).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from synthesis.engines.bark.attention import attention
from synthesis.engines.bark.causal import merge_heads, split_heads

if TYPE_CHECKING:
    from synthesis.engines.bark.spec import StageConfigs


@dataclass(eq=False)
class FineRow:
    """One item for the fine stage: its coarse codes, its speaker prompt (as tensors) and how it samples."""

    coarse: np.ndarray  # (2, F) codes in 0..1023
    prompt: dict[str, Any] | None  # BarkStages.prompt_tensors; its fine_prompt is the history the pass reads first
    temperature: float | None  # None or 1.0: argmax (as transformers' fine stage does)
    generator: torch.Generator | None = None  # None: torch's global RNG

    @property
    def frames(self) -> int:
        return int(self.coarse.shape[1])


def history_frames(row: FineRow, configs: StageConfigs) -> int:
    """How many frames of the row's fine history the pass reads (the library keeps the last 512)."""
    if row.prompt is None:
        return 0
    return min(int(row.prompt["fine_prompt"].shape[1]), int(configs.fine.max_fine_history_length))


def buffer_length(row: FineRow, configs: StageConfigs, full_window: bool) -> int | None:
    """The frames one pass over the row reads: the whole window, or its history and frames (`full_window` False);
    None for a row longer than the window (the library's sliding loop)."""
    window = int(configs.fine.max_fine_input_length)
    own = history_frames(row, configs) + row.frames
    if own > window:
        return None
    return window if full_window else own


def fine_steps(
    model: Any, configs: StageConfigs, rows: list[FineRow], codebook_size: int, full_window: bool
) -> Generator[None, None, list[np.ndarray]]:
    """Fine codes (8, F) per row, for rows whose passes read the same number of frames (`buffer_length`), as one
    batch; pausing (yielding) after each block of each codebook's pass and between passes.

    Each row's buffer is its history, its coarse codes and pad codes (`codebook_size`) up to the length; every pass
    predicts one codebook from the frame after the history on, pad frames included (later codebooks see them, as in
    the library). The last block of a pass runs only from the shortest history on (`fine_logits_steps`)."""
    fine_model = model.fine_acoustics
    device = fine_model.position_embeds_layer.weight.device
    n_coarse, n_fine = int(configs.coarse.n_coarse_codebooks), int(configs.fine.n_fine_codebooks)
    lengths = {buffer_length(row, configs, full_window) for row in rows}
    (length,) = lengths  # one length per batch (the scheduler groups rows by it)
    assert length is not None
    histories = [history_frames(row, configs) for row in rows]
    buffer = torch.full((len(rows), length, n_fine), codebook_size, dtype=torch.int64, device=device)
    for index, (row, n_history) in enumerate(zip(rows, histories, strict=True)):
        if row.prompt is not None:
            buffer[index, :n_history] = row.prompt["fine_prompt"].T[-n_history:]
        buffer[index, n_history : n_history + row.frames, :n_coarse] = torch.from_numpy(row.coarse.T).to(device)
    start = min(histories)
    for codebook in range(n_coarse, n_fine):
        logits = (yield from fine_logits_steps(fine_model, codebook, buffer, start))[..., :codebook_size]
        for index, (row, n_history) in enumerate(zip(rows, histories, strict=True)):
            own = logits[index, n_history - start :]
            if row.temperature is None or row.temperature == 1.0:
                predictions = torch.argmax(own, -1)
            else:
                probs = torch.softmax(own / row.temperature, dim=-1).reshape(-1, codebook_size)
                predictions = torch.multinomial(probs, num_samples=1, generator=row.generator).view(-1)
            buffer[index, n_history:, codebook] = predictions
        if codebook + 1 < n_fine:
            yield
    return [
        buffer[index, n_history : n_history + row.frames].T.cpu().numpy()
        for index, (row, n_history) in enumerate(zip(rows, histories, strict=True))
    ]


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
