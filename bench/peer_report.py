"""bench/peers.py's printout: the contenders' table, how each stage compares, the token agreement and the roofline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from roofline import Limits, Roofline, Row, Sizes, codec_flops

STAGES = ("semantic", "coarse", "fine", "codec")
GIB = 2**30
STC_RATIO = 75 / 49.9 * 2


def parse_contender(name: str) -> tuple[str, str, bool]:
    """'barksite-int8-none' -> ('barksite', 'int8', False): kind, format, with the speaker prompt."""
    voiced = not name.endswith("-none")
    kind, _, fmt = name.removesuffix("-none").partition("-")
    return kind, fmt or "float32", voiced


def load_tokens(result: dict) -> dict[str, np.ndarray]:
    path = Path(result.get("tokens_file", ""))
    return dict(np.load(path)) if path.is_file() else {}


def agreement(tokens: dict, exact: dict, count: int) -> dict[str, float] | None:
    """Shares of semantic tokens, coarse codes and fine codes 3-8 equal to the exact run's, over every sentence."""
    if not exact or not tokens or f"{count - 1}_fine" not in tokens:
        return None
    equal = {"semantic": [0, 0], "coarse": [0, 0], "fine": [0, 0]}
    for i in range(count):
        pairs = {"semantic": (tokens[f"{i}_semantic"], exact[f"{i}_semantic"]),
                 "coarse": (tokens[f"{i}_fine"][:2], exact[f"{i}_fine"][:2]),
                 "fine": (tokens[f"{i}_fine"][2:], exact[f"{i}_fine"][2:])}  # fmt: skip
        for stage, (ours, theirs) in pairs.items():
            n = min(ours.shape[-1], theirs.shape[-1])
            equal[stage][0] += int((ours[..., :n] == theirs[..., :n]).sum())
            equal[stage][1] += theirs.size  # a shorter output's missing tokens count as different
    return {stage: hits / max(total, 1) for stage, (hits, total) in equal.items()}


def histories(arrays: dict[str, np.ndarray]) -> dict[str, int]:
    """How much of the speaker prompt Bark's coarse and fine stages read (the library's trimming, Suno's alike)."""
    semantic_len, coarse_len = len(arrays["semantic_prompt"]), arrays["coarse_prompt"].size
    n_semantic = int(min(209, semantic_len - semantic_len % 2, np.floor(coarse_len / STC_RATIO)))
    return {"semantic_history": n_semantic, "coarse_history": int(round(n_semantic * STC_RATIO)) - 2,
            "fine_history": int(arrays["fine_prompt"].shape[1])}  # fmt: skip


def roofline_of(name: str, result: dict, tokens: dict, arrays: dict, limits: Limits, sizes: Sizes, codec: Any,
                count: int) -> Roofline:  # fmt: skip
    kind, fmt, voiced = parse_contender(name)
    fmt = result.get("dtype", fmt) if kind == "barksite" else "float32"
    roof = Roofline(sizes, limits, fmt)
    history = histories(arrays) if voiced else {}
    batches = result.get("batch_of") or [1] * count
    for i in range(count):
        frames = int(tokens[f"{i}_fine"].shape[1])
        roof.add_row(Row(semantic_tokens=len(tokens[f"{i}_semantic"]), frames=frames, batch=batches[i],
                         voice_prefix=voiced and kind == "barksite" and fmt != "int8",
                         fine_window=fine_window_of(kind, result), **history))  # fmt: skip
        roof.add_codec(codec_flops(codec, frames))
    return roof


def fine_window_of(kind: str, result: dict) -> int | None:
    """The fine stage's width: the library's fixed 1024-frame window, or barksite's real length with
    BARK_FINE_WINDOW=real (None: the prompt's history and the segment's own frames)."""
    return None if kind in ("barksite", "service") and result.get("fine_window") == "real" else 1024


def load_codec(checkpoint: Path) -> Any:
    """The checkpoint's EnCodec alone (for counting its FLOPs)."""
    import json

    from safetensors import safe_open
    from transformers import EncodecConfig, EncodecModel

    codec = EncodecModel(EncodecConfig(**json.loads((checkpoint / "config.json").read_text())["codec_config"]))
    with safe_open(str(checkpoint / "model.safetensors"), "pt") as weights:
        codec.load_state_dict({key[len("codec_model.") :]: weights.get_tensor(key) for key in weights.keys()  # noqa: SIM118
                               if key.startswith("codec_model.")})  # fmt: skip
    return codec.eval()


REFERENCES = {"library": "plain", "barksite": "barksite-float32"}  # the exact outputs compared with


def reference_of(name: str, kind: str) -> str:
    """The run `name` is compared with: the library's float32 output (the plain loop), or barksite's float32 one,
    with the same speaker prompt or none."""
    return REFERENCES[kind] + ("" if parse_contender(name)[2] else "-none")


