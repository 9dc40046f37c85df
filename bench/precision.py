"""What each BARK_DTYPE costs in quality and gains in speed against float32, stage by stage, on the same inputs.

Greedy decoding throughout, so every difference comes from the number format. Each stage of a dtype is fed the
float32 run's output of the stage before (teacher forcing), so one early difference does not hide how the later
stages fare:
  semantic  tokens from the text: share of positions equal to float32's, and the first position that differs
  coarse    codes from float32's semantic tokens: share equal
  fine      codes 3-8 from float32's coarse codes (1-2 are copied): share equal
  codec     float32's fine codes decoded by the codec converted to the dtype (barksite keeps the codec in float32;
            this says what converting it would cost): SNR against float32's audio
  chain     the dtype's own semantic -> coarse -> fine -> audio: SNR of the audio against float32's
Speed: seconds per stage for float32 and the dtype, and the ratio. Random weights never stop by themselves, so
semantic tokens are forced to `--semantic-tokens`; random weights also give flatter logits than trained ones, so
greedy choices flip more easily here than they would with real Bark weights (agreement is a lower bound, roughly).

    python bench/precision.py --arch tiny
    python bench/precision.py --arch bark-small --checkpoint checkpoints/bark-small --semantic-tokens 100
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "barksite.settings")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from machine import describe  # noqa: E402  (bench/machine.py)

from synthesis.engines import SynthesisOptions  # noqa: E402
from synthesis.engines.bark.checkpoint import build_bark_checkpoint  # noqa: E402
from synthesis.engines.bark.engine import BarkEngine  # noqa: E402
from synthesis.engines.bark.stages import Sampling  # noqa: E402

TEXT = "The lighthouse keeper climbed the spiral stairs every evening, counting each step under his breath."
GREEDY = Sampling(text_temp=0.0, waveform_temp=0.0)


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    noise = float(np.sum((reference - other) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(float(np.sum(reference**2)) / noise)


def timed(function: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    with torch.inference_mode():
        result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def run_stages(engine: BarkEngine, voice: str, reference: dict[str, Any] | None) -> dict[str, Any]:
    """Each stage once; fed float32's previous outputs when `reference` is given."""
    stages = engine.stages
    prompt = stages.prompt_tensors(engine._voice_prompt(voice, SynthesisOptions()))
    inputs = engine._processor([TEXT])
    out: dict[str, Any] = {"seconds": {}}
    (semantic,), out["seconds"]["semantic"] = timed(
        stages.semantic, inputs["input_ids"], inputs["attention_mask"], prompt, GREEDY
    )
    (coarse,), out["seconds"]["coarse"] = timed(
        stages.coarse, [reference["semantic"] if reference else semantic], prompt, GREEDY
    )
    fine, out["seconds"]["fine"] = timed(stages.fine, reference["coarse"] if reference else coarse, prompt, GREEDY)
    audio, out["seconds"]["decode"] = timed(stages.decode, reference["fine"] if reference else fine)
    out.update(semantic=semantic, coarse=coarse, fine=fine, audio=audio)
    if reference is not None:  # the dtype's own chain, for the end-to-end SNR
        with torch.inference_mode():
            own_coarse = stages.coarse([semantic], prompt, GREEDY)[0]
            out["chain_audio"] = stages.decode(stages.fine(own_coarse, prompt, GREEDY))
    return out


def codec_snr(engine: BarkEngine, dtype: str, fine: np.ndarray, audio: np.ndarray) -> tuple[float, float]:
    """SNR and seconds of decoding float32's fine codes with a copy of the codec converted to `dtype`."""
    if dtype == "int8":
        return float("nan"), float("nan")  # the codec has no Linear layers to quantize
    codec = copy.deepcopy(engine.stages.model.codec_model).to(getattr(torch, dtype))
    codes = torch.from_numpy(fine[:, None, :])
    start = time.perf_counter()
    with torch.inference_mode():
        decoded = codec.decoder(codec.quantizer.decode(codes)).squeeze().float().numpy()
    return snr_db(audio, decoded), time.perf_counter() - start


