"""One line describing the machine a benchmark ran on (every benchmark prints it with its numbers)."""

import os
import platform
from pathlib import Path


def describe() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    model = next((line.split(":", 1)[1].strip() for line in lines if "model name" in line), platform.processor())
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    parts = [f"{os.cpu_count()} CPUs ({model or 'unknown'})", f"Python {platform.python_version()}"]
    try:
        import torch

        parts.append(f"torch {torch.__version__} with {torch.get_num_threads()} threads")
    except ImportError:
        pass
    return ", ".join(parts) + f", load average {load}"
