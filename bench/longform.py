"""Long-form Bark on this machine: time to first audio and total time for a ~2,000-character text, by mode.

Modes (all carry one voice through the text and call the engine exactly as a job does; the first segment alone,
then batches of up to BARK_MAX_BATCH segments, see synthesis/engines/bark/scheduler.py):
  full        the fine stage over Bark's 1024-frame window, the library's codes (BARK_FINE_WINDOW=full, the default)
  real        the fine stage on each segment's real length (BARK_FINE_WINDOW=real: faster, codebooks 3-8 differ)
  no-prefixes full, without the store of voice-history prefixes (prefixes.PrefixStore), to measure what it saves
Each run starts with the store empty, as a newly started runner does.
For the plain per-sentence BarkModel.generate loop and several jobs at once, see bench/batching.py.

Random weights never emit EOS, so `--semantic-tokens N` forces every segment to N semantic tokens (N / 49.9 s of
audio); without it the tiny checkpoint makes 32 (its config) and bark-small would run to 768. `--segments K` measures
only the first K segments and extrapolates linearly per segment after the first (said so in the output). On a
shared host, `--repeat R` runs each mode R times and reports the fastest run.

    python bench/longform.py --arch tiny
    python bench/longform.py --arch bark-small --checkpoint /tmp/bark-small --semantic-tokens 150
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Generator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import describe  # noqa: E402  (bench/machine.py)
from texts import PARAGRAPH, text_of  # noqa: E402  (bench/texts.py)

from synthesis.engines import SynthesisOptions  # noqa: E402
from synthesis.engines.bark import decode  # noqa: E402
from synthesis.engines.bark.checkpoint import build_bark_checkpoint  # noqa: E402
from synthesis.engines.bark.engine import BarkEngine  # noqa: E402
from synthesis.engines.bark.prefixes import PrefixStore  # noqa: E402
from synthesis.media.text import split_text  # noqa: E402

MODES = {"full": ("full", True), "real": ("real", True), "no-prefixes": ("full", False)}  # BARK_FINE_WINDOW, store


def time_stages(engine: BarkEngine) -> dict[str, float]:
    """Wrap the engine's stages with timers; returns the dict they accumulate into. The stages the scheduler runs a
    unit at a time are timed through their pausing computations (`semantic_steps`, `coarse_window_steps`,
    `fine_steps`), unit by unit, whether it runs them that way or whole."""
    totals: dict[str, float] = defaultdict(float)
    steps = [
        (decode, "semantic_steps", "semantic"),
        (decode, "coarse_window_steps", "coarse"),
        (engine.stages, "fine_steps", "fine"),
    ]
    for owner, name, stage in steps:
        original = getattr(owner, name)

        def timed_steps(
            *args: Any, _original: Any = original, _stage: str = stage, **kwargs: Any
        ) -> Generator[None, None, Any]:
            units = _original(*args, **kwargs)
            while True:
                start = time.perf_counter()
                try:
                    next(units)
                except StopIteration as done:
                    return done.value
                finally:
                    totals[_stage] += time.perf_counter() - start
                yield

        setattr(owner, name, timed_steps)
    decode_audio = engine.stages.decode

    def timed_decode(*args: Any) -> Any:
        start = time.perf_counter()
        try:
            return decode_audio(*args)
        finally:
            totals["codec"] += time.perf_counter() - start

    engine.stages.decode = timed_decode
    return totals


def run(
    engine: BarkEngine, segments: list[str], voice: str | None, mode: str, store: PrefixStore | None = None
) -> dict[str, Any]:
    engine.choices.fine_window, reuse = MODES[mode]
    if store is not None:
        store.clear()
    engine.stages.prefixes = store if reuse else None
    heard: list[float] = []
    start, cpu = time.perf_counter(), time.process_time()
    waveforms = engine.synthesize(
        segments,
        SynthesisOptions(voice=voice, seed=1),
        lambda index, waveform: heard.append(time.perf_counter() - start),
    )
    return {
        "first": heard[0],
        "total": time.perf_counter() - start,
        "cpu": time.process_time() - cpu,  # the process's CPU seconds: less swayed than wall time by a busy host
        "audio": sum(len(waveform) for waveform in waveforms) / engine.sample_rate,
        "batches": sorted({run.batch for run in engine.last_run}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=("tiny", "bark-small"), default="tiny")
    parser.add_argument("--checkpoint", type=Path, help="checkpoint directory (built there if missing)")
    parser.add_argument("--chars", type=int, default=2000)
    parser.add_argument("--semantic-tokens", type=int, help="force this many semantic tokens per segment")
    parser.add_argument("--segments", type=int, help="measure only the first K segments and extrapolate")
    parser.add_argument("--voice", default="v2/en_speaker_6", help="a preset, or 'none' to carry segment 1's voice")
    parser.add_argument("--modes", default="full,real", help=f"comma-separated, of: {', '.join(MODES)}")
    parser.add_argument("--repeat", type=int, default=1, help="runs per mode; the fastest is reported (noisy hosts)")
    parser.add_argument("--dtype", default="float32", help="BARK_DTYPE for the engine (auto, float32, int8, ...)")
    args = parser.parse_args()
    modes = args.modes.split(",")
    if unknown := [mode for mode in modes if mode not in MODES]:
        parser.error(f"--modes: no mode {', '.join(unknown)}; the modes are {', '.join(MODES)}")

    directory = args.checkpoint or Path(tempfile.mkdtemp(prefix=f"bark-{args.arch}-"))
    if not (directory / "config.json").is_file():
        build_bark_checkpoint(directory, arch=args.arch)
    loading = time.perf_counter()
    engine = BarkEngine(model=str(directory), device="cpu", mode="auto", dtype=args.dtype)
    engine.load()
    loading = time.perf_counter() - loading
    store = engine.stages.prefixes  # None where the engine keeps none (int8)
    semantic_config = engine.stages.model.generation_config.semantic_config
    configured = {key: semantic_config.get(key) for key in ("min_new_tokens", "max_new_tokens")}
    # Warm-up, short: the first call at each batch size pays one-off allocations and kernel setup.
    semantic_config["min_new_tokens"] = semantic_config["max_new_tokens"] = 16
    for mode in MODES:
        run(engine, [PARAGRAPH[:40]] * 3, None, mode)
    semantic_config.update(configured)
    if args.semantic_tokens:
        semantic_config["min_new_tokens"] = semantic_config["max_new_tokens"] = args.semantic_tokens
    totals = time_stages(engine)

    text = text_of(args.chars)
    segments = split_text(text)
    measured = segments[: args.segments] if args.segments else segments
    voice = None if args.voice == "none" else args.voice
    print(f"machine: {describe()}")
    print(
        f"checkpoint: {args.arch} at {directory} in {engine.dtype} (loaded in {loading:.1f} s); "
        f"text: {len(text)} characters, "
        f"{len(segments)} segments; voice: {voice or 'carried from segment 1'}; "
        f"semantic tokens per segment: {args.semantic_tokens or 'from the checkpoint config'}"
    )
    if len(measured) < len(segments):
        print(f"measuring the first {len(measured)} segments; totals for all {len(segments)} are extrapolated")

    best: dict[str, dict[str, Any]] = {}
    # Round-robin, so that a burst of load elsewhere on the host hits every mode alike.
    for _ in range(args.repeat):
        for mode in modes:
            totals.clear()
            result = {**run(engine, measured, voice, mode, store), "stages": dict(totals)}
            print(report(mode, result, len(segments)), flush=True)
            if mode not in best or result["total"] < best[mode]["total"]:
                best[mode] = result
    if args.repeat > 1:
        print(f"fastest of {args.repeat} runs per mode:")
        for mode in modes:
            print(report(mode, best[mode], len(segments)))
    if "full" in best and "real" in best:
        print(compare_windows(best["full"], best["real"]))
    print(f"load average after: {', '.join(f'{value:.2f}' for value in os.getloadavg())}")


def compare_windows(full: dict[str, Any], real: dict[str, Any]) -> str:
    """What BARK_FINE_WINDOW=real saves against the default full window, in the same run."""
    fine_full, fine_real = full["stages"].get("fine", 0.0), real["stages"].get("fine", 0.0)
    return (
        f"BARK_FINE_WINDOW=real against full: total {real['total']:.1f} s vs {full['total']:.1f} s "
        f"({full['total'] / real['total']:.2f}x faster, {1 - real['total'] / full['total']:.0%} saved); "
        f"first audio {real['first']:.1f} s vs {full['first']:.1f} s; "
        f"fine stage {fine_real:.1f} s vs {fine_full:.1f} s ({fine_full / max(fine_real, 1e-9):.2f}x); "
        f"CPU {real['cpu']:.1f} s vs {full['cpu']:.1f} s ({full['cpu'] / real['cpu']:.2f}x)"
    )


def report(mode: str, result: dict[str, Any], n_segments: int) -> str:
    line = (
        f"{mode:>10}: first audio {result['first']:7.1f} s, total {result['total']:7.1f} s "
        f"for {result['audio']:.1f} s of audio ({result['total'] / result['audio']:.2f} s per audio second), "
        f"{result['cpu']:.1f} CPU s"
    )
    measured = sum(len(batch) for batch in result["batches"])
    if measured < n_segments:
        per_segment = (result["total"] - result["first"]) / max(1, measured - 1)
        line += f"; all {n_segments} segments ~{result['first'] + per_segment * (n_segments - 1):.0f} s (extrapolated)"
    stages = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result["stages"].items())
    return f"{line}\n{'':>12}stages: {stages}; batches: {result['batches']}"


if __name__ == "__main__":
    main()
