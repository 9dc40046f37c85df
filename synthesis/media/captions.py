"""Caption cues from the real segment spans in the audio, written as SRT and WebVTT.

A segment's text is wrapped into lines of about 42 characters (the usual subtitle guideline) and grouped
into cues of at most two lines; a segment that needs several cues shares its span between them in
proportion to their characters, which tracks speech closely enough for reading along.
"""

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from synthesis.media.text import split_text

LINE_CHARS = 42
MAX_LINES = 2


@dataclass(frozen=True)
class Cue:
    start_ms: int
    end_ms: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def caption_parts(spoken: Sequence[str], spans: Sequence[tuple[float, float]], caption_text: str = "") -> list[str]:
    """The text to show for each segment: the spoken text, or `caption_text` spread over the segments.

    When `caption_text` splits into as many segments as were spoken (a cleaned-up or translated copy of
    the prompt usually does), part i goes with segment i; otherwise its words are spread over the
    segments in proportion to their durations.
    """
    if not caption_text.strip() or not spoken:
        return list(spoken)
    parts = split_text(caption_text)
    if len(parts) == len(spoken):
        return parts
    words = caption_text.split()
    weights = [max(end - start, 0.0) for start, end in spans]
    if not sum(weights):
        weights = [1.0] * len(spoken)
    total = sum(weights)
    # Word i goes to the segment whose share of the timeline holds the middle of word i's share of the text.
    text_chars = sum(len(w) + 1 for w in words)
    result: list[list[str]] = [[] for _ in spoken]
    position, segment, boundary = 0, 0, weights[0] / total
    for word in words:
        middle = (position + (len(word) + 1) / 2) / text_chars
        while middle > boundary and segment < len(spoken) - 1:
            segment += 1
            boundary += weights[segment] / total
        result[segment].append(word)
        position += len(word) + 1
    return [" ".join(part) for part in result]


def build_cues(texts: Sequence[str], spans: Sequence[tuple[float, float]]) -> list[Cue]:
    """Cues for each segment's text within its (start_s, end_s) span; empty texts get no cue."""
    cues: list[Cue] = []
    for text, (start, end) in zip(texts, spans, strict=True):
        lines = textwrap.wrap(_clean(text), LINE_CHARS, break_on_hyphens=False)
        if not lines:
            continue
        groups = [tuple(lines[i : i + MAX_LINES]) for i in range(0, len(lines), MAX_LINES)]
        weights = [sum(len(line) for line in group) for group in groups]
        total, done = sum(weights), 0
        for group, weight in zip(groups, weights, strict=True):
            # Boundaries come from the same rounding, so one cue ends exactly where the next begins.
            cue_start = round((start + (end - start) * done / total) * 1000)
            done += weight
            cue_end = round((start + (end - start) * done / total) * 1000)
            cues.append(Cue(cue_start, max(cue_end, cue_start + 1), group))
    return cues


def to_srt(cues: Sequence[Cue]) -> str:
    blocks = [
        f"{index}\n{_timestamp(cue.start_ms, ',')} --> {_timestamp(cue.end_ms, ',')}\n{cue.text}\n"
        for index, cue in enumerate(cues, start=1)
    ]
    return "\n".join(blocks)


def to_vtt(cues: Sequence[Cue]) -> str:
    blocks = [
        f"{_timestamp(cue.start_ms, '.')} --> {_timestamp(cue.end_ms, '.')}\n{_vtt_escape(cue.text)}\n" for cue in cues
    ]
    return "\n".join(["WEBVTT\n", *blocks])


def _clean(text: str) -> str:
    # "-->" would end a cue's timing line early in SRT and VTT parsers; whitespace runs become one space.
    return " ".join(text.replace("-->", "->").split())


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _timestamp(ms: int, separator: str) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{millis:03d}"
