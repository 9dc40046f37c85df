"""Out of memory inside Bark's scheduler (tiny checkpoint): a batch that does not fit is rolled back and run again in
smaller batches with the same tokens; a row that does not fit even alone fails its job with a readable reason, and
the engine serves the next job.

The fault is injected by wrapping the real batched stages: they run, then raise as a full device would, so the
rollback of tokens already generated and of each row's random generator is exercised too."""

from pathlib import Path

import numpy as np
import pytest
import torch

from synthesis.engines import EngineFailed, SynthesisOptions
from synthesis.engines.bark import decode
from synthesis.engines.bark.engine import BarkEngine

TEXTS = ["The first line.", "A second one.", "Then a third.", "A fourth here."]
GREEDY = SynthesisOptions(voice="v2/en_speaker_1", text_temp=0.0, waveform_temp=0.0)


@pytest.fixture
def engine(tiny_bark_dir: Path) -> BarkEngine:
    """A fresh engine per test: a scheduler keeps its lowered batch size for the rest of its life."""
    engine = BarkEngine(model=str(tiny_bark_dir), device="cpu", mode="auto")
    engine.load()
    return engine


def out_of_memory_above(monkeypatch, stage: str, rows: int) -> list[int]:
    """Make decode.<stage> raise CUDA's out-of-memory error, after doing its work, for batches over `rows` rows.
    Returns the batch sizes it was called with."""
    real = getattr(decode, stage)
    sizes: list[int] = []

    def out_of_memory(batch) -> None:
        sizes.append(len(batch))
        if len(batch) > rows:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def limited_steps(model, configs, batch, *args):  # a stage run a unit at a time: it fails at its end
        result = yield from real(model, configs, batch, *args)
        out_of_memory(batch)
        return result

    monkeypatch.setattr(decode, stage, limited_steps)
    return sizes


def test_a_coarse_window_that_runs_out_of_memory_is_split_and_gives_the_same_audio(engine, monkeypatch, caplog):
    expected = engine.synthesize(TEXTS, GREEDY)
    sizes = out_of_memory_above(monkeypatch, "coarse_window_steps", rows=1)

    result = engine.synthesize(TEXTS, GREEDY)

    assert all(np.array_equal(a, b) for a, b in zip(result, expected, strict=True))
    assert 3 in sizes and max(sizes[sizes.index(3) + 1 :]) == 1  # 3 rows failed, then one at a time
    assert engine._scheduler_for().max_rows == 1
    assert "Bark ran out of memory at 3 rows; batches now hold 1" in caplog.text


def test_a_seeded_job_samples_the_same_after_its_coarse_window_is_split(engine, monkeypatch):
    seeded = SynthesisOptions(voice="v2/en_speaker_1", seed=11)
    expected = engine.synthesize(TEXTS, seeded)
    out_of_memory_above(monkeypatch, "coarse_window_steps", rows=2)

    result = engine.synthesize(TEXTS, seeded)

    assert all(np.array_equal(a, b) for a, b in zip(result, expected, strict=True))
    assert engine._scheduler_for().max_rows == 1  # 3 rows halve to 1


def test_a_semantic_batch_that_runs_out_of_memory_is_split_and_gives_the_same_audio(engine, monkeypatch):
    expected = engine.synthesize(TEXTS, GREEDY)
    sizes = out_of_memory_above(monkeypatch, "semantic_steps", rows=1)

    result = engine.synthesize(TEXTS, GREEDY)

    assert all(np.array_equal(a, b) for a, b in zip(result, expected, strict=True))
    assert sizes == [1, 3, 1, 1, 1]


def test_a_row_that_does_not_fit_alone_fails_its_job_with_a_reason_and_the_engine_serves_the_next(engine, monkeypatch):
    monkeypatch.setattr(
        decode,
        "semantic_steps",
        lambda *args: (_ for _ in ()).throw(torch.cuda.OutOfMemoryError("CUDA out of memory.")),
    )
    with pytest.raises(EngineFailed, match="Bark ran out of cpu memory in float32; try shorter text segments"):
        engine.synthesize(TEXTS[:1], GREEDY)
    monkeypatch.undo()

    assert len(engine.synthesize(TEXTS[:1], GREEDY)) == 1
