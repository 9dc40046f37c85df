"""One Bark runner per device: the only process that holds the model, serving every django-q2 worker over a socket.

`manage.py runworkers` (or `qcluster`) starts it (see synthesis/jobs/cluster.py) before the cluster forks its workers
and restarts it if it dies. It loads the model, warms it up at the batch shapes the scheduler uses, then accepts
connections on a Unix socket (multiprocessing.connection, authenticated with a key derived from SECRET_KEY). Each
connection is one job: the worker's task sends the segments and options, and gets each segment's audio back as soon as
it is decoded, answering "go" or "stop" (the job was cancelled) after storing it. Every job's segments go through the
one BarkEngine's scheduler, so concurrent jobs share batches. The worker keeps owning its Job row (claim, heartbeat,
progress, cancel, failure); if the runner dies mid-job, the worker sees the connection drop and puts the job back.

Its state ("loading", "ready", "failed") is kept in Django's cache, where /api/health reads it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings

from synthesis.engines import (
    CatalogueVoice,
    CloningMethod,
    Engine,
    EngineHealth,
    EngineLost,
    EngineUnavailable,
    SegmentCallback,
    SynthesisCancelled,
    SynthesisOptions,
    get_engine,
)
from synthesis.engines.bark import cloning
from synthesis.engines.bark.engine import BarkEngine
from synthesis.engines.bark.protocol import (
    CALLS,
    STATE_TTL_S,
    Call,
    Continue,
    Done,
    Failed,
    Result,
    SegmentReady,
    Started,
    Synthesize,
    runner_state,
    set_state,
)

logger = logging.getLogger(__name__)

# Warm-up: short generations at the batch shapes jobs use (a first segment alone, then rows of several jobs).
WARM_UP_TOKENS = 16
WARM_UP_TEXT = "Warming up the model."


def authkey() -> bytes:
    return hashlib.sha256(f"bark-runner:{settings.SECRET_KEY}".encode()).digest()


# --- the runner process -------------------------------------------------------------------------------------


def serve(socket_path: str, parent_pid: int | None) -> None:
    """The runner process's life (`manage.py engine_runner`): load, warm up, serve until stopped."""
    Runner(socket_path, parent_pid).serve_forever()


