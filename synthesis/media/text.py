"""Split text into segments that each fit one Bark generation (about 13 s of speech).

Each line is its own run of segments (a line break always starts a new segment, which is how dialogue
gives each speaker their own). Within a line: sentences first, then clauses for a long sentence, then
words for a clause with no punctuation at all. Short neighbouring sentences of a line are merged up to the
bound, since every Bark generation has a fixed cost. Bark cues such as `[laughs]` are never split.
"""

import re

# About 13 s of speech at Bark's pace; one generation is capped near 15 s (docs/bark-tokens.md).
MAX_SEGMENT_CHARS = 200

# A sentence ends at . ! ? … (or their CJK/Devanagari forms) followed by space or end of text, but not
# inside a bracketed cue. CJK full stops need no following space.
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|(?<=[。！？।])\s*")
_CLAUSE_END = re.compile(r"(?<=[,;:—–、，；：])\s*")
_CUE = re.compile(r"\[[^\[\]]{1,40}\]")


def split_text(text: str, max_chars: int = MAX_SEGMENT_CHARS) -> list[str]:
    segments: list[str] = []
    for line in text.splitlines():
        line = re.sub(r"\s+", " ", line).strip()
        if line:
            pieces = [
                piece for sentence in _split_protecting_cues(line, _SENTENCE_END) for piece in _fit(sentence, max_chars)
            ]
            segments.extend(_merge(pieces, max_chars))
    return segments


def _split_protecting_cues(text: str, pattern: re.Pattern) -> list[str]:
    """Split at `pattern`, except inside a [cue]."""
    cues = [(m.start(), m.end()) for m in _CUE.finditer(text)]
    parts, start = [], 0
    for match in pattern.finditer(text):
        if any(a < match.start() < b for a, b in cues):
            continue
        part = text[start : match.start()].strip()
        if part:
            parts.append(part)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        parts.append(tail)
    return parts


def _fit(sentence: str, max_chars: int) -> list[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    out: list[str] = []
    for clause in _merge(_split_protecting_cues(sentence, _CLAUSE_END), max_chars):
        out.extend([clause] if len(clause) <= max_chars else _split_words(clause, max_chars))
    return out


def _split_words(clause: str, max_chars: int) -> list[str]:
    """Last resort: break at spaces; text with no spaces at all (e.g. unpunctuated CJK) at max_chars."""
    tokens = _CUE.split(clause)
    cues = _CUE.findall(clause)
    words: list[str] = []
    for index, token in enumerate(tokens):
        words.extend(token.split(" "))
        if index < len(cues):
            words.append(cues[index])
    chunks: list[str] = []
    for word in filter(None, words):
        while len(word) > max_chars:
            chunks.append(word[:max_chars])
            word = word[max_chars:]
        chunks.append(word)
    return _merge(chunks, max_chars)


def _merge(pieces: list[str], max_chars: int) -> list[str]:
    merged: list[str] = []
    for piece in pieces:
        if merged and len(merged[-1]) + 1 + len(piece) <= max_chars:
            merged[-1] = f"{merged[-1]} {piece}"
        else:
            merged.append(piece)
    return merged
