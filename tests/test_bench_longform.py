"""bench/longform.py: a mode it does not have is refused before any model loads."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_longform_bench_refuses_an_unknown_mode_with_the_modes_it_has():
    result = subprocess.run(
        [sys.executable, "bench/longform.py", "--modes", "full,library"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 2
    assert "--modes: no mode library; the modes are full, real, no-prefixes" in result.stderr
    assert "checkpoint:" not in result.stdout
