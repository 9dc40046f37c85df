"""The voice catalogue: Bark's v2 speaker presets by language, Piper's voice, and uploaded voices."""

from synthesis.engines.piper import VOICE_ID as PIPER_VOICE

BARK_LANGUAGES = {
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
BARK_DEFAULT_VOICE = "v2/en_speaker_6"
BARK_PRESETS = [f"v2/{lang}_speaker_{i}" for lang in BARK_LANGUAGES for i in range(10)]
CUSTOM_PREFIX = "custom/"


def engine_for_voice(voice: str) -> str | None:
    """The engine a voice id belongs to (uploaded voices are Bark prompts)."""
    if voice in BARK_PRESETS or voice.startswith(CUSTOM_PREFIX):
        return "bark"
    if voice == PIPER_VOICE:
        return "piper"
    return None


def default_voice(engine: str) -> str:
    return BARK_DEFAULT_VOICE if engine == "bark" else PIPER_VOICE


def catalogue() -> list[dict]:
    """Every built-in voice, grouped by language for pickers."""
    voices = [
        {"id": preset, "engine": "bark", "language": BARK_LANGUAGES[preset[3:5]], "name": f"Speaker {preset[-1]}"}
        for preset in BARK_PRESETS
    ]
    voices.append({"id": PIPER_VOICE, "engine": "piper", "language": "English", "name": "Joe (Piper, US)"})
    return voices
