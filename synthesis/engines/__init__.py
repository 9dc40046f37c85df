"""Speech engines behind one small interface, and the per-process registry that keeps them loaded.

Each engine is a package here that owns everything about it (its voices, their format, its constants);
`ENGINES` names them, and nothing outside this package names an engine. An engine is loaded once per
process (a worker keeps its model for every job it runs) and reports its health with a reason, so an
engine that cannot load (weights missing, package missing) never takes the others down with it.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from django.utils.module_loading import import_string

from synthesis.engines.faults import (
    EngineFailed,
    EngineFault,
    EngineLost,
    EngineOutOfMemory,
    EngineUnavailable,
    InputRefused,
    is_out_of_memory,
)

__all__ = [
    "EngineFailed",
    "EngineFault",
    "EngineLost",
    "EngineOutOfMemory",
    "EngineUnavailable",
    "InputRefused",
    "is_out_of_memory",
]

# Uploaded voices are named `custom/<uuid>` in requests; the caller loads their prompt arrays (engines do not
# read the database) and the engine whose `clones_voices` is true speaks them.
CUSTOM_PREFIX = "custom/"


class InvalidVoiceUpload(ValueError):
    """An uploaded voice (preset file or reference clip) cannot become a voice; the message says why, for the
    person who uploaded it. `field` names the part of the upload at fault when it is not the file itself."""

    field: str | None = None


@dataclass(frozen=True)
class CloningMethod:
    """How the cloning engine turns a reference clip into a voice on this machine, and why that way."""

    name: str  # recorded on each voice it builds (Voice.method)
    needs_transcript: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.name, "needs_transcript": self.needs_transcript, "reason": self.reason}


@dataclass(frozen=True)
class CatalogueVoice:
    """A built-in voice as pickers and /api/voices list it."""

    id: str
    engine: str
    language: str
    name: str

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "engine": self.engine, "language": self.language, "name": self.name}


@dataclass(frozen=True)
class EngineHealth:
    name: str
    ok: bool
    reason: str
    model: str
    device: str
    loaded: bool
    dtype: str = ""  # the weights' number format (Bark: BARK_DTYPE resolved for the device); "" when not applicable

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "reason": self.reason,
            "model": self.model,
            "device": self.device,
            "loaded": self.loaded,
            "dtype": self.dtype,
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
    segment_voices: Sequence[str | None] | None = None
    priority: int = 0  # a job's priority: engines that batch several jobs serve the most urgent first
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
    # Whether this engine speaks uploaded voices (`custom/<uuid>`) and builds them from uploads, and how large an
    # upload (a prompt file or a reference clip) may be.
    clones_voices: bool = False
    max_upload_bytes: int = 0
    # Bracketed cues ("[laughs]") the engine performs rather than reads out.
    cues: tuple[str, ...] = ()
    # What free-text instructions (OpenAI's speech `instructions`) can ask of the engine: a regular expression of
    # words per cue, each found (as whole words, any case) putting its cue at the start of the text. Empty: the
    # engine cannot act on instructions.
    instruction_cues: dict[str, str] = {}
    # Characters per second of audio its voices speak at, for plans' length estimates until jobs have measured it
    # on this deployment (docs/speech-pace.md).
    speech_pace: float = 14.0
    # An engine whose model lives in one runner process per device names the runner's two halves (dotted paths): the
    # server, `serve(socket_path, parent_pid)`, and the client class workers use in its place, built from the local
    # engine and the socket path. Empty: the engine runs inside each worker.
    runner_server: str = ""
    runner_client: str = ""

    @classmethod
    def from_settings(cls) -> Engine:
        """The instance the registry keeps, configured from Django settings."""
        return cls()

    @property
    @abstractmethod
    def model_id(self) -> str:
        """The model that runs (hub id, directory, or voice file)."""

    @property
    @abstractmethod
    def device(self) -> str: ...

    @property
    def dtype(self) -> str:
        """The number format the model runs in, for engines that have a choice; "" otherwise."""
        return ""

    @property
    def engine_settings(self) -> str:
        """The deployment's settings that change what this engine generates from its defaults (for Bark, those that
        make its codes differ from the library's, e.g. "BARK_FINE_WINDOW=real"), as NAME=value; "" for none."""
        return ""

    @abstractmethod
    def load(self) -> None:
        """Load weights once; idempotent. Raises EngineUnavailable with a reason."""

    @abstractmethod
    def health(self) -> EngineHealth:
        """Whether the engine can run, without loading it when that would be slow."""

    @abstractmethod
    def voices(self) -> list[str]:
        """The voice ids the installed model can speak (may need its files; empty when they are missing)."""

    @abstractmethod
    def default_voice(self) -> str: ...

    @abstractmethod
    def catalogue(self) -> list[CatalogueVoice]:
        """The built-in voices to offer, known without loading anything."""

    def runner_status(self) -> dict[str, Any] | None:
        """What this engine's runner process last said about itself ({"state": "loading" | "ready" | "failed" | "not
        running", ...}) for an engine that has one (`runner_server`); None for the others."""
        return None

    def owns_voice(self, voice: str) -> bool:
        """Whether `voice` is one of this engine's voice ids (an uploaded voice belongs to the cloning engine)."""
        if voice.startswith(CUSTOM_PREFIX):
            return self.clones_voices
        return any(entry.id == voice for entry in self.catalogue())

    def voice_for_alias(self, alias: str) -> str:
        """This engine's voice for a generic voice name (OpenAI's `alloy`, `nova`, ...); the default voice
        unless the engine maps it."""
        return self.default_voice()

    # --- uploaded voices (engines with clones_voices) ---------------------------------------------------

    def read_voice_file(self, data: bytes) -> dict[str, np.ndarray]:
        """A voice uploaded as the engine's own prompt file, checked; InvalidVoiceUpload says what is wrong."""
        raise InvalidVoiceUpload(f"The {self.name} engine takes no uploaded voices.")

    def write_voice_file(self, prompt: dict[str, np.ndarray]) -> bytes:
        """A prompt as file bytes, readable by `read_voice_file`."""
        raise InvalidVoiceUpload(f"The {self.name} engine takes no uploaded voices.")

    def cloning_method(self) -> CloningMethod:
        """The method `clone_voice` uses here now (decided without loading a model)."""
        raise InvalidVoiceUpload(f"The {self.name} engine cannot clone a voice.")

    def check_clip(self, clip: bytes, transcript: str | None) -> str:
        """Check a reference clip and its transcript (None or blank: none given) without any model (fast, for the
        web process); return the clip's file extension."""
        raise InvalidVoiceUpload(f"The {self.name} engine cannot clone a voice.")

    def clone_voice(self, clip: bytes, transcript: str | None, method: str | None = None) -> dict[str, np.ndarray]:
        """A prompt cloned from a reference clip (and the words spoken in it, where the method needs them) by
        `method` (a `CloningMethod.name`; None: `cloning_method()`'s). Loads the models."""
        raise InvalidVoiceUpload(f"The {self.name} engine cannot clone a voice.")

    @abstractmethod
    def synthesize(
        self, segments: list[str], options: SynthesisOptions, on_segment: SegmentCallback | None = None
    ) -> list[np.ndarray]:
        """One float32 mono waveform at `sample_rate` per segment, in order."""

    def _notify(self, on_segment: SegmentCallback | None, index: int, waveform: np.ndarray) -> None:
        if on_segment is not None and on_segment(index, waveform) is False:
            raise SynthesisCancelled()


