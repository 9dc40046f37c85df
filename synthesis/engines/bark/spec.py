"""What Bark's stages read: each stage's generation config (as `BarkModel.generate` builds them) and one segment to
generate (its text ids, speaker prompt, sampling and length limits). A leaf: the stages' modules all import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import torch


class StageConfigs(NamedTuple):
    """Each stage's generation config (transformers' BarkSemanticGenerationConfig, BarkCoarseGenerationConfig and
    BarkFineGenerationConfig), as `BarkModel.generate` builds them from the model's nested generation config."""

    semantic: Any
    coarse: Any
    fine: Any


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
