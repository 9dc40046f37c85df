"""One line describing the machine a benchmark ran on (every benchmark prints it with its numbers)."""

import os
import platform
from pathlib import Path

BF16_INT8_UNITS = (
    ("amx_bf16", "AMX-BF16"),
    ("amx_int8", "AMX-INT8"),
    ("avx512_bf16", "AVX512-BF16"),
    ("avx512_vnni", "AVX512-VNNI"),
)


def describe() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    model = next((line.split(":", 1)[1].strip() for line in lines if "model name" in line), platform.processor())
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    flags = next((set(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), set())
    # What decides BARK_DTYPE=auto on a CPU, and how fast bf16 and int8 can be (docs/precision.md).
    units = [name for flag, name in BF16_INT8_UNITS if flag in flags]
    parts = [
        f"{os.cpu_count()} CPUs ({model or 'unknown'}; {', '.join(units) or 'no bf16/int8 matrix units'})",
        f"Python {platform.python_version()}",
    ]
    try:
        import torch

        parts.append(f"torch {torch.__version__} with {torch.get_num_threads()} threads")
    except ImportError:
        pass
    return ", ".join(parts) + f", load average {load}"
