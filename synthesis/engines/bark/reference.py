"""transformers' `BarkModel.generate` with each stage's codes recorded: the reference barksite's stages are checked
against (tests/test_bark_fidelity.py, tests/test_bark_eos.py, bench/fidelity.py).

It calls the library exactly as a plain per-sentence loop does (`processor(text, voice_preset=...)`, then
`model.generate`), greedy, with upstream Bark's `min_eos_p` passed (transformers drops it otherwise), and reads what
each stage's own `generate` returned on the way: semantic tokens, coarse codes, fine codes, then the audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from synthesis.engines.bark.sampling import MIN_EOS_P


@dataclass(frozen=True)
class LibraryRun:
    """One text through `BarkModel.generate`: semantic tokens (T,), coarse (2, F) and fine (8, F) codes, audio."""

    semantic: np.ndarray
    coarse: np.ndarray
    fine: np.ndarray
    audio: np.ndarray


def library_run(
    model: Any, processor: Any, text: str, voice: str | None, semantic_tokens: int | None = None, **generate: Any
) -> LibraryRun:
    """`text` in `voice` (None: no speaker prompt) through `model.generate`, greedy; `semantic_tokens` forces that many
    semantic tokens (random weights never stop), `generate` passes further keywords (`min_eos_p` defaults to 0.2)."""
    import torch

    recorded: dict[str, Any] = {}
    stages = {"semantic": model.semantic, "coarse": model.coarse_acoustics, "fine": model.fine_acoustics}
    originals = {name: stage.generate for name, stage in stages.items()}

    def recording(name: str) -> Any:
        def generate_and_record(*args: Any, **kwargs: Any) -> Any:
            output = originals[name](*args, **kwargs)
            # A copy: the coarse stage overwrites the semantic tokens' EOS in place with its own pad token.
            recorded[name] = output.clone() if isinstance(output, torch.Tensor) else output
            return output

        return generate_and_record

    for name, stage in stages.items():
        stage.generate = recording(name)
    lengths: dict[str, Any] = {}
    if semantic_tokens is not None:
        lengths = {"semantic_min_new_tokens": semantic_tokens, "semantic_max_new_tokens": semantic_tokens}
    greedy = {"semantic_do_sample": False, "coarse_do_sample": False, "fine_temperature": None}
    inputs = processor(text, voice_preset=voice) if voice else processor(text)
    try:
        with torch.inference_mode():
            audio, audio_lengths = model.generate(
                **inputs, return_output_lengths=True, **{"min_eos_p": MIN_EOS_P, **greedy, **lengths, **generate}
            )
    finally:
        for stage in stages.values():
            del stage.generate  # the class's own method again
    config = model.generation_config
    semantic = recorded["semantic"][0].cpu().numpy()
    ends = np.flatnonzero(semantic == config.semantic_config.get("eos_token_id", 10_000))  # EOS, then its padding
    semantic = semantic[: ends[0]] if ends.size else semantic
    # Coarse tokens interleave the two codebooks, each offset past the semantic vocabulary.
    coarse_tokens, coarse_length = recorded["coarse"]
    offset = config.semantic_config.get("semantic_vocab_size", 10_000)
    coarse = (coarse_tokens[0, : int(coarse_length[0])].cpu().numpy() - offset) % int(config.codebook_size)
    frames = int(coarse_length[0]) // 2
    return LibraryRun(
        semantic=semantic.astype(np.int64),
        coarse=coarse.reshape(-1, 2).T.astype(np.int64),
        fine=recorded["fine"][0, :, :frames].cpu().numpy().astype(np.int64),
        audio=audio[0, : int(audio_lengths[0])].float().cpu().numpy(),
    )
