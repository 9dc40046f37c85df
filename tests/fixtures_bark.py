"""The tiny random-weight Bark checkpoint, built once per test session (a pytest plugin: see conftest)."""

from pathlib import Path

import pytest

from synthesis.engines.bark.checkpoint import build_bark_checkpoint


@pytest.fixture(scope="session")
def tiny_bark_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Bark checkpoint (real token conventions, 2-layer models, 130 v2 presets); about half a second."""
    return build_bark_checkpoint(tmp_path_factory.mktemp("tiny-bark"), arch="tiny", seed=0)
