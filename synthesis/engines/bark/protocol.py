"""The Bark runner's socket protocol: every message a worker and the runner exchange, as one typed value each.

Both sides of runner.py import this module, so a message is written and read in one place. The connection is
`multiprocessing.connection` (pickled values, authenticated with a key derived from SECRET_KEY); one connection
carries one request:

    worker                                   runner
    Synthesize(segments, options)   ->
                                    <-       Started(sample_rate, device, model, dtype)
                                    <-       SegmentReady(index, waveform)      (one per segment, in order)
    Continue(True | False)          ->       (False: the job was cancelled; the runner stops its rows)
                                    <-       Done()  or  Failed(kind, message)
    Call(op, args)                  ->       (building a voice: encode_clip, semantic_tokens, hubert_tokens)
                                    <-       Result(value)  or  Failed(kind, message)

`Failed.kind` names one of the engines' failure types (synthesis/engines/faults.py), so the worker raises the same
kind of failure the runner's engine raised, and the job layer treats a fault in the runner exactly as one in the
worker.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.core.cache import cache

from synthesis.engines import EngineFault, SynthesisOptions
from synthesis.engines.faults import FAILURES

logger = logging.getLogger(__name__)

CALLS = ("encode_clip", "semantic_tokens", "hubert_tokens")  # what a worker may ask of the runner's engine too


@dataclass(frozen=True)
class Synthesize:
    segments: list[str]
    options: SynthesisOptions


@dataclass(frozen=True)
class Call:
    op: str  # one of CALLS
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Started:
    sample_rate: int
    device: str
    model: str
    dtype: str


@dataclass(frozen=True)
class SegmentReady:
    index: int
    waveform: np.ndarray


@dataclass(frozen=True)
class Continue:
    keep_going: bool


@dataclass(frozen=True)
class Done:
    pass


@dataclass(frozen=True)
class Result:
    value: Any


@dataclass(frozen=True)
class Failed:
    kind: str  # a key of faults.FAILURES
    message: str

    @classmethod
    def of(cls, exc: Exception) -> Failed:
        """`exc` as a message: its own kind when it is one of the failure types, else an engine fault."""
        kind = type(exc).__name__ if type(exc).__name__ in FAILURES else EngineFault.__name__
        return cls(kind, str(exc) if kind != EngineFault.__name__ or isinstance(exc, EngineFault) else _fault(exc))

    def error(self) -> Exception:
        """The exception this message stands for, to raise in the worker."""
        return FAILURES.get(self.kind, EngineFault)(self.message)


def _fault(exc: Exception) -> str:
    return f"Bark generation failed: {type(exc).__name__}: {exc}"


# --- what the runner says about itself ---------------------------------------------------------------------------
# Its state ("loading", "ready", "failed") is kept in Django's cache, where /api/health reads it.

STATE_KEY = "barksite:bark-runner"
STATE_TTL_S = 30  # the runner refreshes its state every STATE_TTL_S / 3: a dead runner's state expires


def runner_state() -> dict[str, Any] | None:
    """What the runner last said about itself ({"state": "loading" | "ready" | "failed", ...}), or None."""
    try:
        state: dict[str, Any] | None = cache.get(STATE_KEY)
        return state
    except Exception:  # an unreadable cache must not break health
        logger.exception("could not read the Bark runner's state")
        return None


def set_state(state: str, **extra: Any) -> None:
    try:
        cache.set(STATE_KEY, {"state": state, "pid": os.getpid(), **extra}, STATE_TTL_S)
    except Exception:
        logger.exception("could not record the Bark runner's state")
