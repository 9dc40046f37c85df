"""Where Bark's semantic stage ends, on checkpoints built so that it really ends at a known step (tests/
bark_checkpoints.py): by EOS as the argmax, and by the min_eos_p rule alone; through the Bark runner, a segment alone
and in a batch of mixed voices, the audio as long as the tokens say and equal to `BarkModel.generate(...,
min_eos_p=0.2)`'s; the checkpoint's and the deployment's min_eos_p honoured; and the one exception: where the library
makes no token at all (EOS first) and its codec fails, barksite makes one."""

from pathlib import Path

import numpy as np
import pytest
from transformers import BarkModel, BarkProcessor

from synthesis.engines import SynthesisOptions, get_engine, reset_engines
from synthesis.engines.bark.engine import BarkEngine
from synthesis.engines.bark.reference import library_run
from synthesis.engines.bark.runner import RemoteBarkEngine
from tests.bark_checkpoints import Stop, eos_checkpoint, with_semantic_config
from tests.fixtures_bark import start_runner

ARGMAX = Stop("The first sentence of a dialogue ends by itself.", "v2/en_speaker_1", 20)
RULE = Stop("Ein zweiter Satz endet, wenn EOS wahrscheinlich genug ist.", "v2/de_speaker_2", 24, "min_eos_p")
FIRST = Stop("Short.", None, 1, also_at=(0,))  # EOS is the argmax at the very first step, and at the next
GREEDY = {"text_temp": 0.0, "waveform_temp": 0.0}


def samples(tokens: int) -> int:
    """Bark's audio for `tokens` semantic tokens: floor(T * 75 / 49.9) frames of 320 samples at 24 kHz."""
    return int(np.floor(tokens * 75 / 49.9)) * 320


@pytest.fixture(scope="module")
def eos_dir(tiny_bark_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return eos_checkpoint(tiny_bark_dir, tmp_path_factory.mktemp("eos-bark") / "checkpoint", [ARGMAX, RULE, FIRST])


@pytest.fixture(scope="module")
def library(eos_dir: Path):
    return BarkModel.from_pretrained(eos_dir).eval(), BarkProcessor.from_pretrained(eos_dir)


@pytest.fixture(scope="module")
def remote(eos_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    for _, socket_path in start_runner(eos_dir, tmp_path_factory.mktemp("eos-runner")):
        yield RemoteBarkEngine(BarkEngine(model=str(eos_dir), device="cpu", mode="auto"), socket_path)


def test_the_library_ends_these_texts_at_the_built_steps_and_only_the_rule_ends_the_second(library):
    model, processor = library

    assert len(library_run(model, processor, ARGMAX.text, ARGMAX.voice).semantic) == 20
    assert len(library_run(model, processor, RULE.text, RULE.voice).semantic) == 24
    without_rule = library_run(model, processor, RULE.text, RULE.voice, min_eos_p=None).semantic
    assert len(without_rule) > 24 + 4  # EOS is not the argmax at step 24 nor at the 4 steps after it
    with pytest.raises(RuntimeError, match="Kernel size can't be greater than actual input size"):
        library_run(model, processor, FIRST.text, FIRST.voice)  # no semantic token at all: the codec fails


def test_through_the_runner_each_text_ends_where_the_library_ends_alone_and_in_a_mixed_voice_batch(remote, library):
    model, processor = library
    stops = [ARGMAX, RULE, FIRST]
    options = SynthesisOptions(segment_voices=[stop.voice for stop in stops], **GREEDY)

    dialogue = remote.synthesize([stop.text for stop in stops], options)  # the first alone, then one batch
    alone = remote.synthesize([RULE.text], SynthesisOptions(voice=RULE.voice, **GREEDY))[0]

    assert [len(audio) for audio in dialogue] == [samples(20), samples(24), samples(1)]  # 9,600, 11,520, 320
    for audio, stop in zip(dialogue[:2], stops[:2], strict=True):
        assert np.array_equal(audio, library_run(model, processor, stop.text, stop.voice).audio)
    assert np.array_equal(alone, dialogue[1])


def test_a_checkpoints_own_min_eos_p_is_honoured(eos_dir, library, tmp_path):
    model, processor = library
    strict = BarkEngine(model=str(with_semantic_config(eos_dir, tmp_path / "strict", min_eos_p=0.99)), device="cpu",
                        mode="auto")  # fmt: skip

    audio = strict.synthesize([RULE.text], SynthesisOptions(voice=RULE.voice, **GREEDY))[0]

    expected = library_run(model, processor, RULE.text, RULE.voice, min_eos_p=0.99)
    assert len(strict.last_run[0].tokens.semantic) == len(expected.semantic) > 24
    assert np.array_equal(audio, expected.audio)


def test_bark_min_eos_p_0_ends_a_text_only_where_eos_is_the_argmax(settings, eos_dir, library):
    settings.BARK_MODEL, settings.BARK_DTYPE, settings.BARK_MIN_EOS_P = str(eos_dir), "float32", 0.0
    model, processor = library
    reset_engines()
    try:
        engine = get_engine("bark")
        audio = engine.synthesize([RULE.text], SynthesisOptions(voice=RULE.voice, **GREEDY))[0]
    finally:
        reset_engines()

    expected = library_run(model, processor, RULE.text, RULE.voice, min_eos_p=None)
    assert np.array_equal(audio, expected.audio) and len(audio) == samples(len(expected.semantic))
    assert engine.engine_settings == "BARK_MIN_EOS_P=0.0"
