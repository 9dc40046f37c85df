"""The engines' failure contract: what an engine raises when it cannot do a job, typed by whose fault it is, and
faults made on purpose inside an engine's own computation for drills and tests (BARK_FAULT_INJECTION).

The job layer decides by these types alone (`jobs.breaker.classify`), never by an exception's text:
- `InputRefused`: this job's input cannot be spoken (an unusable voice, a bad option). Permanent: the job fails at
  once, and the engine's circuit breaker is not told.
- `EngineFault`: the device or the model failed while running (a CUDA error, a broken weight, a bug inside the
  engine). Counts towards the engine's breaker.
- `EngineOutOfMemory` (an `EngineFault`): the work did not fit even alone. Transient: retried; if retries do not
  cure it, it counts towards the breaker too.
- `EngineUnavailable`: the engine cannot run here at all (weights or a package missing, a checkpoint that does not
  load). Counts towards the breaker.
- `EngineLost`: the process running the engine for this job went away; the job runs again.
An engine wraps whatever its own code raised into one of these, with the original as `__cause__`.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any


class EngineUnavailable(Exception):
    """The engine cannot run here; the message says why and what to do about it."""


class EngineFailed(Exception):
    """The engine was running and failed on this job. Raise one of its subclasses, which say whose fault it was."""


class InputRefused(EngineFailed):
    """The engine cannot use this job's input (a voice, a segment, an option); the message says what to change."""


class EngineFault(EngineFailed):
    """The device or the model failed while running this job; not the input's fault."""


class EngineOutOfMemory(EngineFault):
    """The job's work did not fit in the device's memory even alone (a batch that does not fit is split first)."""


class EngineLost(Exception):
    """The process running the engine for this job went away (the Bark runner died); the job can run again."""


# How a failure crosses a process boundary (the Bark runner's socket): by class name, back to the same class.
FAILURES: dict[str, type[Exception]] = {
    cls.__name__: cls for cls in (InputRefused, EngineFault, EngineOutOfMemory, EngineUnavailable, EngineLost)
}

