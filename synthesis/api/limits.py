"""Per-caller rate limits, counted by django-ratelimit in the shared cache (Redis, or diskcache's SQLite
file on one machine), so every gunicorn worker counts against the same window.

Two budgets per caller (a key, the shared key, a session user, else the client IP), each per minute:
- `submit`: requests that create work (`POST /api/bark/synthesize`, `POST /v1/audio/speech`), at
  BARK_RATE_LIMIT_PER_MIN or the key's own `rate_limit_per_min`;
- `read`: everything else a caller does (polling, listing, downloads, cancel), at READ_MULTIPLIER times
  that, so a client polling its job every second is not locked out of its own results.
"""

from __future__ import annotations

from typing import Any

from django_ratelimit.core import get_usage
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from synthesis import hooks
from synthesis.api.auth import rate_identity

READ_MULTIPLIER = 10
WINDOW_S = 60


class SubmitRateThrottle(BaseThrottle):
    group = "submit"
    multiplier = 1

    def allow_request(self, request: Request, view: Any) -> bool:
        identity, per_min = rate_identity(request)
        limit = per_min * self.multiplier
        usage = get_usage(
            request,
            group=f"barksite.{self.group}",
            key=(lambda _group, _request: identity) if identity else "ip",
            rate=(limit, WINDOW_S),
            increment=True,
        )
        if usage is None or not usage["should_limit"]:  # None: RATELIMIT_ENABLE is off
            return True
        # time_left is -1 when the cache failed (django-ratelimit then fails closed).
        self.retry_after = max(1, usage["time_left"])
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
