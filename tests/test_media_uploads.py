"""synthesis.media.uploads: each container OpenAI's voice endpoints take decodes and is told apart by its first
bytes; anything else, and files cut short, are refused with the reason."""

import numpy as np
import pytest

from synthesis.media import uploads
from tests.media_decode import tone


@pytest.mark.parametrize("container", uploads.CONTAINERS)
def test_every_accepted_container_decodes_to_its_length_and_is_recognised(container):
    data = tone(container, seconds=2.0)

    waveform = uploads.decode(data, sample_rate=16_000, max_seconds=10)

    assert uploads.container_of(data) == container
    assert len(waveform) / 16_000 == pytest.approx(2.0, abs=0.1)  # codecs pad a little
    assert waveform.dtype == np.float32 and 0.4 < np.abs(waveform).max() <= 1.0


def test_decoding_stops_at_the_length_asked_for():
    waveform = uploads.decode(tone("ogg", seconds=5.0), sample_rate=16_000, max_seconds=1.5)

    assert len(waveform) == 24_000


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: tone("aiff"), "could not be read as audio; upload an MP3, WAV, Ogg, AAC"),
        (lambda: b"#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n", "could not be read as audio"),
        (lambda: b"just words\n" * 200, "could not be read as audio"),
        (lambda: b"", "The audio file is empty."),
        (lambda: bytes(uploads.MAX_UPLOAD_BYTES + 1), r"an upload is at most 10485760 \(10 MiB\)"),
        (lambda: tone("wav", seconds=2.0)[:30_000], "truncated: it is shorter than its header says"),
        (lambda: tone("flac", seconds=2.0)[:9_000], "truncated: it declares 2.00 s"),
    ],
    ids=["aiff", "playlist", "text", "empty", "oversized", "cut wav", "cut flac"],
)
def test_what_is_not_whole_audio_in_an_accepted_container_is_refused_with_the_reason(make, reason):
    with pytest.raises(uploads.UnreadableAudio, match=reason):
        uploads.decode(make(), sample_rate=16_000, max_seconds=10)
