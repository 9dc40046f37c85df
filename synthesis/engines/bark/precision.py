"""Which number format Bark's weights use (BARK_DTYPE), chosen for the hardware, and converting a loaded model to it.

`auto` picks float16 on CUDA, bfloat16 on CPUs with AMX-BF16 tiles, and on CPUs with AVX512-BF16 alone bfloat16 only
where a matrix product measured at load shows it clearly faster than float32: on a 2-core AMD EPYC (Zen 5) bf16 ran
Bark 2-3x faster than fp32, on a Xeon with the same flag but no AMX 1.3-1.5x slower, so the flag cannot tell. The
token models' weights are converted in place (`.to(dtype)`), not run under `torch.autocast`, which was twice as slow
per decode step. `int8` quantizes the Linear layers of the three token models dynamically (CPU only). The codec
always stays in float32: it costs well under 1% of a generation, and its output is the audio itself. Measurements
behind these choices: docs/precision.md.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

DTYPES = ("auto", "float32", "bfloat16", "float16", "int8")
# CPU flags (as /proc/cpuinfo names them) of units that make bf16 matrix products faster than fp32 in practice.
BF16_CPU_FLAGS = frozenset({"amx_bf16"})
# AVX512-BF16 alone: faster on some CPUs and slower on others (see the module docstring), so `auto` measures.
BF16_MAYBE_FLAGS = frozenset({"avx512_bf16"})
# How much faster a bf16 matrix product must be than a float32 one for `auto` to take bf16 (bf16 changes the tokens:
# it must buy a clear gain). Measured: EPYC Zen 5 4x, EPYC Zen 4 2.2-3.2x, the Xeon without AMX about 1x.
BF16_MIN_SPEEDUP = 1.5
ROUNDS = 5  # timings of each format in the probe
# The sub-models whose weights change format; the codec (`codec_model`) stays float32.
TOKEN_MODELS = ("semantic", "coarse_acoustics", "fine_acoustics")


class PrecisionError(ValueError):
    """A dtype that cannot run on this device; the message says what to use instead."""


def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags: /proc/cpuinfo on Linux, else what torch can tell about bf16 units."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith(("flags", "Features")):
                return frozenset(line.split(":", 1)[1].split())
    try:  # macOS, Windows: torch's own probes (private but stable since 2.0)
        import torch

        probes = {"amx_bf16": torch.cpu._is_amx_tile_supported()}
    except Exception:
        return frozenset()
    return frozenset(flag for flag, present in probes.items() if present)


@functools.cache
def bf16_speedup() -> float:
    """How many times faster this CPU multiplies bark-small-sized matrices in bf16 than in float32.

    One MLP projection over a coarse window's prefill (887 x 768 by 768 x 3072), the shape that dominates Bark on a
    CPU, timed ROUNDS times in each format, the two formats taking turns, the fastest of each compared: the probe
    runs while the rest of the service starts (gunicorn and the workers import at the same moment), and a burst of
    that load must slow both formats alike, not flip the choice. About 0.45 s on 2 EPYC cores, once per process."""
    import torch

    inputs = {dtype: torch.randn(887, 768, dtype=dtype) for dtype in (torch.float32, torch.bfloat16)}
    weights = {dtype: torch.randn(3072, 768, dtype=dtype) for dtype in inputs}
    fastest = dict.fromkeys(inputs, float("inf"))
    with torch.inference_mode():
        for dtype in inputs:
            torch.nn.functional.linear(inputs[dtype], weights[dtype])  # the first call sets up the kernel
        for _ in range(ROUNDS):
            for dtype in inputs:
                start = time.perf_counter()
                torch.nn.functional.linear(inputs[dtype], weights[dtype])
                fastest[dtype] = min(fastest[dtype], time.perf_counter() - start)
    return fastest[torch.float32] / fastest[torch.bfloat16]


def choose_dtype(
    requested: str, device: str, flags: frozenset[str], speedup: Callable[[], float] = bf16_speedup
) -> str:
    """The dtype to run: `requested` itself, or for `auto` the best for `device` and a CPU with these `flags`
    (`speedup` measures bf16 against float32 where the flags cannot tell).

    Raises PrecisionError for a name outside DTYPES or a combination that cannot run.
    """
    if requested not in DTYPES:
        raise PrecisionError(f"BARK_DTYPE={requested!r} is not one of {', '.join(DTYPES)}.")
    on_cuda = device.startswith("cuda")
    if requested == "auto":
        if on_cuda:
            return "float16"
        if device == "cpu" and flags & BF16_CPU_FLAGS:
            return "bfloat16"
        if device == "cpu" and flags & BF16_MAYBE_FLAGS and speedup() >= BF16_MIN_SPEEDUP:
            return "bfloat16"
        return "float32"
    if requested == "int8" and device != "cpu":
        raise PrecisionError(
            f"BARK_DTYPE=int8 quantizes for CPUs only (torch's dynamic quantization); on {device} use auto or float16."
        )
    return requested


def convert(model: Any, dtype: str) -> Any:
    """`model` (a loaded float32 BarkModel, already on its device) in `dtype`; the codec stays float32."""
    import torch

    if dtype == "int8":
        with warnings.catch_warnings():
            # torch >= 2.10 says eager-mode quantization is moving to torchao; it still works and torchao is not here.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            for name in TOKEN_MODELS:
                quantized = torch.ao.quantization.quantize_dynamic(
                    getattr(model, name), {torch.nn.Linear}, dtype=torch.qint8, inplace=True
                )
                setattr(model, name, quantized)
        return model
    if dtype != "float32":
        for name in TOKEN_MODELS:  # not model.to(): the codec's weights would be rounded through `dtype` and back
            getattr(model, name).to(getattr(torch, dtype))
    return model
