"""barksite/gunicorn.py, the config bin/serve runs gunicorn with: the master checks the engines (importing torch) once,
before it forks the web workers, which then start with that done and share its pages."""

import psutil
import pytest

from tests.processes import call, free_port, gunicorn, service_env, start, stop, wait_for_text


def _maps_torch(process: psutil.Process) -> bool:
    return any("libtorch_cpu" in region.path for region in process.memory_maps())


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
        master = psutil.Process(web.pid)
        assert _maps_torch(master)
        workers = master.children()
        assert len(workers) == 2 and all(_maps_torch(worker) for worker in workers)

        status, body = call("GET", f"http://127.0.0.1:{port}/api/health")

        assert status == 200
        assert isinstance(body, dict)
        bark = next(engine for engine in body["checks"]["engines"] if engine["name"] == "bark")
        assert bark["ok"] is True and bark["model"] == str(tiny_bark_dir)
    finally:
        stop(web)
