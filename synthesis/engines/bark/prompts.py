"""Bark speaker prompts from uploads: a ready `.npz` preset, or a reference clip (cloning.py picks the method).

A prompt is three integer arrays: `semantic_prompt` (T,) with tokens 0..9999 at 49.9 Hz, `coarse_prompt` (2, F) and
`fine_prompt` (8, F) with EnCodec codes 0..1023 at 75 Hz over the same span (F ~ T * 75 / 49.9); docs/bark-tokens.md
says where these numbers come from. Everything here is a pure function over bytes (cloning takes the engine's two
model calls as arguments; this module never imports the engine): uploads are hostile until checked, so nothing is
unpickled, archives are measured before they are read, and audio is decoded by ffmpeg in a subprocess with a time
limit (`synthesis.media.uploads`). A user's mistake raises VoicePromptError with a reason meant for that user.
"""

from __future__ import annotations

import io
import math
import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from synthesis.engines import InvalidVoiceUpload
from synthesis.media import uploads

PROMPT_KEYS = ("semantic_prompt", "coarse_prompt", "fine_prompt")
SEMANTIC_VOCAB = 10_000
CODEBOOK_SIZE = 1_024
CODEBOOK_ROWS = {"coarse_prompt": 2, "fine_prompt": 8}
SEMANTIC_RATE_HZ = 49.9
FRAME_RATE_HZ = 75
# A prompt shorter than this says too little about a voice to be worth keeping.
MIN_PROMPT_SEMANTIC_TOKENS = 8
MAX_SEMANTIC_TOKENS = 1_024
# Prompts made elsewhere may round differently; a few frames or a few percent off is still the same span.
FRAME_TOLERANCE = 3
FRAME_TOLERANCE_RATIO = 0.05
MAX_NPZ_BYTES = 2 * 1024 * 1024
# A legitimate prompt is at most about 130 kB as int64; the bound stops zip bombs before anything is inflated.
MAX_NPZ_UNCOMPRESSED_BYTES = 1024 * 1024

CLIP_SAMPLE_RATE = 24_000  # Bark's EnCodec rate
MAX_CLIP_BYTES = uploads.MAX_UPLOAD_BYTES
MIN_CLIP_SECONDS = 2.0
MAX_CLIP_SECONDS = 30.0
MIN_CLIP_PEAK = 1e-3  # below this (-60 dBFS) a clip is silence
# A clip longer than this is cut to its last part: the semantic model writes at most 1024 - 257 positions.
MAX_CLIP_SEMANTIC_TOKENS = 767
MAX_TRANSCRIPT_CHARS = 1_000


class VoicePromptError(InvalidVoiceUpload):
    """The upload cannot become a voice; the message says why, for the person who uploaded it."""


class TranscriptError(VoicePromptError):
    """The clip's transcript is missing where it is needed, or unusable."""

    field = "transcript"


# --- validation --------------------------------------------------------------------------------------------


def _frames_for(tokens: int) -> float:
    return tokens * FRAME_RATE_HZ / SEMANTIC_RATE_HZ


def _check_keys(keys: set[str]) -> None:
    missing, extra = sorted(set(PROMPT_KEYS) - keys), sorted(keys - set(PROMPT_KEYS))
    problems = ([f"missing {', '.join(missing)}"] if missing else []) + (
        [f"unexpected {', '.join(extra)}"] if extra else []
    )
    if problems:
        raise VoicePromptError(
            f"A voice prompt holds exactly {', '.join(PROMPT_KEYS)}; this one has {'; '.join(problems)}."
        )


