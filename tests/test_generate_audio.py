"""The Python API: `from synthesis import generate_audio`."""

import numpy as np
import pytest

from synthesis import generate_audio


def test_generate_audio_returns_a_sample_rate_and_a_float_waveform():
    rate, waveform = generate_audio("Hello. Goodbye.", engine="piper", seed=1)

    assert rate == 22050 and waveform.dtype == np.float32 and len(waveform) > rate


def test_generate_audio_joins_long_text_with_pauses(tiny_bark):
    rate, waveform = generate_audio("One sentence here. " * 15, engine="bark", seed=1)

    assert rate == 24000 and waveform.ndim == 1 and len(waveform) > 0


def test_generate_audio_refuses_blank_text():
    with pytest.raises(ValueError, match="blank"):
        generate_audio("  ")
