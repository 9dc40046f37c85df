"""Real server processes for the live tests: an environment of their own (a temporary SQLite file, output
root and cache), and starting and stopping whole process groups."""

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def service_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh, migrated one-machine deployment under `tmp_path`."""
    env = {
        **os.environ,
        "BARK_SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        "BARK_OUTPUT_ROOT": str(tmp_path / "outputs"),
        "BARK_CACHE_DIR": str(tmp_path / "cache"),
        "BARK_MAX_CONCURRENCY": "1",
        **extra,
    }
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, timeout=120)
    return env


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(process: subprocess.Popen, grace_s: float = 5) -> None:
    """SIGTERM the process group; SIGKILL whatever is left after a grace period (qcluster's own
    shutdown waits on its workers' polling)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)
    except ProcessLookupError:
        pass
