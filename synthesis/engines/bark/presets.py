"""Bark's built-in voices: the v2 speaker presets, ten speakers in each of 13 languages, named `v2/<lang>_speaker_<n>`
(the names real checkpoints and `checkpoint.py`'s test checkpoints ship), and what generic voice names map to."""

from __future__ import annotations

LANGUAGES = {
    "en": "English",
    "de": "German",
    "es": "Spanish",
    "fr": "French",
    "hi": "Hindi",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "pl": "Polish",
    "pt": "Portuguese",
    "ru": "Russian",
    "tr": "Turkish",
    "zh": "Chinese",
}
SPEAKERS = 10
PRESETS = [f"v2/{lang}_speaker_{speaker}" for lang in LANGUAGES for speaker in range(SPEAKERS)]
DEFAULT_VOICE = "v2/en_speaker_6"

# OpenAI's voice names as Bark speakers (v2/en_speaker_9 is the English set's one female voice).
OPENAI_VOICES = {
    "alloy": "v2/en_speaker_6",
    "ash": "v2/en_speaker_4",
    "ballad": "v2/en_speaker_5",
    "cedar": "v2/en_speaker_0",
    "coral": "v2/en_speaker_9",
    "echo": "v2/en_speaker_1",
    "fable": "v2/en_speaker_3",
    "marin": "v2/en_speaker_9",
    "nova": "v2/en_speaker_9",
    "onyx": "v2/en_speaker_2",
    "sage": "v2/en_speaker_7",
    "shimmer": "v2/en_speaker_9",
    "verse": "v2/en_speaker_8",
}


# Non-speech cues Bark's text model was trained on; a cue event puts one at the start of a segment.
CUES = ("[laughter]", "[laughs]", "[sighs]", "[music]", "[gasps]", "[clears throat]", "[MAN]", "[WOMAN]", "♪")

# The words in free-text instructions (OpenAI's speech `instructions`) that ask for a cue, and the cue each puts at
# the start of the text: Bark's non-speech sounds, singing (Bark sings text that starts with ♪), and its two speaker
# hints, [MAN] and [WOMAN], which lean the speaker that way. A cue written as such ("[laughs]") holds its word too.
INSTRUCTION_CUES = {
    r"laugh|laughs|laughing": "[laughs]",
    r"laughter": "[laughter]",
    r"sigh|sighs|sighing": "[sighs]",
    r"gasp|gasps|gasping": "[gasps]",
    r"(?:clear|clears|clearing) (?:\w+ )?throat": "[clears throat]",
    r"music|musical": "[music]",
    r"sing|sings|singing|sung|song|♪": "♪",
    r"man|male|masculine": "[MAN]",
    r"woman|female|feminine": "[WOMAN]",
}


def language_of(preset: str) -> str:
    """The language name of a preset id (`v2/de_speaker_3` -> German)."""
    return LANGUAGES[preset[3:5]]
