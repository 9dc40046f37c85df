"""Bark's coarse sliding windows, row by row: each row's semantic and coarse histories, trimmed as the library trims
them, and the input of its next window (numpy only; the windows themselves run in decode.py).

A coarse window reads the row's semantic context (256 positions), an infer token and the last 630 coarse tokens, then
generates up to 60 more (`sliding_window_len`); the context slides on by the semantic span of what was generated.
These are `BarkCoarseModel.preprocess_histories` and the index arithmetic of `BarkCoarseModel.generate`, kept per row
so that rows of different lengths and voices share a window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from synthesis.engines.bark.spec import Row, StageConfigs


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


def coarse_row(row: Row, semantic_tokens: np.ndarray, configs: StageConfigs, codebook_size: int) -> CoarseRow:
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


def context_start(row: CoarseRow, configs: StageConfigs) -> int:
    """Where the next window's semantic context starts in `row.semantic`: 209 tokens before the current point."""
    semantic_config, coarse_config, _ = configs
    ratio = coarse_config.coarse_rate_hz / semantic_config.semantic_rate_hz * coarse_config.n_coarse_codebooks
    max_semantic_history = int(np.floor(coarse_config.max_coarse_history / ratio))
    index = row.base + int(round(row.generated / ratio))
    return max(0, index - max_semantic_history)


def coarse_window_input(row: CoarseRow, configs: StageConfigs) -> np.ndarray:
    """The next window's input: semantic context (padded to 256), the infer token, the last 630 coarse tokens."""
    _, coarse_config, _ = configs
    context = row.semantic[context_start(row, configs) :][: coarse_config.max_coarse_input_length]
    padded = np.full(coarse_config.max_coarse_input_length, coarse_config.coarse_semantic_pad_token, dtype=np.int64)
    padded[: len(context)] = context
    history = np.asarray(row.coarse[-coarse_config.max_coarse_history :] if row.coarse else [], dtype=np.int64)
    return np.concatenate([padded, [coarse_config.coarse_infer_token], history])


def voice_positions(row: CoarseRow, configs: StageConfigs) -> int:
    """How many of the next window's first positions hold the row's semantic history (its speaker prompt's), the
    same for every segment in that voice at this point of its generation."""
    return max(0, row.base - context_start(row, configs))


def coarse_codes(row: CoarseRow, configs: StageConfigs, codebook_size: int) -> np.ndarray:
    """A finished row's coarse tokens as codes (2, F) in 0..codebook_size-1."""
    semantic_config, coarse_config, _ = configs
    tokens = np.asarray(row.coarse[row.history :], dtype=np.int64)
    codes = (tokens - semantic_config.semantic_vocab_size) % codebook_size
    return np.ascontiguousarray(codes.reshape(-1, coarse_config.n_coarse_codebooks).T)
