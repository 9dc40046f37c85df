"""bench/peers.py at its smallest on the tiny checkpoint: the plain loop, barksite in-process and through the service,
Suno's library where the peers' environment is installed (never installed by a test), and bark.cpp's refusal of a
codec it cannot run (encodec.cpp has EnCodec 24 kHz's sizes built in; bark.cpp runs on bark-small's checkpoint only)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PEERS_VENV = ROOT / ".cache" / "bench-peers" / "venv"


def run_bench(*args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "bench/peers.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


@pytest.mark.live  # the service contender starts gunicorn and the workers
def test_peers_bench_times_every_contender_by_stage_compares_tokens_and_prints_the_roofline(tiny_bark_dir):
    contenders = "plain,barksite-float32,barksite-auto,suno,barkcpp-f32-none,service-float32"
    result = run_bench("--checkpoint", str(tiny_bark_dir), "--contenders", contenders, "--sentences", "2",
                       "--tokens", "16", "--no-install", timeout=900)  # fmt: skip
    out = result.stdout

    assert result.returncode == 0, out + result.stderr
    assert "machine: " in out and "load average" in out
    kernel = r"( \((torch\.mm|oneDNN packed)\))?"  # the faster product of the two gives the format's peak
    assert re.search(rf"limits \(measured now, \d+ threads\): matrix peak \(GFLOP/s\): float32 \d+{kernel}, "
                     rf"bfloat16 \d+{kernel}, int8 \d+; memory bandwidth [\d.]+ GB/s", out)  # fmt: skip
    assert "2 sentences, 16 semantic tokens each (forced), greedy decoding everywhere" in out
    assert "barksite's fine window full (BARK_FINE_WINDOW)" in out
    number = r"\s+[\d.]+"
    # The plain loop is the library's exact output; barksite in float32 with the default fine window gives all of it.
    assert re.search(rf"^plain{number}\s+1\.00x({number}){{4}}{number}  \(itself\)", out, re.M)
    row = re.search(rf"^barksite-float32{number}{number}x({number}){{4}}{number}  (\S+) / (\S+) / (\S+)", out, re.M)
    assert row and row.group(2, 3, 4) == ("100.0%", "100.0%", "100.0%"), out
    assert re.search(rf"^barksite-auto{number}{number}x({number}){{4}}", out, re.M)
    assert re.search(r"^barksite-auto against plain, per audio second .*: semantic [\d.]+x, coarse [\d.]+x, "
                     r"fine [\d.]+x, codec [\d.]+x", out, re.M)  # fmt: skip
    # Through the service: the same audio as in-process in the same format (greedy).
    assert re.search(rf"^service-float32{number}{number}x\s+{number}  audio equal to barksite-float32's", out, re.M)
    if (PEERS_VENV / ".requirements.sha").is_file():
        assert re.search(
            r"^barkcpp-f32-none\s+not measured: bark.cpp's EnCodec assumes EnCodec 24 kHz's sizes", out, re.M
        )
        assert re.search(rf"^suno{number}{number}x({number}){{4}}{number}  100.0% / ", out, re.M), out
        assert re.search(r"Suno's models against transformers' .*: semantic \S+ yes, coarse \S+ yes, fine \S+ yes", out)
    else:
        for peer in ("suno", "barkcpp-f32-none"):
            assert re.search(rf"^{peer}\s+not measured: the peers' environment .* is not installed", out, re.M)
    for stage in ("semantic", "coarse", "fine", "codec"):
        assert re.search(rf"^barksite-auto\s+{stage}{number}{number}{number}{number}\s+\d+%  (compute|bandwidth)",
                         out, re.M)  # fmt: skip


def test_peers_bench_refuses_a_contender_it_does_not_have_and_names_the_ones_it_has():
    result = run_bench("--contenders", "plain,barksite-float64")

    assert result.returncode == 2
    assert "--contenders: no contender 'barksite-float64'; the kinds and formats are barksite-{auto," in result.stderr
    assert "machine:" not in result.stdout


def test_peers_bench_refuses_bark_cpp_with_a_speaker_prompt_it_cannot_take():
    result = run_bench("--contenders", "barkcpp-q4_0")

    assert result.returncode == 2
    assert "barkcpp-q4_0: bark.cpp 0.2.0 takes no speaker prompt; name it barkcpp-q4_0-none" in result.stderr