_OUT_OF_MEMORY_PHRASES = ("out of memory", "can't allocate memory", "not enough memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc`, or an exception it was raised from, says a device or the host ran out of memory: torch's
    OutOfMemoryError, Python's MemoryError, or the CPU allocator's RuntimeError ("DefaultCPUAllocator: not enough
    memory"). For engines, which must recognise torch's own errors; the job layer reads the types above."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MemoryError | EngineOutOfMemory) or type(current).__name__ == "OutOfMemoryError":
            return True
        if any(phrase in str(current).lower() for phrase in _OUT_OF_MEMORY_PHRASES):
            return True
        current = current.__cause__ or current.__context__
    return False


# --- faults made on purpose ------------------------------------------------------------------------------------
#
# BARK_FAULT_INJECTION is a comma-separated list of `<engine>:<stage>:<fault>[:<times>]`: the engine raises
# `<fault>` inside its own `<stage>` (Bark: semantic, coarse, fine or codec, from a forward hook on that model's
# output layer; Piper: synthesize, around its voice's call), the first `<times>` times in each process (always,
# without a count). Faults: `device` (a RuntimeError as CUDA raises it), `oom` (torch.OutOfMemoryError where torch
# is loaded, else MemoryError), `stall` (the call does not return for STALL_S seconds and defers stop signals
# meanwhile, as a hung driver call or a long C++ kernel does: Python runs its signal handlers only between
# bytecodes). They then travel every path a real fault travels: the scheduler's batch splitting, the engine's
# wrapping, the runner's socket, the job's retries and the breaker, a worker's stop.

logger = logging.getLogger(__name__)

STAGES: dict[str, tuple[str, ...]] = {"bark": ("semantic", "coarse", "fine", "codec"), "piper": ("synthesize",)}
FAULTS = ("device", "oom", "stall")
STALL_S = 120.0


class InjectedFault(RuntimeError):
    """A device fault made on purpose by BARK_FAULT_INJECTION."""


class FaultSpecError(ValueError):
    """BARK_FAULT_INJECTION does not parse; the message says what it should look like."""


class FaultPlan:
    """The faults BARK_FAULT_INJECTION asks of one engine, and how many of each are left in this process. A spec that
    does not parse plans nothing and keeps the reason in `error`, which the engine reports as why it cannot run."""

    def __init__(self, engine: str, spec: str) -> None:
        self.engine = engine
        self._left: dict[str, tuple[str, int | None]] = {}  # stage -> (fault, times left or None for always)
        self._lock = threading.Lock()
        self._paused = False
        self.error: str | None = None
        try:
            for entry in filter(None, (part.strip() for part in spec.split(","))):
                name, stage, fault, times = parse_entry(entry)
                if name == engine:
                    self._left[stage] = (fault, times)
        except FaultSpecError as exc:
            self._left, self.error = {}, str(exc)

    def __bool__(self) -> bool:
        return bool(self._left)

    def stages(self) -> list[str]:
        return list(self._left)

    def fire(self, stage: str) -> None:
        """Raise the fault planned for `stage`, if any is left."""
        with self._lock:
            if stage not in self._left or self._paused:
                return
            fault, times = self._left[stage]
            if times is not None:
                if times <= 0:
                    return
                self._left[stage] = (fault, times - 1)
        if fault == "stall":
            logger.warning("BARK_FAULT_INJECTION: the %s %s stage stalls for %.0f s", self.engine, stage, STALL_S)
            stall(STALL_S)
            return
        raise make_fault(fault, f"{self.engine} {stage}")

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No fault fires inside (a runner's warm-up, which must not spend or suffer the faults meant for jobs)."""
        self._paused = True
        try:
            yield
        finally:
            self._paused = False

    def hook(self, stage: str) -> Callable[..., Any]:
        """A torch forward pre-hook that fires `stage`'s fault (register it on the module that computes it)."""

        def pre_hook(module: Any, args: Any) -> None:
            self.fire(stage)

        return pre_hook


def parse_entry(entry: str) -> tuple[str, str, str, int | None]:
    parts = entry.split(":")
    example = "bark:coarse:device or bark:fine:oom:2"
    if len(parts) not in (3, 4):
        raise FaultSpecError(
            f"BARK_FAULT_INJECTION entry {entry!r} is not <engine>:<stage>:<fault>[:<times>] (e.g. {example})."
        )
    name, stage, fault = parts[:3]
    if name not in STAGES:
        raise FaultSpecError(f"BARK_FAULT_INJECTION names the engine {name!r}; use one of {', '.join(STAGES)}.")
    if stage not in STAGES[name]:
        raise FaultSpecError(f"BARK_FAULT_INJECTION: {name} has no stage {stage!r}; use {', '.join(STAGES[name])}.")
    if fault not in FAULTS:
        raise FaultSpecError(f"BARK_FAULT_INJECTION: unknown fault {fault!r}; use {' or '.join(FAULTS)}.")
    if len(parts) == 3:
        return name, stage, fault, None
    if not parts[3].isdigit():
        raise FaultSpecError(f"BARK_FAULT_INJECTION: {parts[3]!r} in {entry!r} is not a number of times.")
    return name, stage, fault, int(parts[3])


def stall(seconds: float) -> None:
    """Hold this thread for `seconds` with SIGTERM and SIGINT blocked (pending signals run their handlers after)."""
    stops = {signal.SIGTERM, signal.SIGINT}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    try:
        time.sleep(seconds)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def make_fault(fault: str, where: str) -> BaseException:
    message = f"(injected by BARK_FAULT_INJECTION in {where})"
    if fault == "device":
        return InjectedFault(f"CUDA error: an illegal memory access was encountered {message}")
    try:
        import torch

        error: BaseException = torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate 2.00 GiB {message}")
        return error
    except ImportError:
        return MemoryError(f"out of memory {message}")
