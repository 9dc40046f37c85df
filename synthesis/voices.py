"""The voice catalogue: Bark's v2 speaker presets by language, Piper's voice, and uploaded voices."""

import logging

from django.db import transaction
from django_q.tasks import async_task

from synthesis.artifacts import store_file
from synthesis.engines import EngineFailed, EngineLost, EngineUnavailable, get_engine
from synthesis.engines.bark.prompts import (
    VoicePromptError,
    check_clip,
    check_transcript,
    prompt_from_clip,
    prompt_from_npz,
    save_prompt,
)
from synthesis.engines.piper.engine import VOICE_ID as PIPER_VOICE
from synthesis.models import Voice

logger = logging.getLogger(__name__)

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


# --- uploaded voices -------------------------------------------------------------------------------------
# A `.npz` preset is validated and stored at once. A reference clip is checked here (it decodes, it lasts
# 2-30 s, it is not silence) so a bad file gets its 400 immediately, and is then encoded by a worker,
# since that needs Bark's codec and text model, which the web processes do not load.


def create_voice_from_npz(name: str, data: bytes, *, owner=None, api_key=None) -> Voice:
    prompt = prompt_from_npz(data)  # VoicePromptError says what is wrong with the file
    voice = Voice(name=name, source=Voice.Source.NPZ, status=Voice.Status.READY, **_belongs_to(owner, api_key))
    voice.prompt_file.name = _store_bytes(f"voices/{voice.id}/prompt.npz", save_prompt(prompt))
    voice.save()
    return voice


def create_voice_from_clip(name: str, data: bytes, transcript: str, *, owner=None, api_key=None) -> Voice:
    check_transcript(transcript)
    extension = check_clip(data)
    voice = Voice(
        name=name,
        source=Voice.Source.CLIP,
        status=Voice.Status.PENDING,
        transcript=transcript.strip(),
        **_belongs_to(owner, api_key),
    )
    voice.clip.name = _store_bytes(f"voices/{voice.id}/clip.{extension}", data)
    with transaction.atomic():
        voice.save()
        voice_id = str(voice.id)
        transaction.on_commit(lambda: _send_build_task(voice_id))
    return voice


def _send_build_task(voice_id: str) -> None:
    async_task("synthesis.tasks.build_voice_task", voice_id, task_name=f"voice-{voice_id}")


def build_clip_voice(voice_id: str) -> None:
    """Encode a pending clip voice into a Bark prompt (in a worker). Any failure marks the voice failed
    with a reason; a hostile file never takes the worker down."""
    voice = Voice.objects.filter(pk=voice_id, status=Voice.Status.PENDING).first()
    if voice is None:
        return  # built already (a task delivered twice), failed, or deleted
    pending = Voice.objects.filter(pk=voice.pk, status=Voice.Status.PENDING)
    try:
        with voice.clip.open("rb") as handle:
            data = handle.read()
        engine = get_engine("bark")
        prompt = prompt_from_clip(data, voice.transcript, engine)
    except (VoicePromptError, EngineUnavailable, EngineFailed, EngineLost) as exc:
        pending.update(status=Voice.Status.FAILED, error=str(exc))
        return
    except Exception as exc:
        logger.exception("voice %s: encoding the clip crashed", voice_id)
        pending.update(status=Voice.Status.FAILED, error=f"Encoding the clip failed ({type(exc).__name__}: {exc}).")
        return
    name = _store_bytes(f"voices/{voice.id}/prompt.npz", save_prompt(prompt))
    if pending.update(status=Voice.Status.READY, prompt_file=name, error=""):
        voice.clip.delete(save=False)  # the prompt is what we keep
        Voice.objects.filter(pk=voice.pk).update(clip="")


def owned_voices(owner, api_key):
    """The voices a caller made: a key's, a signed-in user's, or (open API, shared key) nobody's."""
    if api_key is not None:
        return Voice.objects.filter(api_key=api_key)
    if getattr(owner, "is_authenticated", False):
        return Voice.objects.filter(owner=owner)
    return Voice.objects.filter(owner__isnull=True, api_key__isnull=True)


def delete_voice(voice: Voice) -> None:
    for file in (voice.prompt_file, voice.clip):
        if file:
            file.delete(save=False)
    voice.delete()


def _belongs_to(owner, api_key) -> dict:
    return {"owner": owner if getattr(owner, "is_authenticated", False) else None, "api_key": api_key}


def _store_bytes(name: str, data: bytes) -> str:
    return store_file(name, lambda path: path.write_bytes(data))[0]
