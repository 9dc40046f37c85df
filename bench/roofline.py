"""The machine's limits and the work of each Bark stage, for bench/peers.py's roofline: how close a run came to them.

Limits, measured at start (torch's threads, as every contender uses them):
  matrix peak   a short timed matrix product of a prefill's shape (1024 x 768 by 768 x 3072) per format: float32
                and bf16 through torch's plain product and through oneDNN with the weight packed (what barksite's
                engine runs; on AMD CPUs torch's float32 product, MKL's, was slower), the faster of the two; int8
                through torch's dynamic quantized Linear (what BARK_DTYPE=int8 runs); the best of several
  bandwidth     reading 512 MiB that no cache holds (a sum), the best of several

Work, counted from Bark's algorithm as a contender runs it (the sizes of the checkpoint, the tokens each sentence got,
the speaker prompt's lengths, the batch each row ran in and the fine stage's window), per stage:
  semantic  a prefill of the merged 257-position context, then one decode step per token
  coarse    per 60-token window a prefill of its context (256 semantic slots, the infer token, up to 630 coarse
            tokens), then a decode step per token; barksite computes a voice's semantic prefix once (float32/bf16 on
            a CPU), so those positions' projections are not counted for it
  fine      six passes (codebooks 3-8) of the non-causal model over its window: 1024 frames in the library, the
            history plus the sentence's frames in barksite
  codec     EnCodec's decoder, counted once with torch's FLOP counter over the same frames
FLOPs are the matrix products' (2 per multiply-add: projections, MLP, the heads that are read, attention's two
products); bytes are the weights each forward pass reads (once per batch of rows) and the KV cache each decode step
reads. A phase's bound is the longer of its FLOPs at the format's peak and its bytes at the bandwidth; a stage's bound
is the sum of its phases' bounds, and the fraction reached is bound / measured seconds.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

WEIGHT_BYTES = {"float32": 4, "bfloat16": 2, "int8": 1}
CACHE_BYTES = {"float32": 4, "bfloat16": 2, "int8": 4}  # int8 quantizes the Linear weights only: activations f32
STC_RATIO = 75 / 49.9 * 2  # coarse tokens per semantic token (two codebooks at 75 Hz against 49.9 Hz)


@dataclass(frozen=True)
class Limits:
    peak_flops: dict[str, float]  # by format
    bandwidth: float  # bytes per second
    kernels: dict[str, str] = field(default_factory=dict)  # which product gave each format's peak

    def describe(self) -> str:
        peaks = ", ".join(
            f"{name} {rate / 1e9:.0f}" + (f" ({self.kernels[name]})" if name in self.kernels else "")
            for name, rate in self.peak_flops.items()
        )
        return f"matrix peak (GFLOP/s): {peaks}; memory bandwidth {self.bandwidth / 1e9:.1f} GB/s"


def _best(run, repeats: int) -> float:
    run()  # the first call pays one-off setup
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def measure_limits(repeats: int = 10) -> Limits:
    m, k, n = 1024, 768, 3072
    peaks, kernels = {}, {}
    with torch.inference_mode():
        for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
            a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
            rates = {"torch.mm": 2 * m * k * n / _best(lambda a=a, b=b: torch.mm(a, b), repeats)}
            if packed := _packed_product(a, b):
                rates["oneDNN packed"] = 2 * m * k * n / _best(packed, repeats)
            kernels[name] = max(rates, key=lambda kernel: rates[kernel])
            peaks[name] = rates[kernels[name]]
        linear = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(k, n, bias=False)),
                                                        {torch.nn.Linear}, dtype=torch.qint8)  # fmt: skip
        x = torch.randn(m, k)
        peaks["int8"] = 2 * m * k * n / _best(lambda: linear(x), repeats)
        big = torch.ones(128 * 2**20)  # 512 MiB of float32
        bandwidth = big.numel() * 4 / _best(lambda: big.sum(), max(3, repeats // 2))
    return Limits(peaks, bandwidth, kernels)


def _packed_product(a: torch.Tensor, b: torch.Tensor):
    """`a @ b` through oneDNN with `b` packed once, as barksite's PackedLinear runs it; None where this torch or CPU
    cannot."""
    try:
        weight = torch.ops.mkldnn._reorder_linear_weight(b.T.contiguous(), 8)
        torch.ops.mkldnn._linear_pointwise(a[:1], weight, None, "none", [], "")
    except (RuntimeError, AttributeError):
        return None
    return lambda: torch.ops.mkldnn._linear_pointwise(a, weight, None, "none", [], "")


@dataclass
class StageWork:
    """FLOPs, bytes and the roofline bound of one stage, accumulated phase by phase."""

    flops: float = 0.0
    bytes: float = 0.0
    bound_s: float = 0.0
    compute_s: float = 0.0  # the part of the bound where compute binds
    phases: int = 0

    def add(self, matrix_flops: float, attention_flops: float, nbytes: float, limits: Limits, fmt: str) -> None:
        # The attention's products run in the activations' format: bf16 in bf16, float32 otherwise.
        activation = "bfloat16" if fmt == "bfloat16" else "float32"
        compute = matrix_flops / limits.peak_flops[fmt] + attention_flops / limits.peak_flops[activation]
        memory = nbytes / limits.bandwidth
        self.flops += matrix_flops + attention_flops
        self.bytes += nbytes
        self.bound_s += max(compute, memory)
        self.compute_s += compute if compute >= memory else 0.0
        self.phases += 1

    @property
    def binds(self) -> str:
        return "compute" if self.compute_s >= self.bound_s / 2 else "bandwidth"


@dataclass(frozen=True)
class Sizes:
    """bark-small's (or any checkpoint's) sizes, from its config.json."""

    layers: dict[str, int]
    hidden: dict[str, int]
    vocab: dict[str, int]

    @classmethod
    def of(cls, checkpoint: Path) -> Sizes:
        config = json.loads((checkpoint / "config.json").read_text())
        parts = {"semantic": "semantic_config", "coarse": "coarse_acoustics_config", "fine": "fine_acoustics_config"}
        sub = {stage: config[key] for stage, key in parts.items()}
        return cls(
            layers={stage: c["num_layers"] for stage, c in sub.items()},
            hidden={stage: c["hidden_size"] for stage, c in sub.items()},
            vocab={stage: c["output_vocab_size"] for stage, c in sub.items()},
        )

    def block_params(self, stage: str) -> int:
        d = self.hidden[stage]
        return self.layers[stage] * 12 * d * d  # attention's 4 d x d, the MLP's 8


@dataclass
class Row:
    """One sentence as a contender ran it."""

    semantic_tokens: int
    frames: int  # coarse/fine frames generated
    batch: int = 1  # rows it shared its decode steps with
    semantic_history: int = 0  # the speaker prompt's semantic tokens the coarse windows read (<= 209)
    coarse_history: int = 0  # and its coarse tokens
    fine_history: int = 0  # and its fine frames (<= 512)
    voice_prefix: bool = False  # barksite's prefix store applies (a voice, float32/bf16 on a CPU)
    fine_window: int | None = None  # 1024 for the library's fixed window; None: history + own frames


@dataclass
class Roofline:
    sizes: Sizes
    limits: Limits
    fmt: str
    stages: dict[str, StageWork] = field(default_factory=dict)

    def stage(self, name: str) -> StageWork:
        return self.stages.setdefault(name, StageWork())

    def forward(self, stage: str, positions: int, context_sum: float, logits: int, rows_sharing: int) -> None:
        """One forward pass over `positions` new positions whose attention reads `context_sum` positions in all."""
        d, layers = self.sizes.hidden[stage], self.sizes.layers[stage]
        head = 2 * d * self.sizes.vocab[stage] * logits
        matrix = 2 * self.sizes.block_params(stage) * positions + head
        attention = 4 * d * layers * context_sum
        weights = (self.sizes.block_params(stage) + d * self.sizes.vocab[stage]) * WEIGHT_BYTES[self.fmt]
        cache = 2 * layers * d * CACHE_BYTES[self.fmt] * context_sum if positions <= 1 else 0
        self.stage(stage).add(matrix, attention, weights / rows_sharing + cache, self.limits, self.fmt)

    def add_row(self, row: Row) -> None:
        # semantic: the merged 257-position context, then a step per token after the first
        self.forward("semantic", 257, 257 * 258 / 2, 1, row.batch)
        for step in range(1, row.semantic_tokens):
            self.forward("semantic", 1, 257 + step, 1, row.batch)
        # coarse: 60-token windows, each a prefill of its context then a step per token
        steps, done, window = row.frames * 2, 0, 0
        while done < steps:
            context = 257 + min(630, row.coarse_history + done)
            start = max(0, row.semantic_history + round(done / STC_RATIO) - math.floor(630 / STC_RATIO))
            prefix = max(0, row.semantic_history - start) if row.voice_prefix else 0
            self.forward("coarse", context - prefix, (context * (context + 1) - prefix * (prefix + 1)) / 2, 1, 1)
            for step in range(1, min(60, steps - done)):
                self.forward("coarse", 1, context + step, 1, row.batch)
            done, window = done + 60, window + 1
        # fine: six passes of the non-causal model over its window, one head read each
        width = row.fine_window or (min(512, row.fine_history) + row.frames)
        for _ in range(6):
            self.forward("fine", width, width * width, width, 1)

    def add_codec(self, flops: float) -> None:
        self.stage("codec").add(flops, 0.0, 0.0, self.limits, "float32")


def codec_flops(codec: torch.nn.Module, frames: int) -> float:
    """FLOPs of EnCodec's decoder for `frames` frames of 8 codebooks, counted by torch (its convolutions), plus its
    LSTM's matrix products, which the counter does not see."""
    from torch.utils.flop_counter import FlopCounterMode

    codes = torch.zeros(8, 1, frames, dtype=torch.long)
    # (torch.no_grad: under inference_mode the counter breaks weight-norm parametrizations)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        codec.decoder(codec.quantizer.decode(codes))
    lstm = sum(2 * 4 * (m.input_size + m.hidden_size) * m.hidden_size * m.num_layers
               for m in codec.decoder.modules() if isinstance(m, torch.nn.LSTM))  # fmt: skip
    return counter.get_total_flops() + lstm * frames
