"""A BARK_LOG_HOOK for the fleet test: each host appends its lifecycle events, one JSON line each, to the
file named by FLEET_EVENT_LOG, so the test can count how often every job started and completed, and where."""

import json
import os
import time
from typing import Any


def record(event: str, payload: dict[str, Any]) -> None:
    line = json.dumps(
        {"event": event, "host": os.environ.get("FLEET_HOST", ""), "pid": os.getpid(), "at": time.time(), **payload}
    )
    with open(os.environ["FLEET_EVENT_LOG"], "a", encoding="utf-8") as log:
        log.write(line + "\n")  # one short write in append mode: lines from several processes never mix


def read(path: str | os.PathLike) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as log:
            return [json.loads(line) for line in log if line.endswith("\n")]
    except FileNotFoundError:
        return []
