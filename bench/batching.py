"""Batching across jobs, in one process (what the Bark runner does): throughput against the plain per-sentence
`BarkModel.generate` loop, in the same run, on the same sentences, with forced semantic token counts.

It measures:
  plain loop   `processor(sentence, voice_preset=...)` then `BarkModel.generate`, one sentence at a time
  one job      BarkEngine.synthesize of one job's segments (first alone, then batched)
  N jobs       N jobs at once (threads, each a job with its own voice), all batched by the one scheduler
  late job     time to first audio of a one-segment job arriving while N-1 jobs run, against one segment alone
  memory       peak RSS against RSS with the model loaded and warm (one copy of the model)

    python bench/batching.py --checkpoint checkpoints/bark-small --arch bark-small --semantic-tokens 100
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import threading
import time
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "barksite.settings")
django.setup()

from machine import describe  # noqa: E402  (bench/machine.py)

from synthesis.engines import SynthesisOptions  # noqa: E402
from synthesis.engines.bark.checkpoint import build_bark_checkpoint  # noqa: E402
from synthesis.engines.bark.engine import BarkEngine  # noqa: E402
from synthesis.engines.bark.runner import Runner  # noqa: E402

SENTENCES = [
    "The lighthouse keeper climbed the spiral stairs every evening.",
    "At the top he wiped the great lens and trimmed the wick.",
    "Storms came often in the autumn, and he stayed awake until dawn.",
    "Nobody in the village remembered a ship lost on his watch.",
    "In the morning the gulls returned to the harbour wall.",
    "The baker opened her shutters before the sun had risen.",
]
VOICES = ["v2/en_speaker_6", "v2/en_speaker_1", "v2/de_speaker_2", "v2/fr_speaker_3", "v2/it_speaker_4"]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def plain_loop(directory: Path, sentences: list[str], voice: str, tokens: int) -> tuple[float, float]:
    """(seconds, audio seconds) of BarkModel.generate per sentence, as a plain script would run it: the checkpoint
    loaded as it is (float32), `tokens` semantic tokens forced. The first call's one-off setup is not measured."""
    import torch
    from transformers import BarkModel, BarkProcessor

    model, processor = BarkModel.from_pretrained(directory).eval(), BarkProcessor.from_pretrained(directory)
    config = model.generation_config.semantic_config
    sample_rate = model.generation_config.sample_rate

    def generate(sentence: str) -> float:
        with torch.inference_mode():
            return model.generate(**processor(sentence, voice_preset=voice)).shape[-1] / sample_rate

    config["min_new_tokens"] = config["max_new_tokens"] = 16
    generate(sentences[0])
    config["min_new_tokens"] = config["max_new_tokens"] = tokens
    start = time.perf_counter()
    audio = sum(generate(sentence) for sentence in sentences)
    return time.perf_counter() - start, audio


def jobs_at_once(engine: BarkEngine, jobs: list[list[str]], late: list[str] | None = None) -> dict[str, float]:
    """Run `jobs` at once (one thread each); with `late`, submit it once every job has heard its first segment."""
    results: dict[str, float] = {"audio": 0.0}
    first_heard = threading.Barrier(len(jobs) + 1) if late else None
    lock = threading.Lock()

    def run(index: int, segments: list[str], name: str) -> None:
        heard = {"first": False}

        def on_segment(i: int, waveform) -> None:
            with lock:
                results["audio"] += len(waveform) / engine.sample_rate
                results.setdefault(f"{name}_first", time.perf_counter() - start)
            if first_heard is not None and not heard["first"] and name != "late":
                heard["first"] = True
                first_heard.wait()

        options = SynthesisOptions(voice=VOICES[index % len(VOICES)], text_temp=0.0, waveform_temp=0.0)
        engine.synthesize(segments, options, on_segment)

    start = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i, job, f"job{i}")) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    if late is not None and first_heard is not None:
        first_heard.wait()
        arrived = time.perf_counter()
        run(len(jobs), late, "late")
        results["late_first_after_arrival"] = results["late_first"] - (arrived - start)
    for thread in threads:
        thread.join()
    results["seconds"] = time.perf_counter() - start
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=("tiny", "bark-small"), default="tiny")
    parser.add_argument("--checkpoint", type=Path, help="checkpoint directory (built there if missing)")
    parser.add_argument("--semantic-tokens", type=int, default=100, help="forced semantic tokens per segment")
    parser.add_argument("--segments", type=int, default=2, help="segments per job")
    parser.add_argument("--jobs", type=int, default=4, help="jobs at once")
    parser.add_argument("--plain", type=int, default=2, help="sentences for the plain loop")
    parser.add_argument("--dtype", default="auto", help="barksite's BARK_DTYPE (the plain loop stays float32)")
    parser.add_argument("--coarse-window", type=int, default=60, help="barksite's BARK_COARSE_WINDOW (60: exact)")
    args = parser.parse_args()

    directory = args.checkpoint or Path(f"/tmp/bark-{args.arch}")
    if not (directory / "config.json").is_file():
        build_bark_checkpoint(directory, arch=args.arch)
    before = rss_mb()
    engine = BarkEngine(
        model=str(directory),
        device="cpu",
        mode="auto",
        dtype=args.dtype,
        force_semantic_tokens=args.semantic_tokens,
        coarse_window=args.coarse_window,
    )
    engine.load()
    Runner("unused", None, engine).warm_up()
    loaded = rss_mb()
    print(f"machine: {describe()}")
    print(
        f"checkpoint: {args.arch}; {args.semantic_tokens} semantic tokens per segment; barksite in {engine.dtype}, "
        f"batches of up to {engine.max_batch}, coarse windows of {engine.coarse_window}; the plain loop in float32 "
        f"(windows of 60); torch and the model {loaded - before:.0f} MB"
    )

    jobs = [[SENTENCES[(i + k) % len(SENTENCES)] for k in range(args.segments)] for i in range(args.jobs)]
    one = jobs_at_once(engine, jobs[:1])
    alone_first = one["job0_first"]
    many = jobs_at_once(engine, jobs)
    late = jobs_at_once(engine, jobs[:-1], late=SENTENCES[-1:])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the plain loop loads its own model
    streams = engine._scheduler_for().most_streams_in_a_window

    seconds, audio = plain_loop(directory, SENTENCES[: args.plain], VOICES[0], args.semantic_tokens)
    plain_rate = audio / seconds
    print(f"plain loop: {seconds:.1f} s for {audio:.1f} s of audio: {plain_rate:.3f} audio s per compute s")
    one_rate, many_rate = one["audio"] / one["seconds"], many["audio"] / many["seconds"]
    print(
        f"one job ({args.segments} segments): {one['seconds']:.1f} s for {one['audio']:.1f} s: {one_rate:.3f} "
        f"({one_rate / plain_rate:.2f}x plain); first audio {alone_first:.1f} s"
    )
    print(
        f"{args.jobs} jobs at once: {many['seconds']:.1f} s for {many['audio']:.1f} s: {many_rate:.3f} "
        f"({many_rate / plain_rate:.2f}x plain)"
    )
    print(
        f"late job (arriving while {args.jobs - 1} run): first audio {late['late_first_after_arrival']:.1f} s after "
        f"arrival; one segment alone took {alone_first:.1f} s"
    )
    print(f"memory: {loaded:.0f} MB loaded and warm, peak {peak:.0f} MB ({peak / loaded:.2f}x)")
    print(f"scheduler: at most {streams} jobs shared a coarse window")


if __name__ == "__main__":
    main()
