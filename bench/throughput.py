"""Audio made per second through the real service (gunicorn + `manage.py runworkers` with the project's default
settings, the web API, the Bark engine) against a plain per-sentence `BarkModel.generate` loop, in the same run.

First one job alone, then N jobs of the same ~2,000-character text at once through the API (the last of them once
each of the others has stored its first segment, so its time to first audio is that of a job arriving while the others
run, to compare with the lone job's: one segment's generation). Random weights never stop by themselves, so every
segment gets exactly `--tokens` semantic tokens: the service through BARK_FORCE_SEMANTIC_TOKENS (a benchmarking knob),
the plain loop through `semantic_min_new_tokens == semantic_max_new_tokens`. The plain loop (`processor(sentence,
voice_preset=...)` then `model.generate`, float32 as loaded, in a process of its own) runs one job's sentences; all
jobs share them, so its rate compares directly. The jobs are submitted once the Bark runner reports "ready" in
/api/health (a service starts once, then serves; the start is printed apart, as the plain loop's load is).

The service runs once per fine window (`--fine-windows`, by default `full`, the default and exact, then `real`, which
is faster and changes codebooks 3-8), each started afresh; the plain loop runs once, after them. On a noisy host name
the windows in turns (`full,real,full,real`): each run is printed, and the comparison takes each window's fastest.

Printed, per fine window: audio seconds per wall second for the lone job, the N jobs and the plain loop (the whole
machine is the compute either way; the service's audio counted without the silences it puts between segments), the
ratios, time to first audio, the CPU seconds each part of the service used while the N jobs ran (the runner, which holds
the model; the web; the workers), the runner's peak resident memory against its own once it had loaded the model (one
copy of the model serves every job), and every service process's memory before and after the jobs as PSS (shared pages
split among the processes sharing them; summed RSS would count torch's libraries once per process).

At bark-small's size the plain loop costs ~23 s of compute per second of audio on 2 cores: scale down with
--jobs, --segments (segments per job, from the start of the text) and --tokens.

    python bench/throughput.py --arch tiny
    python bench/throughput.py --arch bark-small --jobs 2 --segments 2 --tokens 100
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import describe  # bench/machine.py (benchmarks run as scripts from bench/)
from service import VOICE, Service, cpu_by_role, memory_by_role  # bench/service.py
from texts import text_of  # bench/texts.py

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the project's own helpers (segments, pauses), imported where they are used
FINISHED = ("completed", "failed", "cancelled")  # a job's final states


def job_text(chars: int, segments: int | None) -> str:
    """The text of one job: `chars` characters, or only as many of its first segments as asked."""
    from synthesis.media.text import split_text

    text = text_of(chars)
    return " ".join(split_text(text)[:segments]) if segments else text


# --- the service ---------------------------------------------------------------------------------------------


def run_service(service: Service, text: str, jobs: int, timeout_s: float) -> dict[str, Any]:
    """One job alone, then `jobs` jobs together (the last arriving while the others run); the figures of both."""
    deadline = time.monotonic() + timeout_s
    alone = watch(service, [], service.submit(text, seed=jobs + 1), deadline)  # its own seed: nothing to reuse
    before = service.process_table(memory=False)
    ids = [service.submit(text, seed=index + 1) for index in range(jobs - 1)]
    # The last job arrives while the others run: once each of them has stored its first segment (or at once when it
    # is alone), so its time to first audio is that of a job arriving mid-run, not one queued behind their starts.
    while ids and not all(service.job(job_id)["progress"]["segments_done"] >= 1 for job_id in ids):
        if time.monotonic() > deadline:
            raise SystemExit(f"no first audio after {timeout_s:.0f} s; raise --timeout or scale down")
        time.sleep(0.5)
    together = watch(service, ids, service.submit(text, seed=jobs), deadline)
    after = service.process_table()
    return {
        "alone": alone,
        "together": together,
        "segments": together["states"][0]["plan"]["segments"],
        "dtype": together["states"][0].get("dtype", "?"),
        "cpu": cpu_by_role(before, after),
        "peak_runner_rss": service.peak_runner_rss,
        "ready_runner_rss": service.ready_runner_rss,
        "ready_memory": service.ready_memory,
        "after_memory": memory_by_role(after),
        "ready_after": service.ready_after,
    }


def watch(service: Service, ids: list[str], probe: str, deadline: float) -> dict[str, Any]:
    """Poll jobs `ids` and `probe` (just submitted) until all have finished: their audio, the wall time from the first
    submission to the last completion, and the probe's time to first audio.

    Every figure comes from the service's own records, not from when we looked: the jobs' timestamps, and for the first
    audio the time its first segment's file was written. So the jobs are polled only once a second: each poll is a
    request the service's two cores answer, and polling the probe five times a second slowed its first segment."""
    ids = [*ids, probe]
    finished: dict[str, dict] = {}
    while len(finished) < len(ids):
        if time.monotonic() > deadline:
            raise SystemExit("jobs still running at the deadline; raise --timeout or scale down")
        time.sleep(1.0)
        for job_id in ids:
            if job_id not in finished and (state := service.job(job_id))["status"] in FINISHED:
                finished[job_id] = state
    failed = [state for state in finished.values() if state["status"] != "completed"]
    if failed:
        raise SystemExit(f"{len(failed)} jobs did not complete; the first: {failed[0]['error']}")
    states = [finished[job_id] for job_id in ids]
    wall = max(_when(state["completed_at"]) for state in states) - min(_when(state["submitted_at"]) for state in states)
    first_segment = service.scratch / "outputs" / "jobs" / probe / "segments" / "0000.wav"
    submitted = _when(finished[probe]["submitted_at"])
    return {
        "states": states,
        "audio": sum(speech_s(state) for state in states),
        "wall": wall,
        "first_audio": first_segment.stat().st_mtime - submitted,
        "probe_waited": _when(finished[probe]["started_at"]) - submitted,
    }


