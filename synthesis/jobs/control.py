"""Control events and routing priorities: how a request shapes its segments and its place in the queue.

Events are applied at submission, so the plan shows exactly what will run:

- `{"type": "pause", "segment": i, "ms": 800}`: silence after segment i (instead of the default gap);
- `{"type": "voice", "segment": i, "voice": "v2/en_speaker_9"}`: segment i and those after it use that
  voice, until the next voice event (dialogue);
- `{"type": "cue", "segment": i, "cue": "[laughs]"}`: an engine's cue (`Engine.cues`) at the start of segment i.

Routing priorities weigh modalities (0-10, default 1); the job's priority is 100 x the mean weight of
the modalities it asks for, and workers take the highest-priority queued job first.
"""

from dataclasses import dataclass
from typing import Any

from synthesis import engines

CUES = engines.cues()
EVENT_TYPES = ("pause", "voice", "cue")
MAX_PAUSE_MS = 10_000
MAX_EVENTS = 200
MODALITIES = ("audio", "video", "captions")
MAX_PRIORITY_WEIGHT = 10.0


class ControlError(ValueError):
    """An event or weight that cannot be applied; the message says which and why."""


@dataclass
class AppliedEvents:
    segments: list[str]  # texts to speak, cues included
    segment_voices: list[str]  # one voice per segment
    pauses_ms: dict[int, int]  # silence after a segment, where an event set one


def apply_events(events: list[dict[str, Any]], segments: list[str], voice: str) -> AppliedEvents:
    """Validate `events` against the planned `segments` and apply them. Voice ids in voice events are
    checked by the caller (they need the database)."""
    if len(events) > MAX_EVENTS:
        raise ControlError(f"At most {MAX_EVENTS} control events are accepted; got {len(events)}.")
    texts = list(segments)
    voices = [voice] * len(segments)
    pauses: dict[int, int] = {}
    for number, event in enumerate(sorted(events, key=lambda e: _segment(e, len(segments), 0)), start=1):
        index = _segment(event, len(segments), number)
        kind = event.get("type")
        if kind == "pause":
            ms = event.get("ms")
            if not isinstance(ms, int) or isinstance(ms, bool) or not 0 <= ms <= MAX_PAUSE_MS:
                raise ControlError(f"Event {number}: a pause needs 'ms', a whole number from 0 to {MAX_PAUSE_MS}.")
            pauses[index] = ms
        elif kind == "voice":
            new_voice = event.get("voice")
            if not isinstance(new_voice, str) or not new_voice:
                raise ControlError(f"Event {number}: a voice change needs 'voice', e.g. 'v2/en_speaker_9'.")
            voices[index:] = [new_voice] * (len(voices) - index)
        elif kind == "cue":
            cue = event.get("cue")
            if cue not in CUES:
                raise ControlError(f"Event {number}: unknown cue {cue!r}; use one of {', '.join(CUES)}.")
            texts[index] = f"{cue} {texts[index]}"
        else:
            raise ControlError(f"Event {number}: 'type' must be one of {', '.join(EVENT_TYPES)}; got {kind!r}.")
    return AppliedEvents(texts, voices, pauses)


def _segment(event: Any, count: int, number: int) -> int:
    if not isinstance(event, dict):
        raise ControlError(f"Event {number}: each control event must be an object.")
    index = event.get("segment")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count:
        raise ControlError(
            f"Event {number}: 'segment' must be a segment index from 0 to {count - 1} (this text has {count})."
        )
    return index


def priority(routing_priorities: dict[str, float], modalities: list[str]) -> int:
    for modality, weight in routing_priorities.items():
        if modality not in MODALITIES:
            raise ControlError(f"routing_priorities: unknown modality {modality!r}; use {', '.join(MODALITIES)}.")
        if not isinstance(weight, int | float) or isinstance(weight, bool) or not 0 <= weight <= MAX_PRIORITY_WEIGHT:
            raise ControlError(f"routing_priorities: the weight of {modality} must be a number from 0 to 10.")
    weights = [float(routing_priorities.get(modality, 1.0)) for modality in modalities] or [1.0]
    return round(100 * sum(weights) / len(weights))
