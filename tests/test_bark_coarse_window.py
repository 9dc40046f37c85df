"""BARK_COARSE_WINDOW: longer coarse windows re-read Bark's context less often; barksite's batched coarse stage still
gives, row for row, what the library's own loop gives with the same window, and a window the checkpoint cannot hold
is refused with a message."""

import numpy as np
import pytest

from synthesis.engines import EngineUnavailable, SynthesisOptions, get_engine
from synthesis.engines.bark import windows as coarse_windows
from synthesis.engines.bark.engine import BarkEngine
from synthesis.engines.bark.stages import COARSE_WINDOW
from tests.fixtures_bark import coarse_together_and_alone


@pytest.fixture(scope="module")
def long_window_engine(tiny_bark_dir) -> BarkEngine:
    engine = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto", coarse_window=138)
    engine.load()
    return engine


def test_a_longer_window_reads_the_context_fewer_times_and_matches_the_library_with_that_window(
    long_window_engine, monkeypatch
):
    prompts = [long_window_engine._voice_prompt(voice, SynthesisOptions()) for voice in ("v2/en_speaker_1", None)]
    semantic = [np.random.default_rng(1).integers(0, 10_000, size) for size in (120, 60)]  # 360 and 180 coarse tokens
    windows, read_window = [], coarse_windows.coarse_window_input

    def counting_windows(row, configs):  # each window's context is read once, where the row's tokens then stand
        windows.append(row.generated)
        return read_window(row, configs)

    monkeypatch.setattr(coarse_windows, "coarse_window_input", counting_windows)

    together, alone = coarse_together_and_alone(long_window_engine.stages, prompts, semantic)

    assert long_window_engine.stages.configs()[1].sliding_window_len == 138
    assert sorted(windows) == [0, 0, 138, 138, 276]  # 3 windows for 360 tokens and 2 for 180, instead of 6 and 3
    assert [codes.shape for codes in together] == [(2, 180), (2, 90)]
    assert all(np.array_equal(a, b) for a, b in zip(together, alone, strict=True))


def test_the_default_window_is_barks_own_and_health_names_a_longer_one(tiny_bark_dir, long_window_engine):
    default = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto")
    default.load()

    assert default.stages.configs()[1].sliding_window_len == COARSE_WINDOW == 60
    assert default.health().reason.endswith("in float32")
    assert long_window_engine.health().reason.endswith("in float32, coarse windows of 138 tokens")


def test_a_window_past_the_coarse_models_positions_makes_bark_unavailable_with_a_message(tiny_bark_dir):
    engine = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto", coarse_window=139)

    with pytest.raises(EngineUnavailable, match="BARK_COARSE_WINDOW=139 does not fit .* at most 138 tokens"):
        engine.load()
    assert not engine.health().ok and "BARK_COARSE_WINDOW=139" in engine.health().reason


def test_get_engine_reads_bark_coarse_window_from_the_settings(settings, tiny_bark):
    settings.BARK_COARSE_WINDOW = 100

    engine = get_engine("bark")

    assert isinstance(engine, BarkEngine) and engine.coarse_window == 100
