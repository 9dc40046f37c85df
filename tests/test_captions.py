"""SRT and WebVTT captions from segment spans (synthesis.media.captions)."""

import re

import pytest

from synthesis.media.captions import LINE_CHARS, build_cues, caption_parts, to_srt, to_vtt

LONG = (
    "This sentence is long enough that one caption cue could never hold it, so it is wrapped into lines "
    "and the lines are grouped into several cues that share the segment's time."
)


def parse_srt(text: str) -> list[tuple[float, float, list[str]]]:
    cues = []
    for number, block in enumerate(text.strip().split("\n\n"), start=1):
        index, timing, *lines = block.split("\n")
        assert int(index) == number
        start, end = (_seconds(stamp, ",") for stamp in timing.split(" --> "))
        cues.append((start, end, lines))
    return cues


def parse_vtt(text: str) -> list[tuple[float, float, list[str]]]:
    header, *blocks = text.strip().split("\n\n")
    assert header == "WEBVTT"
    cues = []
    for block in blocks:
        timing, *lines = block.split("\n")
        start, end = (_seconds(stamp, ".") for stamp in timing.split(" --> "))
        cues.append((start, end, lines))
    return cues


def _seconds(stamp: str, separator: str) -> float:
    match = re.fullmatch(rf"(\d\d):(\d\d):(\d\d){re.escape(separator)}(\d\d\d)", stamp)
    assert match, stamp
    hours, minutes, seconds, millis = map(int, match.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def test_short_segments_get_one_cue_each_timed_exactly_by_their_spans():
    spans = [(0.0, 1.234), (1.484, 2.9)]
    cues = build_cues(["Hello there.", "This is a test."], spans)

    for parse, text in ((parse_srt, to_srt(cues)), (parse_vtt, to_vtt(cues))):
        assert parse(text) == [(0.0, 1.234, ["Hello there."]), (1.484, 2.9, ["This is a test."])]


def test_a_long_segment_is_split_into_cues_of_at_most_two_short_lines_covering_its_span():
    cues = parse_srt(to_srt(build_cues([LONG], [(2.0, 12.0)])))

    assert len(cues) > 1
    assert all(1 <= len(lines) <= 2 and all(len(line) <= LINE_CHARS for line in lines) for _, _, lines in cues)
    assert " ".join(" ".join(lines) for _, _, lines in cues) == LONG
    assert cues[0][0] == 2.0 and cues[-1][1] == 12.0
    assert all(end == next_start for (_, end, _), (next_start, _, _) in zip(cues, cues[1:], strict=False))
    # Time is shared in proportion to characters.
    for start, end, lines in cues:
        share = sum(len(line) for line in lines) / sum(len(line) for _, _, ls in cues for line in ls)
        assert end - start == pytest.approx(10.0 * share, abs=0.01)


def test_vtt_escapes_markup_and_neither_format_lets_an_arrow_break_a_cue():
    cues = build_cues(["Fish & chips <b>now</b> --> later"], [(0.0, 1.0)])

    assert to_vtt(cues).splitlines()[-1] == "Fish &amp; chips &lt;b&gt;now&lt;/b&gt; -&gt; later"
    assert to_srt(cues).splitlines()[-1] == "Fish & chips <b>now</b> -> later"


def test_caption_text_that_splits_like_the_segments_replaces_them_one_for_one():
    # Each sentence is long enough that the segmenter keeps it apart (it merges only up to 200 characters).
    spoken = ["Hallo, wie geht es dir an diesem schönen Morgen, " * 3 + "mein Freund?", "Gut, danke, " * 9 + "gut."]
    shown = ["Hello, how are you on this fine morning, " * 3 + "my friend?", "Fine, thank you, " * 7 + "fine."]

    assert caption_parts(spoken, [(0, 9), (9.25, 10)], " ".join(shown)) == shown


def test_caption_text_that_splits_differently_is_spread_over_the_segments_by_duration():
    parts = caption_parts(["One.", "Two.", "Three."], [(0.0, 1.0), (1.25, 2.25), (2.5, 4.5)], "a b c d e f g h")

    assert " ".join(parts).split() == list("abcdefgh")
    assert [len(part.split()) for part in parts] == [2, 2, 4]


def test_without_caption_text_the_spoken_segments_are_shown():
    assert caption_parts(["One.", "Two."], [(0, 1), (1, 2)], "  ") == ["One.", "Two."]
