"""With the default settings, every stage's codes from the service's Bark path (the runner, its scheduler, the socket
to the worker's client) equal transformers' `BarkModel.generate` on the same inputs, under greedy decoding: a job of
segments in different voices (the first alone, the others in one mixed batch) long enough for five coarse windows,
in float32 and in bf16 (the format `auto` picks on CPUs fast at it), against the library in that format."""

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BarkModel, BarkProcessor

from synthesis.engines import SynthesisOptions, reset_engines
from synthesis.engines.bark.engine import BarkEngine
from synthesis.engines.bark.precision import convert
from synthesis.engines.bark.reference import library_run
from synthesis.engines.bark.runner import RemoteBarkEngine, Runner
from tests.bark_checkpoints import with_semantic_config

# 100 semantic tokens a segment: 150 frames, 300 coarse tokens, five 60-token coarse windows.
TOKENS = 100
TEXTS = [
    "The first segment of the dialogue runs alone, so that its audio comes first.",
    "The second speaks German in a batch with the others.",
    "The third has no voice at all.",
    "And the fourth speaks Italian, a longer sentence than the others, to pad the batch a little.",
]
VOICES = ["v2/en_speaker_1", "v2/de_speaker_2", None, "v2/it_speaker_4"]
FORMATS = ["float32", pytest.param("bfloat16", marks=pytest.mark.skipif(
    not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="this CPU has no bf16 in oneDNN"
))]  # fmt: skip


@pytest.fixture(scope="module")
def long_checkpoint(tiny_bark_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("long-bark") / "checkpoint"
    return with_semantic_config(tiny_bark_dir, folder, min_new_tokens=TOKENS, max_new_tokens=TOKENS)


def serve(runner: Runner) -> threading.Thread:
    """The runner as `manage.py engine_runner` runs it, in this process: loaded, warmed up, listening on its socket."""
    runner.engine.load()
    runner.warm_up()
    runner.listen()
    thread = threading.Thread(target=runner.accept_forever, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("dtype", FORMATS)
def test_every_stage_through_the_runner_equals_barkmodel_generate_for_a_mixed_voice_batch(
    settings, long_checkpoint, tmp_path, dtype
):
    settings.BARK_MODEL, settings.BARK_DTYPE = str(long_checkpoint), dtype  # everything else: the defaults
    reset_engines()
    runner = Runner(str(tmp_path / "runner.sock"), parent_pid=None)  # its engine from the settings, as the command's
    serve(runner)
    try:
        client = RemoteBarkEngine(BarkEngine.from_settings(), runner.socket_path)
        options = SynthesisOptions(segment_voices=VOICES, text_temp=0.0, waveform_temp=0.0)
        audio = client.synthesize(TEXTS, options)
        runs = runner.engine.last_run
    finally:
        runner.close()
        reset_engines()

    model = convert(BarkModel.from_pretrained(long_checkpoint).eval(), dtype)
    processor = BarkProcessor.from_pretrained(long_checkpoint)
    assert [run.batch for run in runs] == [(0,), (1, 2, 3), (1, 2, 3), (1, 2, 3)]
    assert client.dtype == dtype
    for index, (text, voice) in enumerate(zip(TEXTS, VOICES, strict=True)):
        library, tokens = library_run(model, processor, text, voice), runs[index].tokens
        assert len(library.semantic) == TOKENS and library.fine.shape == (8, 150)
        assert np.array_equal(tokens.semantic, library.semantic), f"segment {index}: semantic tokens"
        assert np.array_equal(tokens.coarse, library.coarse), f"segment {index}: coarse codes"
        assert np.array_equal(tokens.fine, library.fine), f"segment {index}: fine codes"
        assert np.array_equal(audio[index], library.audio), f"segment {index}: audio"