# The registry: engine name -> its class, imported on first use (so a missing package only disables its engine).
# Adding an engine is one package under synthesis/engines/ and one line here.
ENGINES: dict[str, str] = {
    "bark": "synthesis.engines.bark.engine.BarkEngine",
    "piper": "synthesis.engines.piper.engine.PiperEngine",
}
ENGINE_NAMES = tuple(ENGINES)

_engines: dict[str, Engine] = {}
_lock = threading.Lock()
_is_runner = False  # True in the runner process itself (manage.py engine_runner)


def runner_engine_name() -> str | None:
    """The engine whose model lives in a runner process (the cluster starts that process), or None."""
    return next((name for name in ENGINE_NAMES if _engine_class(name).runner_server), None)


def serve_runner(socket_path: str, parent_pid: int | None) -> None:
    """Be the runner process: load the runner engine here and serve the workers on `socket_path` until stopped."""
    global _is_runner
    name = runner_engine_name()
    if name is None:
        raise EngineUnavailable("No engine runs in a runner process.")
    _is_runner = True
    reset_engines()
    import_string(_engine_class(name).runner_server)(socket_path, parent_pid)


def get_engine(name: str) -> Engine:
    """The process-wide instance of engine `name` (not loaded yet; call `load()` or `synthesize()`)."""
    if name not in ENGINES:
        raise EngineUnavailable(f"Unknown engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}.")
    with _lock:
        if name not in _engines:
            engine_class = _engine_class(name)
            engine = engine_class.from_settings()
            # In a worker of a cluster that runs the engine's runner, the runner holds the only model.
            if engine_class.runner_client and settings.BARK_RUNNER_SOCKET and not _is_runner:
                engine = import_string(engine_class.runner_client)(engine, settings.BARK_RUNNER_SOCKET)
            _engines[name] = engine
        return _engines[name]