class Runner:
    def __init__(self, socket_path: str, parent_pid: int | None, engine: BarkEngine | None = None) -> None:
        self.socket_path = socket_path
        self.parent_pid = parent_pid
        if engine is None:
            local = get_engine(BarkEngine.name)  # in the runner process the registry holds the local engine
            assert isinstance(local, BarkEngine)
            engine = local
        self.engine = engine
        self.state: dict[str, Any] = {"state": "loading"}
        self._listener: Listener | None = None

    def serve_forever(self) -> None:
        threading.Thread(target=self._keep_state, name="runner-state", daemon=True).start()
        try:
            self.engine.load()
            self.warm_up()
        except Exception as exc:
            self.state = {"state": "failed", "reason": str(exc)}
            set_state(**self.state)
            raise
        self.listen()
        self.accept_forever()

    def listen(self) -> None:
        Path(self.socket_path).unlink(missing_ok=True)
        self._listener = Listener(self.socket_path, family="AF_UNIX", authkey=authkey())
        os.chmod(self.socket_path, 0o600)
        health = self.engine.health()
        self.state = {
            "state": "ready",
            "socket": self.socket_path,
            "device": health.device,
            "model": health.model,
            "dtype": health.dtype,
        }
        set_state(**self.state)
        logger.info("Bark runner ready on %s", self.socket_path)

    def accept_forever(self) -> None:
        assert self._listener is not None
        while self._listener is not None:
            try:
                connection = self._listener.accept()
            except OSError:  # closed
                break
            except Exception:  # a client that failed authentication or hung up at once
                logger.warning("Bark runner: a connection failed", exc_info=True)
                continue
            threading.Thread(target=self._serve, args=(connection,), name="runner-job", daemon=True).start()

    def close(self) -> None:
        """Stop accepting jobs (tests; the process itself just exits)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

    def warm_up(self) -> None:
        """Pay the first generation at the batch shapes jobs use now, not in a user's request: a job's first segment
        alone, then two jobs' rows together, with a few forced semantic tokens each (one coarse window)."""
        config = self.engine.stages.model.generation_config.semantic_config
        saved = {key: config.get(key) for key in ("min_new_tokens", "max_new_tokens")}
        config["min_new_tokens"] = config["max_new_tokens"] = WARM_UP_TOKENS
        started = time.monotonic()
        try:
            with self.engine.faults.paused():  # BARK_FAULT_INJECTION's faults are meant for jobs
                options = SynthesisOptions(voice=self.engine.default_voice() or None, text_temp=0.0, waveform_temp=0.0)
                other = threading.Thread(target=self.engine.synthesize, args=([WARM_UP_TEXT], options))
                other.start()
                self.engine.synthesize([WARM_UP_TEXT] * 3, options)
                other.join()
        finally:
            for key, value in saved.items():
                if value is None:
                    config.pop(key, None)
                else:
                    config[key] = value
        logger.info("Bark runner warmed up in %.1f s", time.monotonic() - started)

    def _keep_state(self) -> None:
        while True:
            if self.parent_pid is not None and not _alive(self.parent_pid):
                logger.warning("Bark runner: the cluster (pid %s) is gone; exiting", self.parent_pid)
                Path(self.socket_path).unlink(missing_ok=True)
                os._exit(0)
            set_state(**self.state)
            time.sleep(min(2.0, STATE_TTL_S / 3))

    def _serve(self, connection: Connection) -> None:
        """One request (protocol.py): a job's segments in, each segment's audio out, until done, failed or stopped
        by the worker; or one call into the engine for building a voice."""
        with connection:
            try:
                request = connection.recv()
                if isinstance(request, Call) and request.op in CALLS:
                    connection.send(Result(getattr(self.engine, request.op)(*request.args)))
                    return
                if not isinstance(request, Synthesize):
                    raise EngineUnavailable(f"The Bark runner does not understand {type(request).__name__}.")
                engine = self.engine
                connection.send(Started(engine.sample_rate, engine.device, engine.model_id, engine.dtype))

                def on_segment(index: int, waveform: np.ndarray) -> bool:
                    connection.send(SegmentReady(index, waveform))
                    reply: Continue = connection.recv()
                    return reply.keep_going

                self.engine.synthesize(request.segments, request.options, on_segment)
                connection.send(Done())
            except SynthesisCancelled:
                pass
            except (EOFError, OSError):  # the worker went away (its process ended): its rows stop at the next step
                logger.info("Bark runner: a worker hung up mid-job")
            except Exception as exc:  # the engine's typed failures keep their kind; anything else is an engine fault
                if type(exc).__name__ not in ("InputRefused", "EngineUnavailable"):
                    logger.warning("Bark runner: a job failed: %s: %s", type(exc).__name__, exc)
                _send_quietly(connection, Failed.of(exc))


def _send_quietly(connection: Connection, message: Failed) -> None:
    with contextlib.suppress(EOFError, OSError):  # the worker is gone: nobody to tell
        connection.send(message)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- the client, in each worker ---------------------------------------------------------------------------


