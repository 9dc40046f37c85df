"""synthesis.media.ffmpeg: the one way ffmpeg runs, with one error type and ffmpeg's words, bounded."""

import pytest

from synthesis.media import ffmpeg


def test_a_failing_ffmpeg_raises_with_what_was_asked_and_its_first_words_bounded():
    with pytest.raises(ffmpeg.FfmpegFailed) as caught:
        ffmpeg.run(["-loglevel", "error", "-i", "/nonexistent/" + "x" * 2000 + ".wav", "-f", "null", "-"],
                   what="read the file", timeout_s=30)  # fmt: skip

    message = str(caught.value)
    assert message.startswith("ffmpeg could not read the file: Error opening input: No such file or directory; ")
    assert len(message) <= len("ffmpeg could not read the file: ") + ffmpeg.MAX_DETAIL_CHARS


def test_an_ffmpeg_past_its_time_limit_is_killed_and_says_so():
    # Reads a silent source forever (no -t): only the time limit ends it.
    args = ["-f", "lavfi", "-i", "anullsrc", "-f", "null", "-"]

    with pytest.raises(ffmpeg.FfmpegTimedOut, match=r"^ffmpeg took more than 0.5 s to play silence\.$"):
        ffmpeg.run(args, what="play silence", timeout_s=0.5)


def test_its_output_comes_back():
    result = ffmpeg.run(
        ["-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "0.1", "-f", "s16le", "pipe:1"],
        what="make silence",
        timeout_s=30,
    )

    assert result.stdout == bytes(1600)
