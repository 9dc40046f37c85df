"""Engine faults: a circuit breaker per engine, and retries with backoff for transient faults.

A failure is one of three kinds (`classify`):
- transient: a lost database connection, an S3 or Redis error, the engine out of memory. Retried inside the job's
  attempt, BARK_RETRY_ATTEMPTS times, after BARK_RETRY_BASE_MS * 2^n with +-50% jitter. (Bark's scheduler
  first splits its batch on out-of-memory by itself; what reaches here failed even alone.)
- engine: the engine itself is broken (CUDA errors, a checkpoint that no longer loads, out of memory that
  retries did not cure). Each counts towards the engine's breaker.
- permanent: the input (an unreadable voice, a bad option). Never retried, never counted.
The engines say which kind they raised by its type (synthesis/engines/faults.py); nothing here reads messages.

The breaker's state is a database row per engine, so every worker on every host sees the same state.
closed --(BARK_BREAKER_THRESHOLD consecutive engine faults)--> open --(BARK_BREAKER_COOLDOWN_S)-->
half_open (one trial job) --success--> closed, --fault--> open again. Each change is logged and passed to
the hooks (`breaker_opened`, `breaker_half_opened`, `breaker_closed`).
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection
from django.db.models import F, Q
from django.utils import timezone

from synthesis.engines import (
    EngineFault,
    EngineOutOfMemory,
    EngineUnavailable,
    default_engine_name,
    planning_engine_name,
)
from synthesis.jobs import hooks
from synthesis.models import EngineBreaker, Job

logger = logging.getLogger(__name__)

TRANSIENT, ENGINE, PERMANENT = "transient", "engine", "permanent"
State = EngineBreaker.State


# --- classifying failures --------------------------------------------------------------------------------


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


DATABASE, REDIS, STORAGE, NETWORK = "the database", "Redis", "the artifact storage", "a service on the network"


def outage_of(exc: BaseException) -> str | None:
    """Which shared service failed, when one did: the database, Redis or the S3 bucket (or a connection to one of
    them); None when `exc` is not an outage. Such faults are neither the job's nor the engine's. Matched by module
    so that redis and botocore need not be importable."""
    for e in _chain(exc):
        if isinstance(e, OperationalError | InterfaceError) and _database_unreachable(e):
            return DATABASE
        module = type(e).__module__
        if module.startswith("redis."):
            return REDIS
        if module.startswith(("botocore.", "boto3.", "urllib3.")):
            return STORAGE
        # Not BrokenPipeError: that is ffmpeg or a client going away, not a dependency.
        if isinstance(e, ConnectionResetError | ConnectionRefusedError | ConnectionAbortedError | TimeoutError):
            return NETWORK
    return None


def _database_unreachable(error: OperationalError | InterfaceError) -> bool:
    """A database error that passes (a lost or refused connection, SQLite's lock held by another writer), not one
    that stays until someone acts (SQLite: no such table, a file it cannot open). Django raises these from the
    driver's error, whose type (psycopg) or result code (sqlite3) says which."""
    driver_error = error.__cause__
    if isinstance(driver_error, sqlite3.Error):
        return str(getattr(driver_error, "sqlite_errorname", "")).startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))
    return True  # PostgreSQL: OperationalError and InterfaceError are the connection's


def is_dependency_error(exc: BaseException) -> bool:
    """The database, Redis or S3 failed (see `outage_of`); the web edges answer these with a 503 and Retry-After."""
    return outage_of(exc) is not None


def classify(exc: BaseException) -> str:
    """Whose fault `exc` is, by its type: the engines say what they raised (synthesis/engines/faults.py), the
    shared services fail with their own clients' errors, and anything else is a bug that fails the job alone."""
    if isinstance(exc, EngineOutOfMemory | MemoryError) or is_dependency_error(exc):
        return TRANSIENT
    if isinstance(exc, EngineFault | EngineUnavailable):
        return ENGINE
    return PERMANENT  # InputRefused, and errors of our own code: the job fails, the engine is not blamed


def backoff_s(attempt: int) -> float:
    """Seconds before retry `attempt` (0-based): exponential, with +-50% jitter so workers do not retry in step."""
    base = settings.BARK_RETRY_BASE_MS / 1000 * 2**attempt
    return float(min(base, 60.0) * random.uniform(0.5, 1.5))


# --- running a job's work with retries -------------------------------------------------------------------


def run_guarded(
    job: Job,
    work: Callable[[], None],
    passthrough: tuple[type[Exception], ...] = (),
) -> None:
    """Run `work` (a job's synthesis and storing) for `job`, retrying transient faults with backoff and
    telling the engine's breaker how it went. Exceptions in `passthrough` (cancelled, the video failed after
    the audio was made) are raised at once and say nothing about the engine. (An engine that batches splits
    its own batch on out-of-memory before it gets here.) Raises what `work` raised last."""
    attempt = 0
    while True:
        try:
            work()
        except passthrough:
            raise
        except Exception as exc:
            kind = classify(exc)
            if kind == TRANSIENT and attempt < settings.BARK_RETRY_ATTEMPTS:
                delay = backoff_s(attempt)
                logger.warning("job %s: transient fault, retry %d in %.2f s: %s", job.id, attempt + 1, delay, exc)
                _reset_connection()
                time.sleep(delay)
                attempt += 1
                continue
            if kind == ENGINE or isinstance(exc, EngineOutOfMemory):  # out of memory that retries did not cure
                record_failure(job.engine, f"{type(exc).__name__}: {exc}")
            raise
        record_success(job.engine)
        return


