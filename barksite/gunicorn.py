"""gunicorn hooks for `bin/serve` (`--config python:barksite.gunicorn`).

The engines' health checks import torch and transformers (10-15 s on a 2-core machine; about 300 MB of a process's
own memory), and every page and `/api/health` shows that health. Done lazily, the first request after a start waited
for those imports. Here the master runs them once, after it has bound the listening socket (early connections queue)
and before it forks the web workers, so the workers start with them done and share those pages with the master
instead of each importing its own copy; each worker then checks the engines (now quick) and logs that it is ready.

Nothing torch computes in the master starts a thread: the one matrix product of `BARK_DTYPE=auto`'s measurement runs on
one torch thread (synthesis/engines/bark/loading.py), so the forked workers inherit no OpenMP thread pool.
"""

from __future__ import annotations

import os
import time
from typing import Any


def when_ready(server: Any) -> None:
    """In the master, once: Django and the engines' health (the torch import), before the workers are forked."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "barksite.settings")
    django.setup()
    from synthesis.engines import all_health

    started = time.monotonic()
    all_health()
    server.log.info("engines checked in %.1f s; starting the web workers", time.monotonic() - started)


def post_worker_init(worker: Any) -> None:
    from synthesis.engines import all_health

    started = time.monotonic()
    health = all_health()
    ready = ", ".join(f"{h.name} {'ok' if h.ok else 'off'}" for h in health)
    address = worker.cfg.bind[0] if worker.cfg.bind else "?"
    worker.log.info(
        "barksite is ready at http://%s/ (engines checked in %.1f s: %s)", address, time.monotonic() - started, ready
    )
