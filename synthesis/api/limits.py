"""Per-caller rate limits: no more than the limit in any 60 s span, across every gunicorn worker and machine.

Two budgets per caller (a key, the shared key, a session user, else the client IP), each per minute:
- `submit`: requests that create work (`POST /api/bark/synthesize`, `POST /v1/audio/speech`, voice
  uploads), at BARK_RATE_LIMIT_PER_MIN or the key's own `rate_limit_per_min`;
- `read`: everything else a caller does (polling, listing, downloads, cancel), at READ_MULTIPLIER times
  that, so a client polling its job every second is not locked out of its own results.

django-ratelimit names the groups and keys and decides who a client is (`RATELIMIT_ENABLE`,
`RATELIMIT_IP_META_KEY`, its IPv4/IPv6 masks, `RATELIMIT_FAIL_OPEN`), but its counters are fixed windows,
which let twice the limit through around a window's edge. So the counting is a moving window (a log of
the last `limit` accepted requests per caller): a request is accepted only if fewer than `limit` were
accepted in the 60 s before it. The log lives where django-ratelimit's counters would:
- Redis (the cache when REDIS_URL is set): the `limits` library's moving window, one Lua script per hit,
  atomic for every worker on every machine;
- diskcache (the default cache): a list of timestamps updated inside a diskcache transaction, which locks
  its SQLite file, so every process of the machine sees the same log;
- any other cache (a test's local memory): `limits`' in-process memory storage.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

import diskcache
import redis  # noqa: F401  (see _windows_lock)
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django_ratelimit.core import _get_ip
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from synthesis.api.auth import rate_identity
from synthesis.jobs import hooks

logger = logging.getLogger(__name__)

READ_MULTIPLIER = 10
WINDOW_S = 60


class MovingWindow(Protocol):
    def hit(self, key: str, limit: int) -> float | None:
        """Record a request of `key` if fewer than `limit` were accepted in the last WINDOW_S seconds and
        return None; otherwise record nothing and return the seconds until one is allowed again."""


class DiskcacheWindow:
    def __init__(self, cache: diskcache.Cache) -> None:
        self.cache = cache

    def hit(self, key: str, limit: int) -> float | None:
        now = time.time()
        with self.cache.transact():
            accepted = [stamp for stamp in self.cache.get(key, ()) if stamp > now - WINDOW_S]
            if len(accepted) >= limit:
                return accepted[-limit] + WINDOW_S - now
            self.cache.set(key, [*accepted, now][-limit:], expire=WINDOW_S)
        return None


class LimitsWindow:
    def __init__(self, storage: Storage) -> None:
        self.limiter = MovingWindowRateLimiter(storage)

    def hit(self, key: str, limit: int) -> float | None:
        item = RateLimitItemPerSecond(limit, WINDOW_S)
        if self.limiter.hit(item, key):
            return None
        reset_at, _ = self.limiter.get_window_stats(item, key)
        return reset_at - time.time()


_windows: dict[tuple[str, ...], MovingWindow] = {}
# One thread makes each window: `limits` checks its Redis client's version when a storage is made, by importing
# `redis` if it is not in sys.modules yet, and threads of a gunicorn worker doing so at once on its first requests
# (beside Django's RedisCache importing it) read a half-imported module: "found version 0.0.0". `redis` is imported
# whole with this module, above, for the same reason.
_windows_lock = threading.Lock()


def moving_window() -> MovingWindow:
    """The window for django-ratelimit's cache (RATELIMIT_USE_CACHE), made once per process and cache."""
    alias = getattr(settings, "RATELIMIT_USE_CACHE", "default")
    config = settings.CACHES[alias]
    ident = (alias, config["BACKEND"], str(config.get("LOCATION", "")), config.get("KEY_PREFIX", ""))
    with _windows_lock:
        return _window_for(ident, alias, config)


def _window_for(ident: tuple[str, ...], alias: str, config: dict[str, Any]) -> MovingWindow:
    if ident not in _windows:
        cache = caches[alias]
        if isinstance(cache, diskcache.DjangoCache):
            _windows[ident] = DiskcacheWindow(cache.cache("ratelimit"))
        elif isinstance(cache, RedisCache):
            location = config["LOCATION"]
            url = location[0] if isinstance(location, list | tuple) else location
            _windows[ident] = LimitsWindow(RedisStorage(url, key_prefix=f"{cache.key_prefix}barksite-limits"))
        else:
            _windows[ident] = LimitsWindow(MemoryStorage())
    return _windows[ident]


def check(request: Request, group: str, identity: str | None, limit: int) -> float | None:
    """None when the request may go ahead (and is counted), else the seconds to wait."""
    if not getattr(settings, "RATELIMIT_ENABLE", True):
        return None
    who = identity or f"ip:{_get_ip(request)}"  # django-ratelimit's own rule for the client's address
    try:
        wait = moving_window().hit(f"barksite.{group}:{who}", limit)
    except Exception as exc:
        # The shared store is down: closed (the default) refuses with a 503 saying so, not a 429 that blames the
        # caller; open (BARK_RATE_LIMIT_FAIL_OPEN) lets the request through uncounted.
        logger.warning(
            "rate-limit store failed (failing %s): %s", "open" if settings.RATELIMIT_FAIL_OPEN else "closed", exc
        )
        if settings.RATELIMIT_FAIL_OPEN:
            return None
        raise LimitsUnavailable() from exc
    return None if wait is None else max(1.0, wait)


class LimitsUnavailable(APIException):
    status_code = 503
    default_code = "service_unavailable"
    default_detail = (
        "The rate limits' store (Redis) is unreachable, so requests cannot be counted; nothing already accepted is "
        "lost. Retry shortly."
    )
    wait = 10  # DRF's handler turns this into Retry-After


class SubmitRateThrottle(BaseThrottle):
    group = "submit"
    multiplier = 1

    def allow_request(self, request: Request, view: Any) -> bool:
        identity, per_min = rate_identity(request)
        limit = per_min * self.multiplier
        wait = check(request, self.group, identity, limit)
        if wait is None:
            return True
        self.retry_after = int(wait + 0.999)  # whole seconds, rounded up
        hooks.emit(
            "rejected",
            reason="rate_limited",
            budget=self.group,
            client=identity or "ip",
            limit_per_min=limit,
            retry_after=self.retry_after,
        )
        return False

    def wait(self) -> int:
        return self.retry_after


class ReadRateThrottle(SubmitRateThrottle):
    group = "read"
    multiplier = READ_MULTIPLIER


class UploadRateThrottle(SubmitRateThrottle):
    """For routes that list on GET and create on POST (voices): the submit budget only for POST."""

    def allow_request(self, request: Request, view: Any) -> bool:
        if request.method == "POST":
            return super().allow_request(request, view)
        return ReadRateThrottle().allow_request(request, view)
