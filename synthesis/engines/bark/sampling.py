"""Each row's next token in a decode step: the argmax, or a draw after transformers' own temperature, top-k and top-p
warpers, from the row's own random generator.

What upstream Bark does, and where transformers differs (docs/fidelity.md, "Sampling"): Suno's `generate_text_semantic`
and `generate_coarse` sample from the whole softmax (`top_k=None, top_p=None`) and end the semantic stage once EOS has
probability 0.2 (`min_eos_p=0.2`). transformers 5.23's `BarkModel.generate` fills an unset `top_k` with 50 and drops
`min_eos_p` unless it is passed. barksite follows Suno by default and honours a checkpoint's (or the deployment's)
`top_k`, `top_p` and `min_eos_p` when they are set; the warpers then run in the library's order (temperature, top-k,
top-p), which `tests/test_bark_sampling.py` checks against the library's processors with a chi-square test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# Upstream Bark ends the semantic stage once EOS has this probability (its generate_text_semantic default).
# transformers' BarkModel.generate drops the config's value and uses none unless it is passed explicitly.
MIN_EOS_P = 0.2


@dataclass(frozen=True)
class Truncation:
    """Which tokens a sampled step may draw from, after the temperature: the `top_k` most likely, then the fewest
    whose probabilities add up to `top_p` (transformers' TopKLogitsWarper and TopPLogitsWarper). None keeps every
    token, as upstream Bark does by default."""

    top_k: int | None = None
    top_p: float | None = None

    @staticmethod
    def of(config: Any) -> Truncation:
        """The truncation a stage's generation config sets (`top_k` 0 and `top_p` 1 are none, as in transformers)."""
        top_k, top_p = getattr(config, "top_k", None), getattr(config, "top_p", None)
        return Truncation(top_k=int(top_k) if top_k else None, top_p=float(top_p) if top_p and top_p < 1 else None)

    def warpers(self) -> list[Any]:
        from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

        warpers: list[Any] = []
        if self.top_k is not None:
            warpers.append(TopKLogitsWarper(top_k=self.top_k))
        if self.top_p is not None:
            warpers.append(TopPLogitsWarper(top_p=self.top_p))
        return warpers


def min_eos_p(config: Any) -> float | None:
    """The semantic stage's EOS threshold (BarkEosPrioritizerLogitsProcessor): the config's `min_eos_p` when set, 0
    meaning none (EOS only as the chosen token), else upstream Bark's 0.2."""
    value = getattr(config, "min_eos_p", None)
    if value is None:
        return MIN_EOS_P
    return float(value) or None


def choose(
    scores: torch.Tensor,
    temperatures: list[float],
    generators: list[torch.Generator | None],
    wanted: list[bool],
    truncation: Truncation | None = None,
) -> torch.Tensor:
    """One token per row: argmax at temperature 0, else a draw from softmax of the scores after the library's
    temperature warper and `truncation`'s, with the row's generator.

    Rows not `wanted` (done, or past the end of their window) take the argmax: their generator is only ever advanced
    by the tokens they keep, so a seeded row samples the same whatever else shares its batch.
    """
    import torch
    from transformers.generation.logits_process import TemperatureLogitsWarper

    warpers = truncation.warpers() if truncation is not None else []
    tokens = torch.argmax(scores, dim=-1)
    for row, (temperature, generator) in enumerate(zip(temperatures, generators, strict=True)):
        if temperature > 0 and wanted[row]:
            logits = TemperatureLogitsWarper(float(temperature))(None, scores[row])
            for warper in warpers:  # they index a batch dimension
                logits = warper(None, logits[None])[0]
            tokens[row] = draw(torch.softmax(logits, dim=-1), generator)
    return tokens


def draw(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One index drawn from the distribution `probs` (V,), by inverting its cumulative sum at one uniform number.

    The same distribution as `torch.multinomial(probs, 1)`, which instead draws one exponential number per category
    and takes an argmax: 0.26 ms for Bark's 12k-token vocabulary on a 2026 AMD EPYC core, a tenth of a batch-8
    coarse decode step, against about 0.03 ms here. A category of probability 0 is never drawn (`right=True` skips
    the empty intervals); the sum runs in float64 so that 12k float32 terms do not drift."""
    import torch

    cumulative = torch.cumsum(probs, dim=0, dtype=torch.float64)
    point = torch.rand(1, generator=generator, dtype=torch.float64, device=probs.device) * cumulative[-1]
    return torch.searchsorted(cumulative, point, right=True).clamp_(max=len(probs) - 1)[0]