class RemoteBarkEngine(Engine):
    """Bark as a worker sees it when a runner holds the model: the same interface, no model in this process."""

    name = "bark"
    clones_voices = BarkEngine.clones_voices
    cues = BarkEngine.cues
    max_upload_bytes = BarkEngine.max_upload_bytes

    def __init__(self, local: Engine, socket_path: str) -> None:
        self._local = local  # for voices and health, read from the checkpoint without loading it
        self.socket_path = socket_path
        self.sample_rate = local.sample_rate
        self._device: str | None = None
        self._dtype: str | None = None  # what the runner loaded (auto may measure the CPU: ask the one that ran)

    @property
    def model_id(self) -> str:
        return self._local.model_id

    @property
    def device(self) -> str:
        return self._device or self._local.device

    def load(self) -> None:
        """Nothing to load here; a runner that is still loading is waited for when a job starts."""

    def health(self) -> EngineHealth:
        return self._local.health()

    def voices(self) -> list[str]:
        return self._local.voices()

    def runner_status(self) -> dict[str, Any] | None:
        return self._local.runner_status()

    def default_voice(self) -> str:
        return self._local.default_voice()

    # What the engine knows without its model is answered here; what needs the model goes to the runner.

    @property
    def dtype(self) -> str:
        return self._dtype or self._local.dtype

    @property
    def engine_settings(self) -> str:
        return self._local.engine_settings  # the runner reads the same settings

    def catalogue(self) -> list[CatalogueVoice]:
        return self._local.catalogue()

    def voice_for_alias(self, alias: str) -> str:
        return self._local.voice_for_alias(alias)

    def read_voice_file(self, data: bytes) -> dict[str, np.ndarray]:
        return self._local.read_voice_file(data)

    def write_voice_file(self, prompt: dict[str, np.ndarray]) -> bytes:
        return self._local.write_voice_file(prompt)

    def cloning_method(self) -> CloningMethod:
        return self._local.cloning_method()  # the runner reads the same settings and files

    def check_clip(self, clip: bytes, transcript: str | None) -> str:
        return self._local.check_clip(clip, transcript)

    def clone_voice(self, clip: bytes, transcript: str | None, method: str | None = None) -> dict[str, np.ndarray]:
        method = method or self.cloning_method().name
        return cloning.clone(clip, transcript, method, self.encode_clip, self.semantic_tokens, self.hubert_tokens)

    def _connect(self) -> Connection:
        """A connection to the runner, waiting while it loads (up to BARK_RUNNER_WAIT_S)."""
        deadline = time.monotonic() + settings.BARK_RUNNER_WAIT_S
        while True:
            try:
                return Client(self.socket_path, family="AF_UNIX", authkey=authkey())
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                state = runner_state() or {}
                if state.get("state") == "failed":
                    raise EngineUnavailable(f"The Bark runner could not start: {state.get('reason')}") from exc
                if time.monotonic() > deadline:
                    raise EngineLost(
                        f"The Bark runner did not accept jobs within {settings.BARK_RUNNER_WAIT_S} s "
                        f"(state: {state.get('state', 'unknown')})."
                    ) from exc
                time.sleep(0.5)

    def encode_clip(self, waveform: np.ndarray) -> np.ndarray:
        return np.asarray(self._call("encode_clip", waveform))

    def semantic_tokens(self, text: str, length: int) -> np.ndarray:
        return np.asarray(self._call("semantic_tokens", text, length))

    def hubert_tokens(self, waveform: np.ndarray) -> np.ndarray:
        return np.asarray(self._call("hubert_tokens", waveform))

    def _call(self, op: str, *args: Any) -> Any:
        """One request and its answer (voice building uses the runner's model too)."""
        try:
            with self._connect() as connection:
                connection.send(Call(op, args))
                message = connection.recv()
        except (EOFError, OSError) as exc:
            raise EngineLost(f"The Bark runner went away ({type(exc).__name__}); try again.") from exc
        if isinstance(message, Result):
            return message.value
        raise message.error()

    def synthesize(
        self, segments: list[str], options: SynthesisOptions, on_segment: SegmentCallback | None = None
    ) -> list[np.ndarray]:
        waveforms: list[np.ndarray] = []
        try:
            with self._connect() as connection:
                connection.send(Synthesize(segments, options))
                while True:
                    message = connection.recv()
                    if isinstance(message, Started):
                        self.sample_rate, self._device, self._dtype = message.sample_rate, message.device, message.dtype
                    elif isinstance(message, SegmentReady):
                        waveforms.append(message.waveform)
                        keep_going = on_segment is None or on_segment(message.index, message.waveform) is not False
                        connection.send(Continue(keep_going))
                        if not keep_going:
                            raise SynthesisCancelled()
                    elif isinstance(message, Done):
                        return waveforms
                    else:
                        raise message.error()
        except (EOFError, OSError) as exc:
            lost = f"The Bark runner went away mid-job ({type(exc).__name__}); the job will run again."
            raise EngineLost(lost) from exc
