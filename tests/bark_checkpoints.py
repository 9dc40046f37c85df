"""Variants of the tiny Bark checkpoint for the fidelity and EOS tests: a longer fixed length (several coarse windows),
and checkpoints whose semantic model really ends, at a known step, by EOS as its argmax or by the min_eos_p rule.

Random weights never choose EOS by themselves. `eos_checkpoint` makes them: it records, through transformers' own
`BarkModel.generate`, the input of the semantic model's head at every step of each text's greedy path, then solves a
linear programme (scipy's HiGHS) for the head's EOS row, so that EOS's logit stays below both the best other token
and the min_eos_p threshold until the wanted step and there passes one of them. The other tokens' logits are scaled
up (which leaves every greedy choice as it was) so that their distribution is peaked enough for EOS to pass 0.2
without being the argmax. Only that head changes; every step before the end is the tiny checkpoint's own.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

EOS = 10_000  # Bark's semantic EOS (and pad) token; tokens above it are suppressed
MIN_EOS_P = 0.2  # upstream Bark's threshold, barksite's default
SCALE = 200.0  # the other tokens' logits, scaled: a peaked distribution (greedy choices unchanged)
MARGIN = 0.25  # logits of room on each side of every condition (barksite's equal the library's to rounding)
AFTER = 4  # steps after a min_eos_p stop at which EOS is not the argmax (where the rule alone ends the text)


def with_semantic_config(source: Path, target: Path, **semantic: object) -> Path:
    """A copy of the checkpoint at `source` whose semantic generation config has these keys (None removes one)."""
    shutil.copytree(source, target, dirs_exist_ok=True)
    path = target / "generation_config.json"
    config = json.loads(path.read_text())
    for key, value in semantic.items():
        if value is None:
            config["semantic_config"].pop(key, None)
        else:
            config["semantic_config"][key] = value
    path.write_text(json.dumps(config, indent=2))
    return target


@dataclass(frozen=True)
class Stop:
    """Where one text (with its voice) must end: EOS at semantic step `step` (that many tokens before it), as the
    argmax (`rule` "argmax") or through the min_eos_p rule only ("min_eos_p": EOS is not the argmax there, nor at the
    `AFTER` steps after it, so that without the rule the text goes on); and at the earlier steps `also_at` EOS is the
    argmax too, where only a minimum length masks it."""

    text: str
    voice: str | None
    step: int
    rule: str = "argmax"
    also_at: tuple[int, ...] = ()


def head_inputs(directory: Path, stop: Stop, steps: int) -> np.ndarray:
    """The semantic head's input (steps, H) at each of the first `steps` steps of `stop`'s greedy path without EOS,
    as transformers' BarkModel.generate computes it."""
    from transformers import BarkModel, BarkProcessor

    model = BarkModel.from_pretrained(directory).eval()
    processor = BarkProcessor.from_pretrained(directory)
    seen: list[torch.Tensor] = []
    hook = model.semantic.lm_head.register_forward_pre_hook(lambda module, args: seen.append(args[0][:, -1].clone()))
    inputs = processor(stop.text, voice_preset=stop.voice) if stop.voice else processor(stop.text)
    try:
        with torch.inference_mode():
            model.generate(
                **inputs,
                semantic_min_new_tokens=steps,
                semantic_max_new_tokens=steps,
                semantic_do_sample=False,
                coarse_do_sample=False,
                fine_temperature=None,
            )
    finally:
        hook.remove()
    return torch.cat(seen[:steps]).double().numpy()


def eos_checkpoint(source: Path, target: Path, stops: list[Stop], max_new_tokens: int = 64) -> Path:
    """A copy of the tiny checkpoint at `source` (its semantic length limits lifted to 1..`max_new_tokens`) whose
    semantic model ends each of `stops` where it says; AssertionError if no EOS row does all of that."""
    from safetensors.torch import load_file, save_file
    from scipy.optimize import linprog

    with_semantic_config(source, target, min_new_tokens=None, max_new_tokens=max_new_tokens)
    weights = load_file(target / "model.safetensors")
    head = weights["semantic.lm_head.weight"].double() * SCALE
    rows, bounds = [], []  # each condition: row . (w, t) <= bound, t the margin to maximise
    for stop in stops:
        inputs = head_inputs(target, stop, stop.step + 1 + (AFTER if stop.rule == "min_eos_p" else 0))
        logits = inputs @ head[:EOS].T.numpy()  # (steps, 10000): every token but EOS and the suppressed ones
        best = logits.max(axis=1)
        # EOS passes min_eos_p where its logit exceeds log(sum of the others' exp) + log(p / (1 - p)).
        threshold = np.log(np.exp(logits - best[:, None]).sum(axis=1)) + best + math.log(MIN_EOS_P / (1 - MIN_EOS_P))
        for step, x in enumerate(inputs):
            if step < stop.step and step not in stop.also_at:  # neither chosen nor prioritised
                rows.append([*x, 1.0])
                bounds.append(min(best[step], threshold[step]))
            elif step > stop.step:  # past a min_eos_p stop: EOS is not the argmax either
                rows.append([*x, 1.0])
                bounds.append(best[step])
            elif stop.rule == "argmax" or step in stop.also_at:
                rows.append([*(-x), 1.0])
                bounds.append(-best[step])
            else:  # past the threshold, below the best other token
                rows += [[*(-x), 1.0], [*x, 1.0]]
                bounds += [-threshold[step], best[step]]
    width = head.shape[1]
    solution = linprog(
        c=[0.0] * width + [-1.0],
        A_ub=np.asarray(rows),
        b_ub=np.asarray(bounds),
        bounds=[(-1e4, 1e4)] * width + [(None, 4 * MARGIN)],
        method="highs",
    )
    found = solution.status == 0 and solution.x[-1] >= MARGIN
    assert found, f"no EOS row ends these texts there ({solution.message}, margin {solution.x[-1]:.2f})"
    head[EOS] = torch.from_numpy(solution.x[:width])
    weights["semantic.lm_head.weight"] = head.float().contiguous()
    save_file(weights, target / "model.safetensors", metadata={"format": "pt"})
    return target
