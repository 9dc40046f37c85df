"""How a reference clip becomes a Bark voice here: which of the two methods runs, and building the prompt by it.

Both take the coarse and fine prompts (the timbre) from the clip's EnCodec codes; they differ in where the semantic
prompt (what is said, with its rhythm, pauses and accent) comes from:

- `hubert`: read from the audio by HuBERT and its quantizer (hubert.py), as Bark's community clones voices: how this
  speaker said it. It runs when both models resolve here (BARK_HUBERT_MODEL, BARK_HUBERT_QUANTIZER), and needs no
  transcript (one given is checked and kept on the voice, not used).
- `transcript`: the words through Bark's text model (prompts.prompt_from_clip): what was said, the way Bark would say
  it. It runs otherwise, and the clip must come with its transcript.

Everything here takes the engine's model calls as arguments, so the in-process engine and the Bark runner's client
build prompts the same way, each with its own calls.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from synthesis.engines import CloningMethod, EngineUnavailable
from synthesis.engines.bark import hubert, prompts
from synthesis.engines.bark.prompts import TranscriptError

HUBERT = "hubert"
TRANSCRIPT = "transcript"
METHODS = (HUBERT, TRANSCRIPT)
NO_TRANSCRIPT = (
    "Give the words spoken in the clip (transcript): this server builds a voice from a clip and its transcript, "
    "since cloning from the audio alone (HuBERT) is not set up here."
)


def method_here(tokenizer: hubert.HubertTokenizer) -> CloningMethod:
    """`hubert` when both of its models resolve here, else `transcript`, with the reason."""
    try:
        plan = tokenizer.plan()
    except EngineUnavailable as exc:
        return CloningMethod(TRANSCRIPT, needs_transcript=True, reason=f"HuBERT cloning is not available: {exc}")
    return CloningMethod(HUBERT, needs_transcript=False, reason=plan.describe())


def check_upload(data: bytes, transcript: str | None, method: CloningMethod) -> str:
    """Check a clip and its transcript without any model (see prompts.check_clip); return the clip's extension."""
    if (transcript or "").strip():
        prompts.check_transcript(transcript)
    elif method.needs_transcript:
        raise TranscriptError(NO_TRANSCRIPT)
    return prompts.check_clip(data)


def clone(
    data: bytes,
    transcript: str | None,
    method: str,
    encode: Callable[[np.ndarray], np.ndarray],
    semantic_tokens: Callable[[str, int], np.ndarray],
    hubert_tokens: Callable[[np.ndarray], np.ndarray],
) -> dict[str, np.ndarray]:
    """A prompt from a 2-30 s clip by `method`: `encode` is Bark's codec (24 kHz audio -> codes), `semantic_tokens`
    its text model (transcript, length -> tokens), `hubert_tokens` HuBERT and its quantizer (16 kHz audio -> tokens).
    A clip longer than Bark's semantic model can match (about 15 s) keeps its end, as in `prompts.aligned_prompt`."""
    if method == TRANSCRIPT:
        if not (transcript or "").strip():
            raise TranscriptError(NO_TRANSCRIPT)  # hubert was there when the clip came, and is gone now
        return prompts.prompt_from_clip(data, transcript or "", encode, semantic_tokens)
    if method != HUBERT:
        raise ValueError(f"unknown cloning method {method!r}; one of {', '.join(METHODS)}")
    waveform = prompts.clip_waveform(data)  # checked at Bark's 24 kHz; decoded again at HuBERT's 16 kHz by ffmpeg
    semantic = hubert_tokens(prompts.clip_waveform(data, hubert.SAMPLE_RATE))
    return prompts.aligned_prompt(semantic, encode(waveform))
