"""barksite/gunicorn.py, the config bin/serve runs gunicorn with: the master checks the engines (importing torch) once,
before it forks the web workers, which then start with that done and share its pages."""

from pathlib import Path

import pytest

from tests.processes import call, free_port, gunicorn, service_env, start, stop, wait_for_text


def _maps_torch(pid: int) -> bool:
    return "libtorch_cpu" in Path(f"/proc/{pid}/maps").read_text()


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])  # after the command: state, ppid
        except OSError:
            continue
        if parent == pid:
            children.append(int(stat.parent.name))
    return children


@pytest.mark.live  # a real gunicorn
def test_the_master_checks_the_engines_before_forking_workers_that_start_with_torch_already_imported(
    tmp_path, tiny_bark_dir
):
    env = service_env(tmp_path, BARK_MODEL=str(tiny_bark_dir))
    port = free_port()
    log = tmp_path / "web.log"
    web = start(gunicorn(port, "--config", "python:barksite.gunicorn"), env, log)
    try:
        wait_for_text(log, "barksite is ready at", web)
        text = log.read_text()
        # The master's line comes first: the workers were forked after it.
        assert text.index("starting the web workers") < text.index("barksite is ready at")
        assert _maps_torch(web.pid)
        workers = _children(web.pid)
        assert len(workers) == 2 and all(_maps_torch(pid) for pid in workers)

        status, body = call("GET", f"http://127.0.0.1:{port}/api/health")

        assert status == 200
        assert isinstance(body, dict)
        bark = next(engine for engine in body["checks"]["engines"] if engine["name"] == "bark")
        assert bark["ok"] is True and bark["model"] == str(tiny_bark_dir)
    finally:
        stop(web)
