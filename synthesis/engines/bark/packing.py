"""bf16 Linear layers with their weights stored in oneDNN's blocked layout, for decode steps on a CPU.

A decode step multiplies a few rows (one per segment in the batch) by every weight matrix of the model: it is bound
by how fast the weights are read. `torch.nn.functional.linear` in bf16 reads a plain row-major weight and, measured
on 2 AMD EPYC (Zen 4) cores, ran at 9-14 GB/s of the ~31 GB/s the memory gives; the same product through oneDNN with
the weight reordered once into its blocked layout (`torch.ops.mkldnn._reorder_linear_weight`, what torch.compile's
CPU backend does to frozen bf16 weights) ran 1.4-4.5x faster for 1-16 rows and up to 29% faster for a prefill's
257-887 rows, with bitwise the same results (docs/precision.md). So the token models' Linear layers are swapped for
`PackedLinear` once the model is in bf16 on a CPU, and only after a check that the packed product equals the plain
one here.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
from typing import Any

import torch

logger = logging.getLogger(__name__)

# The row count oneDNN is told to expect when it picks the weight's layout; any count works with it. Decode steps,
# where the layout matters, run 1-8 rows (BARK_MAX_BATCH's default).
ROWS_HINT = 8


class PackedLinear(torch.nn.Module):
    """`torch.nn.Linear`'s product with its weight held in oneDNN's blocked layout (the plain weight is dropped)."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.packed_weight = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), ROWS_HINT)
        self.bias = None if linear.bias is None else linear.bias.detach()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(inputs, self.packed_weight, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def pack_linear_layers(models: list[Any]) -> bool:
    """Swap every bf16 `torch.nn.Linear` in `models` (on the CPU) for a `PackedLinear`; whether it was done.

    Nothing is swapped where oneDNN cannot run bf16 here, or where its packed product differs from the plain one by
    a single bit on this CPU: the layers then stay as they were, which is only slower."""
    layers = [
        (parent, name, child)
        for model in models
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is torch.nn.Linear and child.weight.dtype == torch.bfloat16 and child.weight.device.type == "cpu"
    ]
    if not layers or not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        return False
    probe = layers[0][2]
    try:
        packed = PackedLinear(probe)
        with torch.inference_mode():
            same = all(
                torch.equal(packed(inputs), probe(inputs))
                for inputs in (torch.randn(rows, probe.in_features, dtype=torch.bfloat16) for rows in (1, 4, 64))
            )
    except RuntimeError as exc:  # an op this build of torch lacks
        logger.info("bf16 Linear layers left unpacked: oneDNN's packed product failed here (%s)", exc)
        return False
    if not same:
        logger.info("bf16 Linear layers left unpacked: oneDNN's packed product differs from torch's on this CPU")
        return False
    for parent, name, child in layers:
        setattr(parent, name, PackedLinear(child))
    del layers, probe, packed, child  # the last references to the plain weights, before their memory goes back
    release_freed_heap()
    return True


def release_freed_heap() -> None:
    """Hand the memory of the dropped plain weights back to the system. glibc keeps freed blocks in the process's
    heap; measured with bark-small, the process held 3187 MB after packing and 2709 MB after this (its size before
    packing). A no-op where the C library is not glibc."""
    # No C library found, or one without malloc_trim (musl, macOS): nothing to do.
    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)