def agreement(reference: np.ndarray, other: np.ndarray) -> tuple[float, int | None]:
    """Share of equal positions (over the shorter length) and the first position that differs."""
    n = min(reference.shape[-1], other.shape[-1])
    equal = reference[..., :n] == other[..., :n]
    differs = np.flatnonzero(~equal.reshape(-1, n).all(axis=0)) if equal.ndim > 1 else np.flatnonzero(~equal)
    return float(equal.mean()), (int(differs[0]) if differs.size else None)


def load(directory: Path, dtype: str, tokens: int) -> tuple[BarkEngine, float]:
    start = time.perf_counter()
    engine = BarkEngine(model=str(directory), device="cpu", mode="auto", dtype=dtype, force_semantic_tokens=tokens)
    engine.load()
    return engine, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=("tiny", "bark-small"), default="tiny")
    parser.add_argument("--checkpoint", type=Path, help="checkpoint directory (built there if missing)")
    parser.add_argument("--dtypes", default="bfloat16,int8", help="compared with float32 (float16 is slow on CPUs)")
    parser.add_argument("--semantic-tokens", type=int, default=100)
    parser.add_argument("--voice", default="v2/en_speaker_6")
    args = parser.parse_args()
    import django

    django.setup()
    directory = args.checkpoint or Path(tempfile.mkdtemp(prefix=f"bark-{args.arch}-"))
    if not (directory / "config.json").is_file():
        build_bark_checkpoint(directory, arch=args.arch)

    print(f"machine: {describe()}")
    print(f"checkpoint: {args.arch} at {directory}; {args.semantic_tokens} semantic tokens; greedy; one text")
    results: dict[str, dict[str, Any]] = {}
    for dtype in ["float32", *args.dtypes.split(",")]:
        engine, load_s = load(directory, dtype, args.semantic_tokens)
        # Warm-up, short: the first calls pay one-off kernel setup (oneDNN picks its bf16/int8 kernels).
        semantic_config = engine.stages.model.generation_config.semantic_config
        semantic_config["min_new_tokens"] = semantic_config["max_new_tokens"] = 16
        run_stages(engine, args.voice, None)
        semantic_config["min_new_tokens"] = semantic_config["max_new_tokens"] = args.semantic_tokens
        result = run_stages(engine, args.voice, results.get("float32"))
        result["load_s"] = load_s
        if dtype != "float32":
            reference = results["float32"]
            result["codec"] = codec_snr(engine, dtype, reference["fine"], reference["audio"])
        results[dtype] = result
        del engine
        gc.collect()
        print(f"{dtype}: done (loaded in {load_s:.1f} s)", flush=True)
    report(results)


def report(results: dict[str, dict[str, Any]]) -> None:
    reference = results["float32"]
    stage_names = ("semantic", "coarse", "fine", "decode")
    print("\n| dtype | semantic equal (first diff) | coarse equal | fine 3-8 equal | codec in dtype: SNR | "
          "chain SNR | " + " | ".join(f"{name} s (x fp32)" for name in stage_names) + " |")  # fmt: skip
    print("|---" * (6 + len(stage_names)) + "|")
    seconds = reference["seconds"]
    print("| float32 | - | - | - | - | - | " + " | ".join(f"{seconds[name]:.2f}" for name in stage_names) + " |")
    for dtype, result in results.items():
        if dtype == "float32":
            continue
        semantic, first = agreement(reference["semantic"], result["semantic"])
        coarse, _ = agreement(reference["coarse"], result["coarse"])
        fine, _ = agreement(reference["fine"][2:], result["fine"][2:])
        codec, _ = result["codec"]
        chain = snr_db(reference["audio"], result["chain_audio"])
        speed = " | ".join(
            f"{result['seconds'][name]:.2f} ({seconds[name] / result['seconds'][name]:.2f}x)" for name in stage_names
        )
        print(
            f"| {dtype} | {semantic:.1%} ({first if first is not None else 'none'}) | {coarse:.1%} | {fine:.1%} | "
            f"{codec:.1f} dB | {chain:.1f} dB | {speed} |"
        )
    print(f"load average after: {', '.join(f'{value:.2f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