def _engine_class(name: str) -> type[Engine]:
    engine_class: type[Engine] = import_string(ENGINES[name])
    return engine_class


def default_pace(name: str) -> float:
    """Engine `name`'s documented speech pace (characters per second of audio), read from its class."""
    return _engine_class(name).speech_pace


def cues() -> tuple[str, ...]:
    """Every engine's cues, read from the engine classes (nothing is configured or loaded)."""
    return tuple(dict.fromkeys(cue for name in ENGINE_NAMES for cue in _engine_class(name).cues))


def cues_for_instructions(name: str, instructions: str) -> tuple[list[str], str] | None:
    """The cues of engine `name` that `instructions` ask for, in the order they are first asked for, and what is
    left of the instructions once the words that asked for them are taken out; None when the engine cannot act on
    instructions at all (read from the engine's class: nothing is configured or loaded)."""
    engine_class = _engine_class(name)
    if not engine_class.instruction_cues:
        return None
    found: list[tuple[int, str]] = []
    rest = instructions
    for words, cue in engine_class.instruction_cues.items():
        pattern = re.compile(rf"(?<!\w)(?:{words})(?!\w)", re.IGNORECASE)
        match = pattern.search(instructions)
        if match is not None:
            found.append((match.start(), cue))
            rest = pattern.sub(" ", rest)
    return list(dict.fromkeys(cue for _, cue in sorted(found))), rest


def engine_for_voice(voice: str) -> str | None:
    """The name of the engine `voice` belongs to, or None when no engine knows it."""
    return next((name for name in ENGINE_NAMES if get_engine(name).owns_voice(voice)), None)


def cloning_engine() -> Engine:
    """The engine that speaks and builds uploaded voices."""
    return next(get_engine(name) for name in ENGINE_NAMES if get_engine(name).clones_voices)


def catalogue() -> list[CatalogueVoice]:
    """Every engine's built-in voices, in registry order."""
    return [voice for name in ENGINE_NAMES for voice in get_engine(name).catalogue()]


def reset_engines() -> None:
    """Forget loaded engines (tests that change BARK_MODEL; settings changes in a running process)."""
    with _lock:
        _engines.clear()


def all_health() -> list[EngineHealth]:
    return [get_engine(name).health() for name in ENGINE_NAMES]


def default_engine_name(blocked: Collection[str] = ()) -> str | None:
    """BARK_DEFAULT_ENGINE, or with `auto`: Bark when its weights resolve, else Piper; None if neither can run.
    An engine in `blocked` (the job layer's: its circuit breaker is open) is passed over while another can run."""
    preferred = settings.BARK_DEFAULT_ENGINE
    order = sorted(ENGINE_NAMES, key=lambda name: name != preferred)  # the preferred one first
    healthy = [name for name in order if get_engine(name).health().ok]
    return next((name for name in healthy if name not in blocked), healthy[0] if healthy else None)


def planning_engine_name(blocked: Collection[str] = ()) -> str:
    """The engine a request without one is planned for: the default engine, or when none can run (a dry run, or a
    503 that says why) the preferred one."""
    preferred = settings.BARK_DEFAULT_ENGINE
    return default_engine_name(blocked) or (preferred if preferred in ENGINES else ENGINE_NAMES[0])
