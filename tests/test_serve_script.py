"""`bin/serve`: the web server and the workers start together, and Ctrl-C stops all of them within 10 s,
without alarming messages."""

import contextlib
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.processes import ROOT, free_port, service_env, start, wait_for_text

pytestmark = pytest.mark.live


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def clean_up(serve: subprocess.Popen, family: list[psutil.Process]) -> None:
    """Kill whatever is left, even when the test failed before it looked: gunicorn and runworkers run in
    sessions of their own, so killing the script alone would leave them behind."""
    if serve.poll() is None:
        with contextlib.suppress(psutil.Error):
            family = family + psutil.Process(serve.pid).children(recursive=True)
        serve.kill()
        serve.wait(timeout=15)
    for process in family:
        with contextlib.suppress(psutil.Error):
            for child in [process, *process.children(recursive=True)]:
                child.kill()


def test_ctrl_c_stops_the_web_server_and_the_workers_within_10_s_quietly(tmp_path: Path):
    port = free_port()
    env = service_env(tmp_path, PORT=str(port), WEB_CONCURRENCY="1")
    log = tmp_path / "serve.log"
    serve = start([str(ROOT / "bin" / "serve"), "--no-setup"], env, log)
    family: list[psutil.Process] = []
    try:
        wait_for_text(log, "Workers running", serve, timeout_s=300)  # set-up and start-up, on a busy machine
        deadline = time.monotonic() + 60
        while not answers(f"http://127.0.0.1:{port}/api/health") and time.monotonic() < deadline:
            time.sleep(0.3)
        family = psutil.Process(serve.pid).children(recursive=True)
        assert len(family) >= 4, "gunicorn (master and worker) and the workers' processes"

        sent_at = time.monotonic()
        os.killpg(serve.pid, signal.SIGINT)  # what Ctrl-C in a terminal does to the foreground job
        serve.wait(timeout=30)
        took = time.monotonic() - sent_at
    finally:
        clean_up(serve, family)

    print(f"\nbin/serve stopped in {took:.1f} s")
    assert took < 10
    assert not [p.pid for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    output = log.read_text()
    assert "SIGKILL" not in output and "out of memory" not in output.lower() and "Traceback" not in output
    assert "workers stopped in" in output
