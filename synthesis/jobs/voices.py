"""The voice catalogue (every engine's built-in voices) and uploaded voices (`custom/<uuid>`), which the
cloning engine (`synthesis.engines.cloning_engine`) checks, stores the format of, and builds from clips."""

import logging
from typing import Any

import numpy as np
from django.db import transaction
from django_q.tasks import async_task

from synthesis import engines
from synthesis.engines import EngineFailed, EngineLost, EngineUnavailable, InvalidVoiceUpload
from synthesis.jobs.artifacts import store_file
from synthesis.jobs.selectors import Caller, Owner
from synthesis.models import ApiKey, Voice

logger = logging.getLogger(__name__)


def catalogue() -> list[dict[str, str]]:
    """Every built-in voice ({id, engine, language, name}), grouped by language for pickers."""
    return [voice.as_dict() for voice in engines.catalogue()]


# --- uploaded voices -------------------------------------------------------------------------------------
# A `.npz` preset is validated and stored at once. A reference clip is checked here (it decodes, it lasts
# 2-30 s, it is not silence; it has a transcript where the cloning method needs one) so a bad upload gets its
# 400 immediately, and is then encoded by a worker, since that needs Bark's codec and HuBERT or Bark's text
# model, which the web processes do not load.


def create_voice_from_npz(name: str, data: bytes, *, owner: Owner = None, api_key: ApiKey | None = None) -> Voice:
    engine = engines.cloning_engine()
    prompt = engine.read_voice_file(data)  # InvalidVoiceUpload says what is wrong with the file
    voice = Voice(name=name, source=Voice.Source.NPZ, status=Voice.Status.READY, **_belongs_to(owner, api_key))
    voice.prompt_file.name = _store_bytes(f"voices/{voice.id}/prompt.npz", engine.write_voice_file(prompt))
    voice.save()
    return voice


def create_voice_from_clip(
    name: str, data: bytes, transcript: str | None = None, *, owner: Owner = None, api_key: ApiKey | None = None
) -> Voice:
    """A pending clip voice, its build task sent on commit. `transcript` may be None or blank where the cloning
    method here does not need one (`cloning_engine().cloning_method()`); InvalidVoiceUpload says what is wrong."""
    extension = engines.cloning_engine().check_clip(data, transcript)
    voice = Voice(
        name=name,
        source=Voice.Source.CLIP,
        status=Voice.Status.PENDING,
        transcript=(transcript or "").strip(),
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
    method = ""
    try:
        with voice.clip.open("rb") as handle:
            data = handle.read()
        engine = engines.cloning_engine()
        method = engine.cloning_method().name  # decided now: the models may have come or gone since the upload
        prompt = engine.clone_voice(data, voice.transcript or None, method)
    except (InvalidVoiceUpload, EngineUnavailable, EngineFailed, EngineLost) as exc:
        pending.update(status=Voice.Status.FAILED, error=str(exc), method=method)
        return
    except Exception as exc:
        logger.exception("voice %s: encoding the clip crashed", voice_id)
        error = f"Encoding the clip failed ({type(exc).__name__}: {exc})."
        pending.update(status=Voice.Status.FAILED, error=error, method=method)
        return
    name = _store_bytes(f"voices/{voice.id}/prompt.npz", engine.write_voice_file(prompt))
    if pending.update(status=Voice.Status.READY, prompt_file=name, error="", method=method):
        voice.clip.delete(save=False)  # the prompt is what we keep
        Voice.objects.filter(pk=voice.pk).update(clip="")


def prompt_arrays(voice: Voice) -> dict[str, np.ndarray]:
    """The prompt arrays the cloning engine takes as `voice` (checked again, like an upload)."""
    with voice.prompt_file.open("rb") as handle:
        return engines.cloning_engine().read_voice_file(handle.read())


def delete_voice(voice: Voice) -> None:
    for file in (voice.prompt_file, voice.clip):
        if file:
            file.delete(save=False)
    voice.delete()


def _belongs_to(owner: Owner, api_key: ApiKey | None) -> dict[str, Any]:
    return {"owner": Caller.of(owner).user, "api_key": api_key}


def _store_bytes(name: str, data: bytes) -> str:
    return store_file(name, lambda path: path.write_bytes(data))[0]