def report(results: dict[str, dict], skipped: dict[str, str], order: list[str], count: int, arrays: dict,
           limits: Limits, checkpoint: Path, repeat: int) -> None:  # fmt: skip
    names = [name for name in order if name in results]
    tokens = {name: load_tokens(results[name]) for name in names}
    plain = results.get("plain")
    plain_rate = plain["wall"] / plain["audio"] if plain else None
    print(f"\ncontenders ({'fastest of ' + str(repeat) + ' rounds' if repeat > 1 else 'one round'}; seconds are "
          "wall seconds on the whole machine; 'vs plain' = how many times faster than the plain loop; 'equal to' = "
          "shares of semantic tokens / coarse codes / fine codes 3-8 equal to the library's float32 output (the plain "
          "loop) and to barksite-float32's, with the same prompt):")  # fmt: skip
    header = f"{'contender':<24}{'s/audio s':>10}{'vs plain':>9}" + "".join(f"{s:>9}" for s in STAGES)
    print(header + f"{'peak GiB':>9}  {'equal to the library':<24}  |  equal to barksite-float32")
    for name in names:
        result = results[name]
        rate = result["wall"] / result["audio"]
        stages = "".join(f"{result['stages'][s]:>9.2f}" if s in result["stages"] else f"{'':>9}" for s in STAGES)
        against = f"{plain_rate / rate:>8.2f}x" if plain_rate else f"{'':>9}"
        peak = result["peak_rss"] / GIB
        print(f"{name:<24}{rate:>10.2f}{against}{stages}{peak:>9.2f}  {equality(name, results, tokens, count)}")
    for name, why in skipped.items():
        print(f"{name:<24} not measured: {why}")
    compare_stages(names, results)
    if "suno" in results and results["suno"].get("parity"):
        parity = results["suno"]["parity"]
        print("Suno's models against transformers' on the same inputs (largest logit difference; every argmax equal): "
              + ", ".join(f"{stage} {p['max_abs_diff']:.2e} {'yes' if p['argmax_equal'] else 'NO'}"
                          for stage, p in parity.items()))  # fmt: skip
    for name in names:
        for note in results[name].get("notes", []):
            print(f"{name}: {note}")
    print_roofline(names, results, tokens, arrays, limits, checkpoint, count)
    print(f"load average after: {', '.join(f'{value:.2f}' for value in os.getloadavg())}")


def equality(name: str, results: dict, tokens: dict, count: int) -> str:
    if parse_contender(name)[0] == "service":
        twin = name.replace("service", "barksite")
        ours, theirs = results[name].get("waveforms"), tokens.get(twin, {})
        if not theirs or ours is None:
            return "(no in-process run to compare)"
        same = all(np.max(np.abs(ours[i] - np.clip(theirs[f"{i}_audio"], -1, 1))) <= 2 / 32768 for i in range(count))
        return f"audio {'equal' if same else 'NOT equal'} to {twin}'s (16-bit)"
    columns = []
    for kind in REFERENCES:
        reference = reference_of(name, kind)
        shared = agreement(tokens.get(name, {}), tokens.get(reference, {}), count) if reference != name else None
        columns.append("(itself)" if reference == name else shares(shared) if shared else "-")
    return "  |  ".join(f"{column:<24}" for column in columns)


def shares(shared: dict[str, float] | None) -> str:
    return " / ".join(f"{100 * shared[s]:.1f}%" for s in ("semantic", "coarse", "fine")) if shared else "-"


def compare_stages(names: list[str], results: dict) -> None:
    """barksite's default format against each peer with the same prompt, stage by stage (>1: barksite faster)."""
    for ours in ("barksite-auto", "barksite-auto-none"):
        if ours not in results:
            continue
        voiced = parse_contender(ours)[2]
        kinds = {name: parse_contender(name) for name in names}
        peers = [n for n, (kind, _, v) in kinds.items() if kind in ("plain", "suno", "barkcpp") and v == voiced]
        for peer in peers:
            ratios = []
            for stage in STAGES:
                a, b = results[ours]["stages"].get(stage), results[peer]["stages"].get(stage)
                per_a, per_b = a / results[ours]["audio"] if a else None, b / results[peer]["audio"] if b else None
                ratios.append(f"{stage} {per_b / per_a:.2f}x" if per_a and per_b else f"{stage} -")
            print(f"{ours} against {peer}, per audio second (its time / barksite's): {', '.join(ratios)}")


def print_roofline(names: list[str], results: dict, tokens: dict, arrays: dict, limits: Limits, checkpoint: Path,
                   count: int) -> None:  # fmt: skip
    sizes, codec = Sizes.of(checkpoint), load_codec(checkpoint)
    print(
        "\nroofline (work counted from Bark's algorithm as each contender runs it, see bench/roofline.py; bound = "
        "the longer of FLOPs at the format's matrix peak and bytes at the bandwidth, summed over its phases):"
    )
    print(f"{'contender':<24}{'stage':<10}{'GFLOP':>9}{'GB read':>9}{'bound s':>9}{'measured':>9}{'reached':>9}  binds")
    for name in names:
        kind = parse_contender(name)[0]
        if kind == "service" or (kind == "barkcpp" and name != "barkcpp-f32-none") or not tokens.get(name):
            continue
        roof = roofline_of(name, results[name], tokens[name], arrays, limits, sizes, codec, count)
        for stage in STAGES:
            work, measured = roof.stages.get(stage), results[name]["stages"].get(stage)
            if work is None or not measured:
                continue
            print(f"{name:<24}{stage:<10}{work.flops / 1e9:>9.1f}{work.bytes / 1e9:>9.2f}{work.bound_s:>9.2f}"
                  f"{measured:>9.2f}{100 * work.bound_s / measured:>8.0f}%  {work.binds}")  # fmt: skip
