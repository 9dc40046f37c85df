"""The tiny random-weight Bark checkpoint and HuBERT cloning models, built once per test session, and an engine
loaded from them (a pytest plugin: see conftest); what Bark's tests share."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from synthesis.engines import reset_engines
from synthesis.engines.bark.checkpoint import build_bark_checkpoint
from synthesis.engines.bark.engine import BarkEngine
from synthesis.engines.bark.hubert_checkpoint import build_hubert_checkpoint
from tests.processes import ROOT

# Greedy decoding: the same text and voice give the same tokens, alone or batched.
GREEDY = {"text_temp": 0.0, "waveform_temp": 0.0}
TEXTS = ["The first line.", "A second one.", "Then a third.", "A fourth here.", "And the fifth.", "Six."]


@pytest.fixture(scope="session")
def tiny_bark_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Bark checkpoint (real token conventions, 2-layer models, 130 v2 presets); about half a second."""
    return build_bark_checkpoint(tmp_path_factory.mktemp("tiny-bark"), arch="tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_hubert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Random-weight HuBERT (a model directory: 12 layers, 32 wide, HuBERT's 50 frames a second) and quantizer (a
    .pth in the published format), as BARK_HUBERT_MODEL and BARK_HUBERT_QUANTIZER take them."""
    return build_hubert_checkpoint(tmp_path_factory.mktemp("tiny-hubert"), arch="tiny", seed=0)


@pytest.fixture
def hubert_cloning(settings, tiny_bark: Path, tiny_hubert: tuple[Path, Path]):
    """The tiny Bark checkpoint with the tiny HuBERT models configured: clips are cloned by the `hubert` method."""
    settings.BARK_HUBERT_MODEL, settings.BARK_HUBERT_QUANTIZER = (str(path) for path in tiny_hubert)
    reset_engines()
    yield tiny_hubert
    reset_engines()


@pytest.fixture
def without_hubert(settings, tiny_bark: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The tiny Bark checkpoint on a machine without the HuBERT models: the default settings, an empty Hugging Face
    cache. Clips are cloned by the `transcript` method."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    settings.BARK_HUBERT_MODEL = "facebook/hubert-base-ls960"
    settings.BARK_HUBERT_QUANTIZER = "GitMylo/bark-voice-cloning/quantifier_hubert_base_ls960_14.pth"
    reset_engines()
    yield
    reset_engines()


@pytest.fixture(scope="module")
def bark_engine(tiny_bark_dir: Path) -> BarkEngine:
    """One loaded engine per test module: loading is what a worker does once per process."""
    engine = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto")
    engine.load()
    return engine


def coarse_together_and_alone(stages, prompts: list, semantic: list[np.ndarray]) -> tuple[list, list]:
    """Greedy coarse codes of `semantic` rows (each with its prompt), batched by barksite and one by one by the
    library: what the two give, row for row."""
    from synthesis.engines.bark import decode, windows
    from synthesis.engines.bark.stages import Sampling

    greedy, configs = Sampling(0.0, 0.0), stages.configs()
    with torch.inference_mode():
        rows = [
            windows.coarse_row(stages.row(np.zeros(256, dtype=np.int64), prompt, greedy), tokens, configs, 1024)
            for prompt, tokens in zip(prompts, semantic, strict=True)
        ]
        together = decode.coarse(stages.model, configs, rows, stages.codebook_size, stages.prefixes)
        alone = [
            stages.coarse([row], stages.prompt_tensors(p), greedy)[0] for row, p in zip(semantic, prompts, strict=True)
        ]
    return together, alone


def start_runner(checkpoint: Path, tmp_path: Path, **extra: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """An engine_runner process on `checkpoint` (the tiny one, or a variant) with the settings in `extra`, ready (its
    socket listening); killed afterwards."""
    socket_path = str(tmp_path / "runner.sock")
    # float32: the tests compare the runner's audio with an in-process engine's (BarkEngine defaults to float32).
    env = {
        **os.environ,
        "BARK_MODEL": str(checkpoint),
        "BARK_CACHE_DIR": str(tmp_path / "cache"),
        "BARK_DTYPE": "float32",
        **extra,
    }
    env.pop("REDIS_URL", None)
    log = tmp_path / "runner.log"
    process = subprocess.Popen(
        [sys.executable, "manage.py", "engine_runner", "--socket", socket_path, "--parent", str(os.getpid())],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 600  # minutes only on a heavily loaded machine
        while not Path(socket_path).exists():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        yield process, socket_path
    finally:
        process.kill()
        process.wait(timeout=15)
