"""bench/gpu.sh, run through its CPU path on the tiny checkpoint: the code a GPU run uses, without a GPU."""

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_gpu_bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "bench/gpu.sh", *args],
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_gpu_bench_on_cpu_prints_the_real_time_factor_and_peak_memory_per_batch_size(tiny_bark_dir):
    result = run_gpu_bench(
        "--device", "cpu", "--arch", "tiny", "--checkpoint", str(tiny_bark_dir), "--batches", "1,2",
        "--semantic-tokens", "16",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "machine: " in result.stdout and f"tiny at {tiny_bark_dir}" in result.stdout
    rows = re.findall(r"batch +(\d+): +([\d.]+) s of audio in .*x real time .* peak RSS ([\d.]+) GiB", result.stdout)
    assert [row[0] for row in rows] == ["1", "2"]
    # 16 semantic tokens are floor(16 * 75 / 49.9) = 24 frames of 320 samples at 24 kHz: 0.32 s per segment.
    assert [float(row[1]) for row in rows] == [0.3, 0.6]
    assert all(float(row[2]) > 0 for row in rows)


def test_gpu_bench_refuses_cuda_without_cuda_and_bad_batch_sizes_with_a_clear_message():
    no_cuda = run_gpu_bench("--device", "cuda")
    bad = run_gpu_bench("--batches", "1,four")

    assert no_cuda.returncode == 2 and "CUDA is not available" in no_cuda.stderr
    assert bad.returncode == 2 and "--batches '1,four': give whole numbers separated by commas" in bad.stderr
