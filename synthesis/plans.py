"""What a job will do, as one typed value: decided once by `jobs.submit_job`, stored on the job as JSON, read back
with `Job.get_plan()`. Nothing else reads the stored JSON by key.

The row keeps two JSON objects, because the API shows both: `params` (the request's settings as recorded) and `plan`
(what the service decided: engine, voice per segment, segments with their cues, pauses, priority). Rows recorded
before a key existed read back with the defaults below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from synthesis.segments import split_text

DEFAULT_TEMPERATURE = 0.7


@dataclass(frozen=True)
class JobPlan:
    # What runs, and on what.
    engine: str
    model: str
    voice: str
    segments: list[str]  # the texts to speak, cues included
    segment_voices: list[str] = field(default_factory=list)  # one voice per segment ([] on old rows: `voice`)
    pauses_ms: dict[int, int] = field(default_factory=dict)  # silence after a segment, where an event set one
    # How it sounds.
    text_temp: float = DEFAULT_TEMPERATURE
    waveform_temp: float = DEFAULT_TEMPERATURE
    seed: int | None = None
    # What comes out, and when.
    modalities: list[str] = field(default_factory=lambda: ["audio"])
    render_video: bool = False
    video: dict[str, Any] = field(default_factory=dict)  # validated video options; {} without a video
    output_prefix: str = "audio"
    priority: int = 0
    estimated_duration_s: float = 0.0
    # The request's own words, recorded as given.
    control_events: list[dict[str, Any]] = field(default_factory=list)
    routing_priorities: dict[str, float] = field(default_factory=dict)
    fresh: bool = False

    @property
    def wants_captions(self) -> bool:
        return self.render_video or "captions" in self.modalities

    def params_json(self) -> dict[str, Any]:
        """`Job.params`: the request's settings."""
        return {
            "text_temp": self.text_temp,
            "waveform_temp": self.waveform_temp,
            "seed": self.seed,
            "modalities": self.modalities,
            "render_video": self.render_video,
            "video": self.video,
            "control_events": self.control_events,
            "routing_priorities": self.routing_priorities,
            "fresh": self.fresh,
        }

    def plan_json(self) -> dict[str, Any]:
        """`Job.plan`: what the service decided (the settings that shape it are repeated for readers of the plan)."""
        return {
            "engine": self.engine,
            "model": self.model,
            "voice": self.voice,
            "segments": self.segments,
            "segment_count": len(self.segments),
            "segment_voices": self.segment_voices,
            "pauses_ms": {str(index): ms for index, ms in self.pauses_ms.items()},  # JSON keys are strings
            "estimated_duration_s": self.estimated_duration_s,
            "modalities": self.modalities,
            "render_video": self.render_video,
            "video": self.video or None,
            "control_events": self.control_events,
            "routing_priorities": self.routing_priorities,
            "priority": self.priority,
            "output_prefix": self.output_prefix,
        }

    @classmethod
    def from_json(
        cls, plan: dict[str, Any], params: dict[str, Any], *, engine: str, model: str, voice: str, prompt: str
    ) -> JobPlan:
        """The plan stored on a row; `engine`, `model`, `voice` and `prompt` are the row's own columns, which fill
        in for rows recorded without a plan."""
        return cls(
            engine=plan.get("engine", engine),
            model=plan.get("model", model),
            voice=plan.get("voice", voice),
            segments=plan.get("segments") or split_text(prompt),
            segment_voices=plan.get("segment_voices") or [],
            pauses_ms={int(index): ms for index, ms in (plan.get("pauses_ms") or {}).items()},
            text_temp=params.get("text_temp", DEFAULT_TEMPERATURE),
            waveform_temp=params.get("waveform_temp", DEFAULT_TEMPERATURE),
            seed=params.get("seed"),
            modalities=params.get("modalities", ["audio"]),
            render_video=bool(params.get("render_video")),
            video=params.get("video") or {},
            output_prefix=plan.get("output_prefix", "audio"),
            priority=plan.get("priority", 0),
            estimated_duration_s=plan.get("estimated_duration_s", 0.0),
            control_events=params.get("control_events", []),
            routing_priorities=params.get("routing_priorities", {}),
            fresh=bool(params.get("fresh")),
        )