def speech_s(job: dict) -> float:
    """The seconds of audio the engine generated for a finished job: its duration less the silences the service puts
    after its segments (between them, or where a control event set a pause), which cost no compute."""
    from synthesis.media.audio import pause_after_s

    plan = job["plan"]
    pauses_s = {int(index): ms / 1000 for index, ms in (plan.get("pauses_ms") or {}).items()}
    count = len(plan["segments"])
    return job["duration_s"] - sum(pause_after_s(index, count, pauses_s) for index in range(count))


def _when(timestamp: str | None) -> float:
    """Seconds since the epoch of one of the API's ISO 8601 timestamps."""
    from datetime import datetime

    if timestamp is None:
        raise SystemExit("a finished job without its timestamp")
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


# --- the plain loop ------------------------------------------------------------------------------------------


def plain_loop(checkpoint: str, sentences: list[str], tokens: int) -> None:
    """In its own process: what a user would write with transformers alone; prints its figures as JSON."""
    started = time.monotonic()
    import torch
    from transformers import BarkModel, BarkProcessor

    model = BarkModel.from_pretrained(checkpoint).eval()
    processor = BarkProcessor.from_pretrained(checkpoint)
    loaded = time.monotonic()
    samples = 0
    sampled = {"semantic_temperature": 0.7, "coarse_temperature": 0.7, "fine_temperature": 0.5}
    for index, sentence in enumerate(sentences):
        torch.manual_seed(index)
        inputs = processor(sentence, voice_preset=VOICE)
        with torch.inference_mode():
            audio = model.generate(**inputs, semantic_min_new_tokens=tokens, semantic_max_new_tokens=tokens,
                                   semantic_do_sample=True, coarse_do_sample=True, **sampled)  # fmt: skip
        samples += audio.shape[-1]
    done = time.monotonic()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    rate = int(model.generation_config.sample_rate)
    print(json.dumps({"audio": samples / rate, "wall": done - loaded, "load": loaded - started, "peak_rss": peak}))


