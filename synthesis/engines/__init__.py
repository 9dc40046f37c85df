"""Speech engines behind one small interface, and the per-process registry that keeps them loaded.

An engine is loaded once per process (a worker keeps its model for every job it runs) and reports its
health with a reason, so an engine that cannot load (weights missing, package missing) never takes
the others down with it.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings


class EngineUnavailable(Exception):
    """The engine cannot run here; the message says why and what to do about it."""


class EngineFailed(Exception):
    """The engine was running and failed on this input."""


@dataclass(frozen=True)
class EngineHealth:
    name: str
    ok: bool
    reason: str
    model: str
    device: str
    loaded: bool

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "ok": self.ok,
            "reason": self.reason,
            "model": self.model,
            "device": self.device,
            "loaded": self.loaded,
        }


@dataclass
class SynthesisOptions:
    """What decides the sound, apart from the text.

    `voice` is the voice of every segment unless `segment_voices` (one voice id per segment, for
    dialogue) says otherwise. `voice_prompts` carries the arrays of uploaded voices (`custom/<uuid>`)
    named there, loaded by the caller, since engines do not read the database.
    """

    voice: str | None = None
    text_temp: float = 0.7
    waveform_temp: float = 0.7
    seed: int | None = None
    segment_voices: list[str | None] | None = None
    voice_prompts: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    def voice_for(self, index: int) -> str | None:
        if self.segment_voices is not None and self.segment_voices[index]:
            return self.segment_voices[index]
        return self.voice


# Called after each segment with (index, waveform). Returning False asks the engine to stop early
# (the job was cancelled); the engine then raises SynthesisCancelled.
SegmentCallback = Callable[[int, np.ndarray], bool | None]


class SynthesisCancelled(Exception):
    """The segment callback asked to stop."""


class Engine(ABC):
    name: str
    sample_rate: int

    @property
    @abstractmethod
    def model_id(self) -> str:
        """The model that runs (hub id, directory, or voice file)."""

    @property
    @abstractmethod
    def device(self) -> str: ...

    @abstractmethod
    def load(self) -> None:
        """Load weights once; idempotent. Raises EngineUnavailable with a reason."""

    @abstractmethod
    def health(self) -> EngineHealth:
        """Whether the engine can run, without loading it when that would be slow."""

    @abstractmethod
    def voices(self) -> list[str]: ...

    @abstractmethod
    def default_voice(self) -> str: ...

    @abstractmethod
    def synthesize(
        self, segments: list[str], options: SynthesisOptions, on_segment: SegmentCallback | None = None
    ) -> list[np.ndarray]:
        """One float32 mono waveform at `sample_rate` per segment, in order."""

    def _notify(self, on_segment: SegmentCallback | None, index: int, waveform: np.ndarray) -> None:
        if on_segment is not None and on_segment(index, waveform) is False:
            raise SynthesisCancelled()


ENGINE_NAMES = ("bark", "piper")

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def get_engine(name: str) -> Engine:
    """The process-wide instance of engine `name` (not loaded yet; call `load()` or `synthesize()`)."""
    if name not in ENGINE_NAMES:
        raise EngineUnavailable(f"Unknown engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}.")
    with _lock:
        if name not in _engines:
            if name == "bark":
                from synthesis.engines.bark.engine import BarkEngine

                _engines[name] = BarkEngine(
                    model=settings.BARK_MODEL, device=settings.BARK_DEVICE, mode=settings.BARK_MODELS_AVAILABLE
                )
            else:
                from synthesis.engines.piper.engine import PiperEngine

                _engines[name] = PiperEngine()
        return _engines[name]


def reset_engines() -> None:
    """Forget loaded engines (tests that change BARK_MODEL; settings changes in a running process)."""
    with _lock:
        _engines.clear()


def all_health() -> list[EngineHealth]:
    return [get_engine(name).health() for name in ENGINE_NAMES]


def default_engine_name() -> str | None:
    """BARK_DEFAULT_ENGINE, or with `auto`: Bark when its weights resolve, else Piper; None if neither can run.
    An engine whose circuit breaker is open is passed over while another can run."""
    from synthesis.breaker import blocked_engines

    preferred = settings.BARK_DEFAULT_ENGINE
    order = sorted(ENGINE_NAMES, key=lambda name: name != preferred)  # the preferred one first
    healthy = [name for name in order if get_engine(name).health().ok]
    try:
        blocked = blocked_engines() if len(healthy) > 1 else set()
    except Exception:  # no database here (the Python API in a bare script): every breaker counts as closed
        blocked = set()
    return next((name for name in healthy if name not in blocked), healthy[0] if healthy else None)
