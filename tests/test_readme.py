"""README.md, taken literally: every ```bash block runs as written, in order, in one shell, on a fresh copy of
the repository, and every ```python block runs there too (through `manage.py shell`, with the shell's exported
variables). Blocks marked ```sh or ```text are illustrations (a GPU, a download, a foreground server).

The copy holds exactly what a clone would (tracked files and new files git does not ignore) and is made a git
repository of its own, so that afterwards `git status` shows whether the examples wrote anything .gitignore
misses. The existing .venv is linked in, so `bin/setup` finds its packages installed and installs nothing. The
only change made to the blocks is the port: `127.0.0.1:8000` becomes a free port, which `bin/serve` gets as
PORT. The README starts `bin/serve &` itself; the whole process group is stopped at the end, pass or fail.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from scipy.io import wavfile

from tests.media_decode import RATE, decode
from tests.processes import ROOT

pytestmark = pytest.mark.live

BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
MARK = "::readme block"
# About 100 s on an idle 2-core machine; several times that while other test suites share its cores.
TIMEOUT_S = 600


def readme_blocks() -> list[tuple[str, str]]:
    return BLOCK.findall((ROOT / "README.md").read_text(encoding="utf-8"))


def fresh_clone(dest: Path) -> None:
    """What `git clone` of this working tree would give once its changes were committed."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file() and not source.is_symlink():  # a deleted but not yet committed file is listed too
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    git = ["git", "-c", "user.name=readme", "-c", "user.email=readme@localhost", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "clone"], cwd=dest, check=True)
    (dest / ".venv").symlink_to((ROOT / ".venv").resolve())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def script(blocks: list[tuple[str, str]], port: int) -> str:
    lines = ["set -euo pipefail"]
    for index, (language, body) in enumerate(blocks):
        body = body.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        lines.append(f"echo '{MARK} {index} ({language})' >&2; SECONDS=0")
        if language == "bash":
            lines.append(body)
        else:
            lines.append(f".venv/bin/python manage.py shell <<'PYTHON_BLOCK'\n{body}PYTHON_BLOCK")
        lines.append(f"echo '{MARK} {index} took' $SECONDS s >&2")
    return "\n".join(lines) + "\n"


def stop_group(pgid: int, grace_s: float = 20) -> None:
    """SIGTERM the README's shell and bin/serve (which stops its gunicorn and workers, each in a session of its
    own), then SIGKILL what is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def kill_leftovers(clone: Path) -> None:
    """Any process still working in the copy (bin/serve starts gunicorn and its workers with setsid, outside
    the shell's process group) is one this test started: SIGKILL it."""
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.readlink(proc / "cwd").startswith(str(clone)):
                os.kill(int(proc.name), signal.SIGKILL)
        except OSError:  # gone already, or not ours to read
            continue


def test_every_readme_block_runs_as_written_in_order_on_a_fresh_clone(tmp_path: Path):
    if not (ROOT / ".git").exists():
        pytest.fail("the README test copies the repository as git sees it; run it from a git checkout")
    clone = tmp_path / "barksite"
    clone.mkdir()
    fresh_clone(clone)
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "LANG": "C.UTF-8",
        "PORT": str(port),
        "HF_HOME": str(tmp_path / "huggingface"),  # a machine without Bark weights: the default, Piper-only set-up
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "WEB_CONCURRENCY": "1",
        "BARK_MAX_CONCURRENCY": "1",
    }
    blocks = readme_blocks()
    log = tmp_path / "readme.log"
    started = time.monotonic()
    with log.open("w") as out:
        shell = subprocess.Popen(
            ["bash", "-c", script(blocks, port)],
            cwd=clone,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            returncode = shell.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            returncode = None
        finally:
            stop_group(shell.pid)
            kill_leftovers(clone)
    text = log.read_text(errors="replace")
    last = [line for line in text.splitlines() if line.startswith(MARK)][-1:]
    where = f"last started: {last[0] if last else 'none'}"
    assert returncode == 0, f"README failed ({where}, exit {returncode}):\n{text[-6000:]}"
    print(
        f"README ran in {time.monotonic() - started:.0f} s:\n" + "\n".join(re.findall(f"^{MARK} .*took.*$", text, re.M))
    )

    assert "barksite is ready at http://127.0.0.1:" in text  # bin/serve's web worker, once its engines are checked
    for name, rate in (("hello.wav", 22050), ("bark.wav", 24000), ("rest-hello.wav", 22050), ("me.wav", 22050)):
        assert wavfile.read(clone / name)[0] == rate, name
    assert (clone / "openai-hello.mp3").read_bytes()[:3] == b"ID3"
    assert len(decode(streamed := (clone / "openai-stream.mp3").read_bytes())) > RATE and streamed[0] == 0xFF  # frames
    assert (clone / "hello.mp4").read_bytes()[4:8] == b"ftyp"
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=clone, capture_output=True, text=True
    ).stdout
    assert status == "", f"the README's examples wrote files .gitignore does not cover:\n{status}"
