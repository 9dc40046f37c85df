"""Which number format Bark's weights use (BARK_DTYPE), chosen for the hardware, and converting a loaded model to it.

`auto` picks float16 on CUDA, bfloat16 on CPUs with AMX-BF16 tiles and float32 elsewhere: on a Xeon with AVX512-BF16
but no AMX, and on an EPYC without either, bf16 was slower than fp32 end to end. Weights are converted in place
(`model.to(dtype)`), not run under `torch.autocast`, which was twice as slow per decode step. `int8` quantizes the
Linear layers of the three token models dynamically (CPU only). The codec always stays in float32: it costs well
under 1% of a generation, and its output is the audio itself. Measurements behind these choices: docs/precision.md.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

DTYPES = ("auto", "float32", "bfloat16", "float16", "int8")
# CPU flags (as /proc/cpuinfo names them) of units that make bf16 matrix products faster than fp32 in practice.
# AVX512-BF16 alone is not enough: bark-small ran 1.3-1.5x slower in bf16 than in fp32 on such a Xeon.
BF16_CPU_FLAGS = frozenset({"amx_bf16"})
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


def choose_dtype(requested: str, device: str, flags: frozenset[str]) -> str:
    """The dtype to run: `requested` itself, or for `auto` the best for `device` and a CPU with these `flags`.

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
        model.to(getattr(torch, dtype))
        model.codec_model.float()
    return model
