"""bench/throughput.py at its smallest on the tiny checkpoint: a live service and the plain loop, end to end."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.live  # it starts gunicorn and the workers, on a SQLite database of its own
def test_throughput_bench_serves_one_job_then_several_runs_the_plain_loop_and_prints_rates_cpu_and_memory(
    tiny_bark_dir,
):
    bench = subprocess.Popen(
        [sys.executable, "bench/throughput.py", "--arch", "tiny", "--checkpoint", str(tiny_bark_dir),
         "--jobs", "2", "--segments", "1", "--tokens", "16", "--timeout", "240"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        out, err = bench.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        bench.terminate()  # the bench stops the service it started on SIGTERM
        out, err = bench.communicate(timeout=60)
        pytest.fail(f"bench/throughput.py ran over 600 s:\n{out}\n{err}")

    assert bench.returncode == 0, out + err
    assert "machine: " in out and "jobs of" in out and "1 segments each, 16 semantic tokens" in out
    assert re.search(r"service: default settings .*BARK_DTYPE=\w+ -> (float32|bfloat16)", out)
    # One job of one 16-token segment (0.32 s) alone, then two at once; one sentence through the plain loop.
    assert re.search(r"plain loop .*: 0\.3 s of audio in [\d.]+ s", out)
    assert re.search(r"one job alone: 0\.3 s of audio in [\d.]+ s .*, [\d.]+x the plain loop's rate", out)
    assert re.search(r"2 jobs at once: 0\.6 s of audio in [\d.]+ s .*, [\d.]+x the plain loop's rate", out)
    assert re.search(
        r"time to first audio: one job alone [\d.]+ s .*; the job submitted while the other 1 ran [\d.]+", out
    )
    assert re.search(r"CPU while the 2 jobs ran: [\d.]+ s in all, runner [\d.]+ s, web [\d.]+ s, workers [\d.]+ s", out)
    assert re.search(r"memory while jobs ran: the runner .* peaked at [\d.]+ GiB resident, [\d.]+x its [\d.]+ GiB", out)
    assert re.search(r"memory \(PSS\) of every service process once the runner was ready: [\d.]+ GiB: runner", out)
    assert re.search(r"memory \(PSS\) of every service process after: [\d.]+ GiB: runner [\d.]+ GiB, web", out)


def test_throughput_bench_refuses_sizes_the_service_cannot_take_with_a_clear_message():
    result = subprocess.run(
        [sys.executable, "bench/throughput.py", "--jobs", "9"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 2 and "--jobs must be 1-8 (the default queue size)" in result.stderr


def test_the_throughput_bench_counts_generated_speech_not_the_silences_between_segments(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import throughput

    three_segments = {"segments": ["One.", "Two.", "Three."], "pauses_ms": {}}
    # 3 segments of 1.2 s, the default 0.25 s between them; then a control event's 1 s pause after the first.
    assert throughput.speech_s({"duration_s": 4.1, "plan": three_segments}) == pytest.approx(3.6)
    with_event = {**three_segments, "pauses_ms": {"0": 1000}}
    assert throughput.speech_s({"duration_s": 4.85, "plan": with_event}) == pytest.approx(3.6)
    assert throughput.speech_s({"duration_s": 1.2, "plan": {"segments": ["One."]}}) == pytest.approx(1.2)
