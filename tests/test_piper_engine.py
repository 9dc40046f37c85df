import numpy as np
import pytest

from synthesis.engines import EngineFailed, SynthesisCancelled, SynthesisOptions
from synthesis.engines.piper.engine import VOICE_ID, PiperEngine


@pytest.fixture(scope="module")
def piper() -> PiperEngine:
    engine = PiperEngine()
    engine.load()
    return engine


def test_piper_is_healthy_with_the_packaged_voice():
    health = PiperEngine().health()

    assert health.ok and health.reason == "ready" and health.model == "en_US-joe-medium"


def test_piper_synthesizes_speech_that_is_not_silence(piper):
    (waveform,) = piper.synthesize(["Hello there, this is a test."], SynthesisOptions())

    assert piper.sample_rate == 22050
    assert waveform.dtype == np.float32
    assert 1.0 < len(waveform) / piper.sample_rate < 5.0
    rms = float(np.sqrt(np.mean(waveform**2)))
    assert rms > 0.02, "speech, not silence"


def test_piper_with_a_seed_gives_identical_audio_twice(piper):
    options = SynthesisOptions(voice=VOICE_ID, seed=7)

    first = piper.synthesize(["Same words."], options)[0]
    second = piper.synthesize(["Same words."], options)[0]

    assert np.array_equal(first, second)


def test_piper_reports_each_segment_and_stops_when_asked(piper):
    seen = []

    def stop_after_first(index, waveform):
        seen.append((index, len(waveform)))
        return False

    with pytest.raises(SynthesisCancelled):
        piper.synthesize(["One.", "Two.", "Three."], SynthesisOptions(), stop_after_first)
    assert [index for index, _ in seen] == [0]


def test_piper_refuses_a_voice_it_does_not_have(piper):
    with pytest.raises(EngineFailed, match="Piper has one voice"):
        piper.synthesize(["Hi."], SynthesisOptions(voice="v2/en_speaker_6"))
