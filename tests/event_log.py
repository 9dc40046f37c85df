"""A BARK_LOG_HOOK for live tests: each lifecycle event, from any process, appended as a JSON line to the
file named by BARK_TEST_EVENT_LOG."""

import json
import os
import time
from typing import Any


def record(event: str, payload: dict[str, Any]) -> None:
    with open(os.environ["BARK_TEST_EVENT_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps({"event": event, "at": time.time(), **payload}, default=str) + "\n")


def read(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as log:
        return [json.loads(line) for line in log if line.strip()]
