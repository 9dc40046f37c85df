"""The deployment's choices of how Bark generates (the coarse and fine windows, sampling, forced lengths): which of them
make the codes differ from the library's, how health and the job record name those, and how they are written into a
loaded model's generation config, where both the library's stages and barksite's read them.

By default every choice is the library's (docs/fidelity.md): Bark's 60-token coarse windows, the fine stage in its
1024-frame window, upstream Bark's sampling (no top-k or top-p; EOS once its probability passes 0.2) unless the
checkpoint's own generation config sets it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from synthesis.engines import EngineUnavailable
from synthesis.engines.bark.stages import COARSE_WINDOW, FINE_WINDOW, FINE_WINDOWS


@dataclass
class Choices:
    # BARK_COARSE_WINDOW: coarse tokens per sliding window; Bark's 60 is exact, more is faster and changes tokens.
    coarse_window: int = COARSE_WINDOW
    # BARK_FINE_WINDOW: `full` runs the fine stage over Bark's whole 1024-frame window, reproducing
    # BarkModel.generate exactly; `real` runs it on each segment's own frames, faster, changing codebooks 3-8.
    fine_window: str = FINE_WINDOW
    # BARK_TOP_K, BARK_TOP_P, BARK_MIN_EOS_P: None leaves the checkpoint's generation config (sampling.py).
    top_k: int | None = None
    top_p: float | None = None
    min_eos_p: float | None = None
    # Benchmarks only (BARK_FORCE_SEMANTIC_TOKENS): every segment gets exactly this many semantic tokens, since
    # random-weight checkpoints never stop by themselves. 0 leaves the checkpoint's own limits.
    force_semantic_tokens: int = 0

    def __post_init__(self) -> None:
        if self.fine_window not in FINE_WINDOWS:
            raise ValueError(f"fine_window must be one of {', '.join(FINE_WINDOWS)}, not {self.fine_window!r}")

    @property
    def sampling(self) -> dict[str, float | int | None]:
        return {"top_k": self.top_k, "top_p": self.top_p, "min_eos_p": self.min_eos_p}

    def departures(self) -> str:
        """Health's words for the choices that make the codes differ from the library's ("" by default)."""
        notes = []
        if self.coarse_window != COARSE_WINDOW:
            notes.append(f"coarse windows of {self.coarse_window} tokens")
        if self.fine_window != FINE_WINDOW:
            notes.append("the fine stage on each segment's real length (BARK_FINE_WINDOW=real, not exact)")
        notes += [f"{key} {value}" for key, value in self.sampling.items() if value is not None]
        return "".join(f", {note}" for note in notes)

    def changed(self) -> str:
        """The settings that differ from their defaults, as the job records them ("BARK_FINE_WINDOW=real ...")."""
        changed = []
        if self.fine_window != FINE_WINDOW:
            changed.append(f"BARK_FINE_WINDOW={self.fine_window}")
        if self.coarse_window != COARSE_WINDOW:
            changed.append(f"BARK_COARSE_WINDOW={self.coarse_window}")
        changed += [f"BARK_{key.upper()}={value}" for key, value in self.sampling.items() if value is not None]
        return " ".join(changed)

    def check_fits(self, limit: int, model_id: str) -> None:
        """EngineUnavailable unless the coarse window fits the coarse model's positions (`limit` tokens at most)."""
        if self.coarse_window > limit:
            raise EngineUnavailable(
                f"BARK_COARSE_WINDOW={self.coarse_window} does not fit {model_id}'s coarse model: its positions allow "
                f"windows of at most {limit} tokens."
            )

    def apply(self, generation_config: Any) -> None:
        """Write the choices into a loaded model's nested generation config (the model's, not the checkpoint's)."""
        semantic, coarse = generation_config.semantic_config, generation_config.coarse_acoustics_config
        if self.force_semantic_tokens:
            semantic["min_new_tokens"] = semantic["max_new_tokens"] = self.force_semantic_tokens
        coarse["sliding_window_len"] = self.coarse_window
        for key, value in self.sampling.items():
            if value is not None:
                semantic[key] = value
                if key != "min_eos_p":  # the semantic stage's alone
                    coarse[key] = value
