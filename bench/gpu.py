"""Bark's real-time factor at batch 1, 4 and 16 on one device, peak memory, and what an out-of-memory batch does.

Runs the engine's own per-batch path (load with BARK_DTYPE's rules: float16 and FlashAttention-2 where available on
CUDA; generation with the engine's error handling) on a random-weight checkpoint, bark-small's architecture by
default, with every segment forced to `--semantic-tokens` tokens (random weights never stop by themselves). Real
time factor = seconds of audio made / seconds of wall time, all items of a batch together. On CUDA it then checks
that the scheduler splits a batch which cannot fit (or fails the job with a readable error when even one segment
cannot) and that the next job still runs (the worker survives).

    bench/gpu.sh                                           # on a GPU machine (the wrapper: checkpoint + time limit)
    python bench/gpu.py --device cpu --arch tiny --batches 1,2 --semantic-tokens 16   # the same code on a CPU
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "barksite.settings")

from machine import describe  # noqa: E402  (bench/machine.py)

from synthesis.engines import EngineFailed, SynthesisOptions  # noqa: E402
from synthesis.engines.bark.engine import BarkEngine  # noqa: E402
from synthesis.engines.bark.stages import Sampling  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = [
    "The lighthouse keeper climbed the spiral stairs every evening.",
    "At the top he wiped the great lens and trimmed the wick.",
    "Storms came often in the autumn, and he stayed awake until dawn.",
    "Nobody in the village remembered a ship lost on his watch.",
]
SAMPLING = Sampling(text_temp=0.7, waveform_temp=0.7)


def generate(engine: BarkEngine, batch: int, voice: str) -> tuple[float, float]:
    """Seconds of audio and seconds of wall time for one batch of `batch` segments through the engine's path."""
    texts = [SENTENCES[index % len(SENTENCES)] for index in range(batch)]
    prompt = engine._voice_prompt(voice, SynthesisOptions())
    import torch

    synchronize(engine)
    start = time.perf_counter()
    # The engine's own batched rows (what its scheduler runs for each step), with its error handling.
    try:
        with torch.inference_mode():
            inputs = engine._processor(texts)
            rows = [
                engine.stages.row(text_ids, prompt, SAMPLING)
                for text_ids in engine.stages.text_rows(inputs["input_ids"], inputs["attention_mask"])
            ]
            samples = sum(len(waveform) for _, waveform in engine.stages.generate_rows(rows))
    except Exception as exc:
        raise engine._failure(exc) from exc
    synchronize(engine)
    return samples / engine.sample_rate, time.perf_counter() - start


def synchronize(engine: BarkEngine) -> None:
    import torch

    if engine.device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_memory(engine: BarkEngine) -> str:
    import torch

    if engine.device.startswith("cuda"):
        return f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB (torch.cuda.max_memory_allocated)"
    return f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (process, CPU run)"


def oom_check(engine: BarkEngine, voice: str, batch: int) -> None:
    """Cap this process's GPU memory so that a batch of `batch` segments cannot fit, run one job of `batch + 1`
    segments through the engine's scheduler (its first segment alone, then the rest as one batch): the scheduler
    should split the batch and finish the job. Then lift the cap and run one more job: the worker survives."""
    import torch

    engine.max_batch = batch  # before the scheduler exists: it is made at the first synthesize
    options = SynthesisOptions(voice=voice, text_temp=0.0, waveform_temp=0.0)
    texts = [SENTENCES[index % len(SENTENCES)] for index in range(batch + 1)]
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, (torch.cuda.memory_allocated() + 256 * 2**20) / total))
    try:
        engine.synthesize(texts, options)
        scheduler = engine._scheduler_for()
        print(f"OOM check: a job of {batch + 1} segments finished under the cap; batches now hold {scheduler.max_rows}")
    except EngineFailed as exc:
        print(f"OOM check: a job of {batch + 1} segments failed even one segment at a time: {exc}")
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    started = time.perf_counter()
    engine.synthesize(texts[:1], options)
    print(f"OOM check: the next job ran in {time.perf_counter() - started:.1f} s: the worker survives")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu")
    parser.add_argument("--arch", choices=("tiny", "bark-small"), default="bark-small")
    parser.add_argument("--checkpoint", type=Path, help="checkpoint directory (built there if missing)")
    parser.add_argument("--dtype", default="auto", help="BARK_DTYPE: auto, float32, bfloat16, float16, int8")
    parser.add_argument("--batches", default="1,4,16", help="batch sizes, comma-separated")
    parser.add_argument("--semantic-tokens", type=int, default=256, help="forced per segment (256 = 5.1 s of audio)")
    parser.add_argument("--voice", default="v2/en_speaker_6")
    args = parser.parse_args()
    try:
        batches = [int(value) for value in args.batches.split(",")]
    except ValueError:
        parser.error(f"--batches {args.batches!r}: give whole numbers separated by commas, e.g. 1,4,16")
    import torch  # after the arguments are checked (about 5 s): a typo is answered at once

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available to torch {torch.__version__} here")
    import django

    django.setup()
    from synthesis.engines.bark.checkpoint import build_bark_checkpoint

    directory = args.checkpoint or ROOT / "checkpoints" / args.arch
    if not (directory / "config.json").is_file():
        started = time.perf_counter()
        build_bark_checkpoint(directory, arch=args.arch)
        print(f"built a random-weight {args.arch} checkpoint in {directory} in {time.perf_counter() - started:.0f} s")
    engine = BarkEngine(
        model=str(directory), device=args.device, mode="auto", dtype=args.dtype, force_semantic_tokens=16
    )
    started = time.perf_counter()
    engine.load()
    model = engine.stages.model
    print(f"machine: {describe()}")
    if engine.device.startswith("cuda"):
        print(
            f"GPU: {torch.cuda.get_device_name(0)}, {torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB"
        )
    print(
        f"checkpoint: {args.arch} at {directory}, loaded in {time.perf_counter() - started:.1f} s on {engine.device} "
        f"in {engine.dtype}, attention {model.config._attn_implementation}; "
        f"{args.semantic_tokens} semantic tokens per segment"
    )
    semantic_config = model.generation_config.semantic_config
    for batch in batches:
        # Warm-up at this batch size, short: the first generation at each shape pays one-off kernel setup.
        semantic_config["min_new_tokens"] = semantic_config["max_new_tokens"] = 16
        generate(engine, batch, args.voice)
        semantic_config["min_new_tokens"] = semantic_config["max_new_tokens"] = args.semantic_tokens
        if engine.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        audio, seconds = generate(engine, batch, args.voice)
        print(
            f"batch {batch:>3}: {audio:6.1f} s of audio in {seconds:6.1f} s: {audio / seconds:6.2f}x real time "
            f"({seconds / audio:.3f} s per audio second), {peak_memory(engine)}",
            flush=True,
        )
    if engine.device.startswith("cuda"):
        oom_check(engine, args.voice, max(batches))


if __name__ == "__main__":
    main()
