"""A voice's semantic history at the start of each coarse window, computed once for every segment in that voice.

A coarse window's input starts with its semantic context, and for a segment with a speaker prompt the first positions
of that context are the prompt's semantic history: the same tokens at the same positions for every segment in that
voice, window after window, until the context has slid past the history (about 209 positions in a segment's first
window, 20 fewer in each next one). The model is causal, so a position's queries, keys and values in every block
depend only on the tokens up to it: computed once, they serve every later prefill that starts with the same tokens,
and that prefill runs its blocks over the positions after them only (`decode.CausalDecoder`). The results are bitwise
those of the whole prefill in float32 and bf16 (tests/test_bark_prefixes.py). Not with int8 weights: dynamic
quantization scales a product's inputs by their largest value, which depends on which positions are in it, so the
engine keeps no store then (and none on a GPU, whose prefill is batched). docs/bark-batching.md has the measurements.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

import numpy as np

if TYPE_CHECKING:
    import torch

# One block's queries (None where the attention does not read them), keys and values at a prefix's positions.
Block: TypeAlias = "tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]"


@dataclass(eq=False)
class Prefix:
    """The first `length` positions of a prefill, shared by every prefill that starts with the same tokens: each
    block's queries (None where the attention does not read them), keys and values there (each (1, heads, length,
    D)), once one prefill has computed them."""

    length: int
    blocks: list[Block] = field(default_factory=list)  # empty until computed
    reused: int = 0  # prefills that took it computed (for tests and benchmarks)

    @property
    def nbytes(self) -> int:
        return sum(tensor.nbytes for block in self.blocks for tensor in block if tensor is not None)


class PrefixStore:
    """Prefixes of coarse-window prefills, by their tokens, the least recently used forgotten past a memory budget
    (see the module docstring)."""

    def __init__(self, max_bytes: int = 128 * 2**20, max_entries: int = 256) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, Prefix] = OrderedDict()

    def prefix(self, tokens: np.ndarray) -> Prefix | None:
        """The prefix of a prefill that starts with `tokens` (None for none): computed already, or to be computed
        by the first prefill that runs with it."""
        if len(tokens) == 0:
            return None
        key = np.asarray(tokens, dtype=np.int64).tobytes()
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = Prefix(len(tokens))
        self._entries.move_to_end(key)
        self._forget_oldest()
        return entry

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def reused(self) -> int:
        """How many prefills took a prefix now in the store computed."""
        return sum(entry.reused for entry in self._entries.values())

    def _forget_oldest(self) -> None:
        total = sum(entry.nbytes for entry in self._entries.values())
        while len(self._entries) > 1 and (total > self.max_bytes or len(self._entries) > self.max_entries):
            _, oldest = self._entries.popitem(last=False)
            total -= oldest.nbytes
