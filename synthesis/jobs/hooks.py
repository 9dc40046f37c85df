"""Queue lifecycle hooks: the built-in Prometheus metrics (synthesis/http/metrics.py) and, when set,
BARK_LOG_HOOK and BARK_METRICS_HOOK, callables (dotted paths) that receive `(event, payload)` for each of
submitted, rejected, started, completed, failed and cancelled, and for each change of an engine's circuit
breaker (breaker_opened, breaker_half_opened, breaker_closed). A hook that raises is logged and ignored:
observability must never fail a job."""

import logging
from collections.abc import Callable
from functools import cache
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


@cache
def _load(path: str) -> Callable[[str, dict[str, Any]], None]:
    hook: Callable[[str, dict[str, Any]], None] = import_string(path)
    return hook


def emit(event: str, **payload: Any) -> None:
    for path in ("synthesis.http.metrics.record", settings.BARK_LOG_HOOK, settings.BARK_METRICS_HOOK):
        if not path:
            continue
        try:
            _load(path)(event, payload)
        except Exception:
            logger.exception("hook %s failed on %s", path, event)