def validate_prompt(arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The prompt's arrays as int64 after checking keys, dtypes, shapes, lengths and token ranges."""
    _check_keys(set(arrays))
    prompt: dict[str, np.ndarray] = {}
    for key in PROMPT_KEYS:
        array = arrays[key]
        if not isinstance(array, np.ndarray):
            raise VoicePromptError(f"{key} must be an array, not {type(array).__name__}.")
        if array.dtype.kind not in "iu":
            raise VoicePromptError(f"{key} must hold integer token ids, not {array.dtype} values.")
        rows = CODEBOOK_ROWS.get(key)
        if rows is None and array.ndim != 1:
            raise VoicePromptError(f"{key} must be one row of tokens (T,), not an array of shape {array.shape}.")
        if rows is not None and (array.ndim != 2 or array.shape[0] != rows):
            raise VoicePromptError(f"{key} must have shape ({rows}, frames), not {array.shape}.")
        limit = SEMANTIC_VOCAB if rows is None else CODEBOOK_SIZE
        if array.size and (array.min() < 0 or array.max() >= limit):
            raise VoicePromptError(f"{key} holds values outside 0..{limit - 1}.")
        prompt[key] = array.astype(np.int64)
    tokens, frames = prompt["semantic_prompt"].shape[0], prompt["fine_prompt"].shape[1]
    if not MIN_PROMPT_SEMANTIC_TOKENS <= tokens <= MAX_SEMANTIC_TOKENS:
        raise VoicePromptError(
            f"semantic_prompt has {tokens} tokens; "
            f"a prompt holds {MIN_PROMPT_SEMANTIC_TOKENS} to {MAX_SEMANTIC_TOKENS}."
        )
    if prompt["coarse_prompt"].shape[1] != frames:
        raise VoicePromptError(
            f"coarse_prompt and fine_prompt must cover the same frames "
            f"({prompt['coarse_prompt'].shape[1]} and {frames})."
        )
    expected = _frames_for(tokens)
    if abs(frames - expected) > max(FRAME_TOLERANCE, FRAME_TOLERANCE_RATIO * expected):
        raise VoicePromptError(
            f"The codes cover {frames} frames but {tokens} semantic tokens span about {expected:.0f} "
            f"({FRAME_RATE_HZ} frames per {SEMANTIC_RATE_HZ} tokens): the arrays do not belong together."
        )
    return prompt


# --- .npz presets ------------------------------------------------------------------------------------------


def _read_npy_header(member: IO[bytes]) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise ValueError(f"unsupported .npy format version {version}")
    return shape, dtype


def prompt_from_npz(data: bytes) -> dict[str, np.ndarray]:
    """A Bark `.npz` preset (`np.savez` of the three arrays), checked before and after its arrays are read."""
    if not data:
        raise VoicePromptError("The file is empty.")
    if len(data) > MAX_NPZ_BYTES:
        raise VoicePromptError(f"The file is {len(data)} bytes; a voice preset is at most {MAX_NPZ_BYTES} bytes.")
    if not data.startswith(b"PK\x03\x04"):
        raise VoicePromptError("This is not an .npz file (a zip archive of .npy arrays, as numpy.savez writes).")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
            _check_keys(set(members))
            if sum(info.file_size for info in members.values()) > MAX_NPZ_UNCOMPRESSED_BYTES:
                raise VoicePromptError(
                    f"The arrays unpack to more than {MAX_NPZ_UNCOMPRESSED_BYTES} bytes; a voice preset is far smaller."
                )
            arrays = {key: _read_member(archive, members[key], key) for key in PROMPT_KEYS}
    except VoicePromptError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, NotImplementedError) as exc:
        raise VoicePromptError(f"The .npz file is damaged or not a numpy archive ({exc}).") from exc
    return validate_prompt(arrays)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, key: str) -> np.ndarray:
    """One array, its header checked first: no object arrays (pickles), no sizes beyond a prompt's."""
    with archive.open(info) as member:
        shape, dtype = _read_npy_header(member)
    if dtype.hasobject or dtype.kind not in "iu":
        raise VoicePromptError(f"{key} must hold integer token ids, not {dtype} values.")
    if math.prod(shape) * dtype.itemsize > info.file_size:
        raise ValueError(f"{key} is shorter than its header says")
    with archive.open(info) as member:
        return np.lib.format.read_array(member, allow_pickle=False)


def save_prompt(prompt: Mapping[str, np.ndarray]) -> bytes:
    """The prompt as `.npz` bytes (for Voice.prompt_file), checked first."""
    buffer = io.BytesIO()
    arrays: dict[str, Any] = validate_prompt(prompt)
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def load_prompt(source: bytes | str | os.PathLike[str] | IO[bytes]) -> dict[str, np.ndarray]:
    """A stored prompt from bytes, a path, or an open file (a Django FieldFile works), checked like an upload."""
    if isinstance(source, bytes):
        data = source
    elif isinstance(source, str | os.PathLike):
        data = Path(source).read_bytes()
    else:
        data = source.read(MAX_NPZ_BYTES + 1)
    return prompt_from_npz(data)


