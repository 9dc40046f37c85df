"""The tiny random-weight Bark checkpoint, built once per test session, and an engine loaded from it (a pytest
plugin: see conftest); what Bark's tests share."""

from pathlib import Path

import pytest

from synthesis.engines.bark.checkpoint import build_bark_checkpoint
from synthesis.engines.bark.engine import BarkEngine

# Greedy decoding: the same text and voice give the same tokens, alone or batched.
GREEDY = {"text_temp": 0.0, "waveform_temp": 0.0}
TEXTS = ["The first line.", "A second one.", "Then a third.", "A fourth here.", "And the fifth.", "Six."]


@pytest.fixture(scope="session")
def tiny_bark_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Bark checkpoint (real token conventions, 2-layer models, 130 v2 presets); about half a second."""
    return build_bark_checkpoint(tmp_path_factory.mktemp("tiny-bark"), arch="tiny", seed=0)


@pytest.fixture(scope="module")
def bark_engine(tiny_bark_dir: Path) -> BarkEngine:
    """One loaded engine per test module: loading is what a worker does once per process."""
    engine = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto")
    engine.load()
    return engine
