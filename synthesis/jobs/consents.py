"""Voice consents (recordings in which a person agrees to a voice being made of theirs) and the voices made with one:
what OpenAI's `/v1/audio/voice_consents` and `/v1/audio/voices` do, on barksite's own voices and cloning.

A consent belongs to the key or user that uploaded it, like an uploaded voice, and only they see it. A voice is made
with `voices.create_voice_from_clip`, the function `/api/voices` uses, so it is checked, stored and encoded by a worker
exactly like a clip uploaded there. Both are named to callers the way OpenAI names them, `cons_<hex>` and
`voice_<hex>` (the hex digits of the row's UUID); a `voice_<hex>` is the uploaded voice `custom/<uuid>`.
"""

from __future__ import annotations

import re
import uuid

import numpy as np
from django.db import transaction
from django.db.models import Q, QuerySet

from synthesis.engines import CUSTOM_PREFIX, InvalidVoiceUpload
from synthesis.jobs.artifacts import store_file
from synthesis.jobs.selectors import Caller, NotVisible, Owner, uploaded_by, usable_voices
from synthesis.jobs.submit import InvalidRequest
from synthesis.jobs.voices import create_voice_from_clip
from synthesis.media import uploads
from synthesis.models import ApiKey, Voice, VoiceConsent

CONSENT_PREFIX = "cons_"
VOICE_PREFIX = "voice_"
# BCP 47's shape: a language subtag of letters, then subtags of letters and digits ("en", "en-US", "zh-Hant-TW").
LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*")
MAX_LANGUAGE_CHARS = 35
# A recording is checked by decoding its first minute: it must hold at least a second of sound.
RECORDING_RATE = 16_000
RECORDING_CHECK_S = 60.0
MIN_RECORDING_S = 1.0
MIN_RECORDING_PEAK = 1e-3  # below this (-60 dBFS) a recording is silence


class ConsentInUse(Exception):
    """A consent that voices still name cannot be deleted; the message names them."""


# --- ids -----------------------------------------------------------------------------------------------------


def consent_id(consent: VoiceConsent) -> str:
    return f"{CONSENT_PREFIX}{consent.id.hex}"


def openai_voice_id(voice: Voice) -> str:
    return f"{VOICE_PREFIX}{voice.id.hex}"


def _parse(prefix: str, text: str) -> uuid.UUID | None:
    if not text.startswith(prefix):
        return None
    try:
        return uuid.UUID(hex=text.removeprefix(prefix))
    except ValueError:
        return None


def custom_voice_id(text: str) -> str | None:
    """`custom/<uuid>` for a `voice_<hex>` id, None for anything else."""
    pk = _parse(VOICE_PREFIX, text)
    return None if pk is None else f"{CUSTOM_PREFIX}{pk}"


# --- consents ------------------------------------------------------------------------------------------------


def usable_consents(caller: Caller) -> QuerySet[VoiceConsent]:
    """The consents a caller may see and use: those it uploaded, as with voices."""
    return uploaded_by(caller, VoiceConsent.objects.all())


def get_consent(caller: Caller, text_id: str) -> VoiceConsent:
    """A consent by its `cons_<hex>` id, or NotVisible whether it does not exist or is someone else's."""
    pk = _parse(CONSENT_PREFIX, text_id)
    consent = None if pk is None else usable_consents(caller).filter(pk=pk).first()
    if consent is None:
        raise NotVisible(f"There is no voice consent {text_id!r} of yours.")
    return consent


def consent_page(caller: Caller, *, after: str | None = None, limit: int) -> tuple[list[VoiceConsent], bool]:
    """Up to `limit` of the caller's consents, newest first, after the one named `after`; and whether more follow."""
    consents = usable_consents(caller)
    if after:
        try:
            cursor = get_consent(caller, after)
        except NotVisible as exc:
            raise InvalidRequest("after", f"{exc} 'after' takes the last id of the page before.") from None
        consents = consents.filter(
            Q(created_at__lt=cursor.created_at) | Q(created_at=cursor.created_at, id__lt=cursor.id)
        )
    page = list(consents[: limit + 1])
    return page[:limit], len(page) > limit


