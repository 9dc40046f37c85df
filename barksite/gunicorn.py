"""gunicorn hooks for `bin/serve` (`--config python:barksite.gunicorn`).

The engines' health checks import torch and transformers (10-15 s on a 2-core machine), and every page and
`/api/health` shows that health. Done lazily, the first request after a start waited for those imports; here
each web worker runs them once before it accepts a request (the listening socket queues early connections),
then logs that it is ready.
"""

from __future__ import annotations

import time
from typing import Any


def post_worker_init(worker: Any) -> None:
    from synthesis.engines import all_health

    started = time.monotonic()
    health = all_health()
    ready = ", ".join(f"{h.name} {'ok' if h.ok else 'off'}" for h in health)
    address = worker.cfg.bind[0] if worker.cfg.bind else "?"
    worker.log.info(
        "barksite is ready at http://%s/ (engines checked in %.1f s: %s)", address, time.monotonic() - started, ready
    )