def _reset_connection() -> None:
    """A connection the database dropped is unusable until closed; Django opens a new one on next use."""
    try:
        connection.close()
    except Exception:
        logger.debug("closing the broken connection failed", exc_info=True)
    close_old_connections()


# --- the breaker ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Breaker:
    engine: str
    state: str
    failures: int
    last_error: str
    changed_at: datetime | None

    @property
    def retry_at(self) -> datetime | None:
        """When an open breaker lets its trial job through."""
        if self.state != State.OPEN or self.changed_at is None:
            return None
        return self.changed_at + timedelta(seconds=settings.BARK_BREAKER_COOLDOWN_S)

    @property
    def reason(self) -> str:
        if self.state == State.CLOSED:
            return ""
        if self.state == State.HALF_OPEN:
            return f"the {self.engine} engine failed repeatedly; a trial job is checking whether it works again"
        return (
            f"the {self.engine} engine failed {self.failures} times in a row (last: {self.last_error}); new "
            f"jobs for it wait until a trial at {self.retry_at:%H:%M:%S} UTC"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "failures": self.failures,
            "last_error": self.last_error,
            "retry_at": self.retry_at.isoformat() if self.retry_at else None,
            "reason": self.reason,
        }


def get(engine: str) -> Breaker:
    row = EngineBreaker.objects.filter(engine=engine).first()
    if row is None:
        return Breaker(engine, State.CLOSED, 0, "", None)
    return Breaker(row.engine, row.state, row.failures, row.last_error, row.changed_at)


def not_closed() -> list[Breaker]:
    engines = EngineBreaker.objects.exclude(state=State.CLOSED).values_list("engine", flat=True)
    return [get(engine) for engine in engines]


def blocked_engines() -> set[str]:
    """Engines that take no job now: open within the cool-down, or half-open with its trial running (a
    trial older than the cool-down, whose worker may have died, lets another through)."""
    fresh = timezone.now() - timedelta(seconds=settings.BARK_BREAKER_COOLDOWN_S)
    rows = EngineBreaker.objects.filter(Q(state=State.OPEN) | Q(state=State.HALF_OPEN), changed_at__gt=fresh)
    return set(rows.values_list("engine", flat=True))


def default_engine() -> str | None:
    """The engine a request that names none runs on (`engines.default_engine_name`), passing over an engine whose
    breaker is open while another can run."""
    return default_engine_name(blocked=_blocked_or_none())


def planning_engine() -> str:
    """The engine a request that names none is planned for, even when none can run (`engines.planning_engine_name`)."""
    return planning_engine_name(blocked=_blocked_or_none())


def _blocked_or_none() -> set[str]:
    try:
        return blocked_engines()
    except Exception:  # no database here (the Python API in a bare script): every breaker counts as closed
        return set()


def admit(engine: str) -> bool:
    """May a worker start a job on `engine` now? Closed: yes. Open past its cool-down (or a half-open
    whose trial went quiet): the one caller whose conditional update wins runs the trial."""
    row = EngineBreaker.objects.filter(engine=engine).first()
    if row is None or row.state == State.CLOSED:
        return True
    if engine in blocked_engines():
        return False
    won = EngineBreaker.objects.filter(engine=engine, state=row.state, changed_at=row.changed_at).update(
        state=State.HALF_OPEN, changed_at=timezone.now()
    )
    if won:
        _changed(engine, State.HALF_OPEN, row.failures, row.last_error)
    return bool(won)


def record_failure(engine: str, error: str) -> None:
    EngineBreaker.objects.get_or_create(engine=engine)
    EngineBreaker.objects.filter(engine=engine).update(failures=F("failures") + 1, last_error=error[:2000])
    row = EngineBreaker.objects.get(engine=engine)
    threshold_hit = row.state == State.CLOSED and row.failures >= settings.BARK_BREAKER_THRESHOLD
    if threshold_hit or row.state == State.HALF_OPEN:
        opened = EngineBreaker.objects.filter(engine=engine, state=row.state).update(
            state=State.OPEN, changed_at=timezone.now()
        )
        if opened:
            _changed(engine, State.OPEN, row.failures, error)


def record_success(engine: str) -> None:
    row = EngineBreaker.objects.filter(engine=engine).exclude(state=State.CLOSED, failures=0).first()
    if row is None:  # the common case: closed, nothing to reset, no write
        return
    EngineBreaker.objects.filter(engine=engine).update(state=State.CLOSED, failures=0, changed_at=timezone.now())
    if row.state != State.CLOSED:
        _changed(engine, State.CLOSED, 0, "")


def _changed(engine: str, state: str, failures: int, error: str) -> None:
    event: dict[str, str] = {
        State.OPEN: "breaker_opened",
        State.HALF_OPEN: "breaker_half_opened",
        State.CLOSED: "breaker_closed",
    }
    log = logger.warning if state == State.OPEN else logger.info
    log("circuit breaker of the %s engine: %s (consecutive faults: %d) %s", engine, state, failures, error)
    hooks.emit(event[state], engine=engine, failures=failures, error=error)


def refuses_new_jobs(engine: str) -> str | None:
    """With BARK_BREAKER_WHILE_OPEN=fail, the reason a job for `engine` is refused now; else None."""
    if settings.BARK_BREAKER_WHILE_OPEN != "fail" or engine not in blocked_engines():
        return None
    return f"The {engine} engine is paused: {get(engine).reason}. Retry later or choose another engine."