def create_consent(
    name: str, language: str, recording: bytes, *, owner: Owner = None, api_key: ApiKey | None = None
) -> VoiceConsent:
    """Check and store a consent recording (any of `uploads.CONTAINERS`, at least a second of sound)."""
    if len(language) > MAX_LANGUAGE_CHARS or not LANGUAGE_TAG.fullmatch(language):
        raise InvalidRequest("language", f"{language!r} is not a BCP 47 language tag; use one such as 'en-US'.")
    try:
        waveform = uploads.decode(recording, sample_rate=RECORDING_RATE, max_seconds=RECORDING_CHECK_S)
    except uploads.UnreadableAudio as exc:
        raise InvalidRequest("recording", str(exc)) from None
    seconds = len(waveform) / RECORDING_RATE
    if seconds < MIN_RECORDING_S:
        raise InvalidRequest("recording", f"The recording lasts {seconds:.2f} s; a consent lasts at least 1 s.")
    if np.abs(waveform).max() < MIN_RECORDING_PEAK:
        raise InvalidRequest("recording", "The recording is silent.")
    caller = Caller.of(owner, api_key)
    consent = VoiceConsent(name=name, language=language, owner=caller.user, api_key=caller.api_key)
    name_in_storage = f"consents/{consent.id}/recording.{uploads.container_of(recording)}"
    consent.recording.name = store_file(name_in_storage, lambda path: path.write_bytes(recording))[0]
    consent.save()
    return consent


def rename_consent(consent: VoiceConsent, name: str) -> VoiceConsent:
    """OpenAI's update: the label only (the recording stays as it was)."""
    VoiceConsent.objects.filter(pk=consent.pk).update(name=name)
    consent.name = name
    return consent


def delete_consent(consent: VoiceConsent) -> None:
    """Delete a consent and its recording, unless voices still name it (ConsentInUse: delete them first)."""
    voices = [openai_voice_id(voice) for voice in consent.voices.order_by("created_at")]
    if voices:
        raise ConsentInUse(
            f"The voice consent {consent_id(consent)} was given for {len(voices)} voice(s) that still exist "
            f"({', '.join(voices[:5])}); delete them first (DELETE /v1/audio/voices/{{voice_id}})."
        )
    if consent.recording:
        consent.recording.delete(save=False)
    consent.delete()


# --- voices made with a consent ------------------------------------------------------------------------------


def get_openai_voice(caller: Caller, text_id: str) -> Voice:
    """One of the caller's uploaded voices by its `voice_<hex>` id, or NotVisible."""
    voice_id = custom_voice_id(text_id)
    voice = None if voice_id is None else usable_voices(caller).filter(pk=voice_id.removeprefix(CUSTOM_PREFIX)).first()
    if voice is None:
        raise NotVisible(f"There is no voice {text_id!r} of yours.")
    return voice


def create_voice_with_consent(
    name: str,
    sample: bytes,
    transcript: str,
    consent_text_id: str,
    *,
    owner: Owner = None,
    api_key: ApiKey | None = None,
) -> Voice:
    """A voice cloned from `sample` (pending until a worker encodes it, as on /api/voices), made with one of the
    caller's consents. Whether `transcript` may be blank is the cloning engine's to say (its cloning method)."""
    try:
        consent = get_consent(Caller.of(owner, api_key), consent_text_id)
    except NotVisible as exc:
        raise InvalidRequest("consent", f"{exc} Upload the recording first: POST /v1/audio/voice_consents.") from None
    try:
        with transaction.atomic():  # the encoding task is sent once both writes are committed
            voice = create_voice_from_clip(name, sample, transcript, owner=owner, api_key=api_key)
            Voice.objects.filter(pk=voice.pk).update(consent=consent)
    except InvalidVoiceUpload as exc:
        if exc.field != "transcript":
            raise InvalidRequest("audio_sample", str(exc)) from None
        hint = (
            " Send the words spoken in the audio_sample in the form field 'transcript' (barksite's addition to "
            "OpenAI's fields)."
        )
        raise InvalidRequest("transcript", f"{exc}{hint if not transcript.strip() else ''}") from None
    voice.consent = consent
    return voice
