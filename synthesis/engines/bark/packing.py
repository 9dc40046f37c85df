"""Linear layers with their weights stored in oneDNN's blocked layout, for decode steps on a CPU.

A decode step multiplies a few rows (one per segment in the batch) by every weight matrix of the model: it is bound
by how fast the weights are read. `torch.nn.functional.linear` reads a plain row-major weight and, for a few rows,
ran far below the memory's speed: in bf16 on 2 AMD EPYC (Zen 4) cores at 9-14 GB/s of the ~31 GB/s there, in float32
on 2 AMD EPYC (Zen 3) cores 3-4x slower for 2-8 rows than for one. The same product through oneDNN with the weight
reordered once into its blocked layout (`torch.ops.mkldnn._reorder_linear_weight`, what torch.compile's CPU backend
does to frozen weights) ran 1.4-4.5x (bf16, Zen 4) and 2.5-4x (float32, Zen 3) faster for 2-8 rows, and no slower
for a prefill's hundreds (docs/precision.md). So the token models' Linear layers are swapped for `PackedLinear` once
the model is in its format on a CPU, after a check on this CPU that the packed product agrees with the plain one:
bitwise in bf16, to float32's rounding in float32 (below).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

logger = logging.getLogger(__name__)

# The row count oneDNN is told to expect when it picks the weight's layout; any count works with it. Decode steps,
# where the layout matters, run 1-8 rows (BARK_MAX_BATCH's default).
ROWS_HINT = 8

# How far the packed product may be from torch's, as a fraction of the largest output, per format. In bf16 oneDNN
# gives torch's result bit for bit, so nothing less is accepted. In float32 no two kernels agree bitwise (they add
# the products in different orders): torch itself gives a row computed in a batch about 5e-7 of the largest output
# away from the same row computed alone, and oneDNN's packed product was 1e-6 away on the CPUs measured; 1e-5 admits
# that rounding and nothing that would be an error.
TOLERANCE = {torch.bfloat16: 0.0, torch.float32: 1e-5}


# mypy reads torch as untyped (pyproject.toml says why), so its Module is `Any` to subclass.
class PackedLinear(torch.nn.Module):  # type: ignore[misc]
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
    """Swap every bf16 or float32 `torch.nn.Linear` in `models` (on the CPU) for a `PackedLinear`; whether it was done.

    Nothing is swapped where oneDNN cannot run the format here, or where its packed product is farther from the plain
    one than TOLERANCE on this CPU: the layers then stay as they were, which is only slower."""
    layers = [
        (parent, name, child)
        for model in models
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is torch.nn.Linear and child.weight.dtype in TOLERANCE and child.weight.device.type == "cpu"
    ]
    if not layers:
        return False
    probe = layers[0][2]  # the token models are converted as one, so the first layer's format is every layer's
    dtype = probe.weight.dtype
    if not onednn_runs(dtype):
        return False
    try:
        packed = PackedLinear(probe)
        with torch.inference_mode():
            agrees = all(
                within(packed(inputs), probe(inputs), TOLERANCE[dtype])
                for inputs in (torch.randn(rows, probe.in_features, dtype=dtype) for rows in (1, 4, 64))
            )
    except RuntimeError as exc:  # an op this build of torch lacks
        logger.info("Linear layers left unpacked: oneDNN's packed product failed here (%s)", exc)
        return False
    if not agrees:
        logger.info("Linear layers left unpacked: oneDNN's packed product differs from torch's on this CPU")
        return False
    for parent, name, child in layers:
        setattr(parent, name, PackedLinear(child))
    return True


def onednn_runs(dtype: torch.dtype) -> bool:
    if not torch.backends.mkldnn.is_available():
        return False
    return dtype != torch.bfloat16 or bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def within(packed: torch.Tensor, plain: torch.Tensor, tolerance: float) -> bool:
    """Whether every output of `packed` is within `tolerance` x the largest output of `plain` (0: bitwise equal)."""
    if tolerance == 0.0:
        return bool(torch.equal(packed, plain))
    largest = plain.abs().max().item()
    return bool((packed - plain).abs().max().item() <= tolerance * largest)
