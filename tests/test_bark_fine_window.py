"""BARK_FINE_WINDOW: `full` (the default) runs the fine stage in the library's 1024-frame window, where rows of any
voice share a pass with exactly the codes each gets alone; `real` runs it on each segment's own frames, changes
codebooks 3-8 (tests/test_bark_longform.py) and is named by health and the job record (tests/test_run_job_task.py)."""

import numpy as np
import pytest

from synthesis.engines import SynthesisOptions, get_engine
from synthesis.engines.bark.engine import BarkEngine
from synthesis.engines.bark.stages import FINE_WINDOW

TEXTS = ["The first line.", "A second one.", "Then a third.", "A fourth here."]
VOICES = ["v2/en_speaker_1", "v2/de_speaker_2", None, "v2/fr_speaker_3"]
REAL = ", the fine stage on each segment's real length (BARK_FINE_WINDOW=real, not exact)"


def test_the_default_window_is_the_librarys_and_health_names_the_real_one_before_and_after_loading(tiny_bark_dir):
    default = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto")
    real = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto", fine_window="real")

    assert FINE_WINDOW == default.fine_window == "full" and "fine" not in default.health().reason
    assert real.health().reason.endswith(f"not loaded yet{REAL}")  # what a worker's health reports for the runner
    real.load()
    assert real.health().reason.endswith(f"in float32{REAL}")
    assert (default.engine_settings, real.engine_settings) == ("", "BARK_FINE_WINDOW=real")


def test_get_engine_reads_the_fine_window_and_the_sampling_settings(settings, tiny_bark):
    settings.BARK_FINE_WINDOW, settings.BARK_TOP_K, settings.BARK_TOP_P = "real", 40, 0.9

    engine = get_engine("bark")

    assert isinstance(engine, BarkEngine) and engine.fine_window == "real"
    assert engine.choices.sampling == {"top_k": 40, "top_p": 0.9, "min_eos_p": None}
    assert engine.engine_settings == "BARK_FINE_WINDOW=real BARK_TOP_K=40 BARK_TOP_P=0.9"


def fine_batches(engine: BarkEngine, monkeypatch) -> list[int]:
    """The number of rows of each fine-stage pass the engine runs from now on."""
    sizes: list[int] = []
    real = engine.stages.fine_steps

    def recording(rows, full_window=True):
        sizes.append(len(rows))
        return (yield from real(rows, full_window))

    monkeypatch.setattr(engine.stages, "fine_steps", recording)
    return sizes


@pytest.mark.parametrize("options", [{"text_temp": 0.0, "waveform_temp": 0.0}, {"seed": 4}], ids=["greedy", "seeded"])
def test_rows_of_different_voices_sharing_a_fine_pass_get_exactly_the_codes_they_get_one_at_a_time(
    bark_engine, tiny_bark_dir, monkeypatch, options
):
    shared = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto")
    shared.load()
    shared._scheduler_for().fine_rows = 8  # as on a GPU: a CPU runs one row at a time, batching saves it nothing
    job = SynthesisOptions(segment_voices=VOICES, **options)
    one_at_a_time, together = fine_batches(bark_engine, monkeypatch), fine_batches(shared, monkeypatch)

    alone = bark_engine.synthesize(TEXTS, job)
    batched = shared.synthesize(TEXTS, job)

    assert (one_at_a_time, together) == ([1, 1, 1, 1], [1, 3])  # the first segment alone, then the others at once
    assert all(np.array_equal(a, b) for a, b in zip(alone, batched, strict=True))
    for own, shared_run in zip(bark_engine.last_run, shared.last_run, strict=True):
        assert np.array_equal(own.tokens.fine, shared_run.tokens.fine)