# --- reference clips ---------------------------------------------------------------------------------------


def decode_clip(data: bytes, sample_rate: int = CLIP_SAMPLE_RATE) -> np.ndarray:
    """An uploaded clip (any of `uploads.CONTAINERS`) as mono float32 at `sample_rate`, at most MAX_CLIP_SECONDS
    (+0.5 s to tell)."""
    try:
        return uploads.decode(data, sample_rate=sample_rate, max_seconds=MAX_CLIP_SECONDS + 0.5)
    except uploads.UnreadableAudio as exc:
        raise VoicePromptError(str(exc)) from exc


def check_transcript(transcript: str | None) -> str:
    transcript = (transcript or "").strip()
    if not transcript:
        raise TranscriptError("The transcript is empty; give the words spoken in the clip.")
    if len(transcript) > MAX_TRANSCRIPT_CHARS:
        raise TranscriptError(f"The transcript has {len(transcript)} characters; at most {MAX_TRANSCRIPT_CHARS}.")
    return transcript


def check_clip(data: bytes) -> str:
    """Check an uploaded reference clip without any model (decodes, lasts 2-30 s, is not silence) and
    return its file extension. The web process calls this so a bad file gets its answer at once."""
    clip_waveform(data)
    return uploads.container_of(data)


def clip_waveform(data: bytes, sample_rate: int = CLIP_SAMPLE_RATE) -> np.ndarray:
    """The clip decoded at `sample_rate` once checked (2-30 s long, not silence)."""
    waveform = decode_clip(data, sample_rate)
    seconds = len(waveform) / sample_rate
    if not MIN_CLIP_SECONDS <= seconds <= MAX_CLIP_SECONDS:
        # decode_clip stops just past the bound, so a long clip's own length is unknown here.
        length = f"more than {MAX_CLIP_SECONDS:g}" if seconds > MAX_CLIP_SECONDS else f"{seconds:.2f}"
        raise VoicePromptError(
            f"The clip lasts {length} s; a reference clip lasts {MIN_CLIP_SECONDS:g} to {MAX_CLIP_SECONDS:g} s."
        )
    if np.abs(waveform).max() < MIN_CLIP_PEAK:
        raise VoicePromptError("The clip is silent.")
    return waveform


def prompt_from_clip(
    data: bytes,
    transcript: str,
    encode: Callable[[np.ndarray], np.ndarray],
    semantic_tokens: Callable[[str, int], np.ndarray],
) -> dict[str, np.ndarray]:
    """A prompt cloned from a 2-30 s reference clip and the words spoken in it (the `transcript` method, see
    cloning.py); `encode` and `semantic_tokens` are the engine's codec and text model.

    The clip's EnCodec codes (Bark's own codec, 8 codebooks) give the fine prompt and its first two rows the coarse
    prompt. The transcript through Bark's text model, greedily and as many tokens as the clip lasts, stands in for the
    semantic prompt: an approximation of what was said, not how (the `hubert` method reads them from the audio). Clips
    longer than the semantic model can match (about 15 s) keep their last 15 s, the end Bark reads prompts from.
    """
    transcript = check_transcript(transcript)
    waveform = clip_waveform(data)
    seconds = len(waveform) / CLIP_SAMPLE_RATE
    tokens = min(round(seconds * SEMANTIC_RATE_HZ), MAX_CLIP_SEMANTIC_TOKENS)
    return aligned_prompt(semantic_tokens(transcript, tokens), encode(waveform))


def aligned_prompt(semantic: np.ndarray, codes: np.ndarray) -> dict[str, np.ndarray]:
    """A prompt from a clip's semantic tokens and its EnCodec codes (8, frames), both ending where the clip ends: the
    last MAX_CLIP_SEMANTIC_TOKENS tokens and the frames that span them."""
    semantic = semantic[-MAX_CLIP_SEMANTIC_TOKENS:]
    frames = min(codes.shape[1], math.floor(_frames_for(len(semantic))))
    fine = codes[:, -frames:]
    return validate_prompt(
        {
            "semantic_prompt": semantic,
            "coarse_prompt": fine[:2].copy(),
            "fine_prompt": fine.copy(),
        }
    )