def run_plain(checkpoint: Path, sentences: list[str], tokens: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OMP_NUM_THREADS", None)
    result = subprocess.run(
        [sys.executable, __file__, "--plain", str(checkpoint), "--tokens", str(tokens), "--sentences",
         json.dumps(sentences)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"the plain loop failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- main ----------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=4, help="jobs submitted at once (the queue admits 8 by default)")
    parser.add_argument("--segments", type=int, help="segments per job, from the start of the text (default: all)")
    parser.add_argument("--tokens", type=int, default=100, help="semantic tokens per segment (49.9 = 1 s of audio)")
    parser.add_argument("--chars", type=int, default=2000)
    parser.add_argument("--arch", choices=("tiny", "bark-small"), default="tiny")
    parser.add_argument("--checkpoint", type=Path, help="checkpoint directory (built there if missing)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the jobs")
    parser.add_argument(
        "--fine-windows", default="full,real", help="BARK_FINE_WINDOW values to run the service with, in turn"
    )
    parser.add_argument("--plain", help=argparse.SUPPRESS)  # internal: run the plain loop on this checkpoint
    parser.add_argument("--sentences", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        plain_loop(args.plain, json.loads(args.sentences), args.tokens)
        return
    # SIGTERM (a test's timeout, a shell's kill) unwinds like Ctrl-C, so the service's processes are stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if not 1 <= args.jobs <= 8 or not 16 <= args.tokens <= 768 or (args.segments is not None and args.segments < 1):
        parser.error("--jobs must be 1-8 (the default queue size), --tokens 16-768, --segments at least 1")
    windows = args.fine_windows.split(",")
    if any(window not in ("full", "real") for window in windows):
        parser.error(f"--fine-windows: {args.fine_windows!r} is not a list of full and real")

    checkpoint = (args.checkpoint or ROOT / "checkpoints" / args.arch).resolve()
    if not (checkpoint / "config.json").is_file():
        build = [sys.executable, "manage.py", "build_bark_checkpoint", str(checkpoint), "--arch", args.arch]
        subprocess.run(build, cwd=ROOT, check=True, capture_output=True)
    text = job_text(args.chars, args.segments)
    served: list[tuple[str, dict[str, Any]]] = []
    for window in windows:
        with (
            tempfile.TemporaryDirectory(prefix="barksite-throughput-") as scratch,
            Service(Path(scratch), checkpoint, args.tokens, window) as service,
        ):
            served.append((window, run_service(service, text, args.jobs, args.timeout)))
    segments = served[0][1]["segments"]
    plain = run_plain(checkpoint, segments, args.tokens)
    gib = 2**30
    print(f"machine: {describe()}")
    print(
        f"checkpoint: {args.arch} at {checkpoint}; jobs of {len(text)} characters, {len(segments)} "
        f"segments each, {args.tokens} semantic tokens per segment, voice {VOICE}"
    )
    print(
        f"plain loop (BarkModel.generate per sentence, float32, one process, {len(segments)} sentences): "
        f"{plain['audio']:.1f} s of audio in {plain['wall']:.1f} s (+ {plain['load']:.1f} s import and load): "
        f"{plain['audio'] / plain['wall']:.3f} audio s per s "
        f"({plain['audio'] / (plain['wall'] + plain['load']):.3f} with its load); "
        f"peak memory {plain['peak_rss'] / gib:.2f} GiB"
    )
    fastest: dict[str, dict[str, Any]] = {}
    for window, run in served:
        report(args, window, run, plain)
        if window not in fastest or run["together"]["wall"] < fastest[window]["together"]["wall"]:
            fastest[window] = run
    if "full" in fastest and "real" in fastest:
        print(compare_windows(fastest["full"], fastest["real"], args.jobs))
    print(f"load average after: {', '.join(f'{value:.2f}' for value in os.getloadavg())}")


def compare_windows(full: dict[str, Any], real: dict[str, Any], jobs: int) -> str:
    """What BARK_FINE_WINDOW=real saves against the default full window: rate ratios, in the same run."""

    def rate(run: dict[str, Any]) -> float:
        return float(run["audio"] / run["wall"])

    return (
        f"BARK_FINE_WINDOW=real against full: one job alone {rate(real['alone']) / rate(full['alone']):.2f}x the rate, "
        f"{jobs} jobs at once {rate(real['together']) / rate(full['together']):.2f}x; first audio "
        f"{real['alone']['first_audio']:.1f} s vs {full['alone']['first_audio']:.1f} s alone, "
        f"{real['together']['first_audio']:.1f} s vs {full['together']['first_audio']:.1f} s while the others ran"
    )


def report(args: argparse.Namespace, window: str, served: dict, plain: dict) -> None:
    gib = 2**30
    alone, together = served["alone"], served["together"]
    plain_rate = plain["audio"] / plain["wall"]
    plain_loaded_rate = plain["audio"] / (plain["wall"] + plain["load"])
    settings = "default settings" if window == "full" else "default settings but BARK_FINE_WINDOW=real, not exact,"
    print(
        f"service: {settings} (gunicorn + runworkers, BARK_FINE_WINDOW={window}), "
        f"BARK_DTYPE={os.environ.get('BARK_DTYPE', 'auto')} -> {served['dtype']}, "
        f"runner ready {served['ready_after']:.1f} s after the start"
    )
    for label, run in (("one job alone", alone), (f"{args.jobs} jobs at once", together)):
        rate = run["audio"] / run["wall"]
        print(
            f"{label}: {run['audio']:.1f} s of audio in {run['wall']:.1f} s from submission to the last completion: "
            f"{rate:.3f} audio s per s, {rate / plain_rate:.2f}x the plain loop's rate "
            f"({rate / plain_loaded_rate:.2f}x counting the plain loop's load too)"
        )
    print(
        f"time to first audio: one job alone {_first(alone)}; the job submitted while the other "
        f"{args.jobs - 1} ran {_first(together)}"
    )
    cpu = served["cpu"]
    print(
        f"CPU while the {args.jobs} jobs ran: {sum(cpu.values()):.1f} s in all, "
        + ", ".join(f"{role} {seconds:.1f} s" for role, seconds in sorted(cpu.items()))
    )
    peak, ready = served["peak_runner_rss"], served["ready_runner_rss"]
    print(
        f"memory while jobs ran: the runner (the one copy of the model) peaked at {peak / gib:.2f} GiB resident, "
        f"{peak / max(ready, 1):.2f}x its {ready / gib:.2f} GiB once loaded"
    )
    for label, memory in (("once the runner was ready", served["ready_memory"]), ("after", served["after_memory"])):
        print(
            f"memory (PSS) of every service process {label}: {sum(memory.values()) / gib:.2f} GiB: "
            + ", ".join(f"{role} {size / gib:.2f} GiB" for role, size in sorted(memory.items()))
        )


def _first(run: dict) -> str:
    return f"{run['first_audio']:.1f} s ({run['probe_waited']:.1f} s of it before a worker claimed it)"


if __name__ == "__main__":
    main()
