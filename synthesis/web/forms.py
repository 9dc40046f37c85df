"""The web UI's new-job form. It offers only engines that can run here and the voices of those engines
(each option says its engine, so the page's script can show only the chosen engine's voices), and refuses a
voice of another engine at the voice field. The rules that need more (an uploaded voice still exists, queue
admission) stay in `jobs.submit_job`, whose `InvalidRequest.field` names the form field to attach its
message to."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.conf import settings
from django.core.validators import MaxLengthValidator

from synthesis.engines import ENGINE_NAMES, EngineHealth, cloning_engine, engine_for_voice
from synthesis.jobs.selectors import Caller, usable_voices
from synthesis.jobs.submit import MAX_SEED, TEMPERATURE_RANGE, JobRequest
from synthesis.jobs.voices import catalogue
from synthesis.media.video_options import DEFAULT_PRESET, PRESETS, preset_label
from synthesis.models import Voice

LOWEST, HIGHEST = TEMPERATURE_RANGE
# Which engines use the temperatures: Bark samples with both; Piper scales its noise with them, except for a
# seeded request, which it runs noise-free so that it is reproducible (synthesis/engines/piper/engine.py).
TEMPERATURE_NOTE = "Bark uses it. Piper uses it only without a seed (a seeded Piper run is noise-free)."
TEMPERATURE_ERRORS = {
    "min_value": f"Use a temperature from {LOWEST:g} to {HIGHEST:g}.",
    "max_value": f"Use a temperature from {LOWEST:g} to {HIGHEST:g}.",
    "invalid": "Enter a number such as 0.7.",
}


def voice_choices(user, engines: set[str]) -> list[tuple[str, object]]:
    """Voices of `engines` grouped by language (rendered as <optgroup>), the user's ready uploaded voices
    (Bark prompts) first."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for voice in catalogue():
        if voice["engine"] not in engines:
            continue
        engine = voice["engine"].capitalize()
        label = voice["name"] if engine in voice["name"] else f"{voice['name']} · {engine}"
        groups.setdefault(voice["language"], []).append((voice["id"], label))
    choices: list[tuple[str, object]] = [("", "Engine's default voice")]
    if getattr(user, "is_authenticated", False) and cloning_engine().name in engines:
        ready = usable_voices(Caller.of(user)).filter(status=Voice.Status.READY)
        engine = cloning_engine().name.capitalize()
        own = [(v.voice_id, f"{v.name} · {engine}{v.method_note}") for v in ready]
        if own:
            choices.append(("Your voices", own))
    # English first: it is the only language every engine speaks.
    for language in sorted(groups, key=lambda name: (name != "English", name)):
        choices.append((language, groups[language]))
    return choices


class VoiceSelect(forms.Select):
    """A <select> whose options carry `data-engine`, so the page can show only the chosen engine's voices."""

    def create_option(
        self,
        name: str,
        value: Any,
        label: Any,
        selected: bool,
        index: int,
        subindex: int | None = None,
        attrs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        if value:
            option["attrs"]["data-engine"] = engine_for_voice(str(value)) or ""
        return option


class EngineField(forms.ChoiceField):
    """The engine select. Engines that cannot run are not offered; one posted anyway (an old page, a script)
    is refused with the reason it cannot run, as the API's 503 gives it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unavailable: dict[str, str] = {}

    def validate(self, value: Any) -> None:
        if value in self.unavailable:
            reason = self.unavailable[value].rstrip(".")
            raise forms.ValidationError(f"The {value} engine cannot run here: {reason}.", code="unavailable")
        super().validate(value)


class PromptField(forms.CharField):
    """Text with browser line breaks (CRLF) counted as one character, as the page's counter and the
    textarea's maxlength count them."""

    def to_python(self, value: object) -> str:
        return (super().to_python(value) or "").replace("\r\n", "\n")


class JobForm(forms.Form):
    prompt = PromptField(
        label="Text",
        widget=forms.Textarea(attrs={"rows": 7, "placeholder": "Type what the voice should say…"}),
        error_messages={
            "required": "Write some text to speak.",
            "max_length": "The text has %(show_value)d characters; the limit is %(limit_value)d.",
        },
    )
    engine = EngineField(label="Engine", initial="auto")
    voice = forms.ChoiceField(
        label="Voice",
        required=False,
        widget=VoiceSelect,
        error_messages={"invalid_choice": "There is no voice %(value)s; pick one from the list."},
    )
    text_temp = forms.FloatField(
        label="Text temperature",
        min_value=LOWEST,
        max_value=HIGHEST,
        initial=0.7,
        widget=forms.NumberInput(attrs={"step": "0.05"}),
        error_messages=TEMPERATURE_ERRORS,
        help_text=f"Higher is more varied wording and intonation. {TEMPERATURE_NOTE}",
    )
    waveform_temp = forms.FloatField(
        label="Waveform temperature",
        min_value=LOWEST,
        max_value=HIGHEST,
        initial=0.7,
        widget=forms.NumberInput(attrs={"step": "0.05"}),
        error_messages=TEMPERATURE_ERRORS,
        help_text=f"Higher is more varied sound. {TEMPERATURE_NOTE}",
    )
    seed = forms.IntegerField(
        label="Seed",
        required=False,
        min_value=0,
        max_value=MAX_SEED,
        error_messages={
            "invalid": "A seed is a whole number.",
            "min_value": f"Use a seed from 0 to {MAX_SEED}.",
            "max_value": f"Use a seed from 0 to {MAX_SEED}.",
        },
        help_text="Same seed, same text, same voice: the same audio. Empty: a new take every time.",
    )
    render_video = forms.BooleanField(label="Render a video with captions", required=False)
    video_preset = forms.ChoiceField(
        label="Video size",
        choices=[
            (name, f"{preset_label(name)} ({p['width']}×{p['height']}, {p['fps']} fps)") for name, p in PRESETS.items()
        ],
        initial=DEFAULT_PRESET,
        help_text="4K takes about twice as long to render as 1080p.",
    )
    caption_text = forms.CharField(
        label="Caption text",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Shown in the video instead of the spoken text. Optional.",
    )

    def __init__(
        self, *args, user=None, health: list[EngineHealth] | None = None, auto: str | None = None, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        # The limit is a setting that tests (and operators) change, so it is read per form, not at import.
        limit = settings.BARK_MAX_PROMPT_CHARS
        prompt = self.fields["prompt"]
        prompt.validators.append(MaxLengthValidator(limit))
        prompt.widget.attrs.update({"maxlength": str(limit), "data-max-chars": str(limit)})
        runnable = {h.name for h in health or [] if h.ok}
        self.auto = auto
        engine = self.fields["engine"]
        assert isinstance(engine, EngineField)
        engine.choices = engine_choices(health or [], auto)
        engine.unavailable = {h.name: h.reason for h in health or [] if not h.ok}
        engine.widget.attrs["data-auto-engine"] = auto or ""
        cast(forms.ChoiceField, self.fields["voice"]).choices = voice_choices(user, runnable)

    def clean(self) -> dict[str, Any]:
        """A voice must belong to the engine that will run: the one chosen, or Automatic's pick."""
        data = super().clean() or {}
        voice, engine = data.get("voice"), data.get("engine")
        runs = self.auto if engine == "auto" else engine
        owner = engine_for_voice(voice) if voice else None
        if voice and runs and owner and owner != runs:
            self.add_error(
                "voice",
                f"That is a {owner.capitalize()} voice, and the {runs.capitalize()} engine cannot speak with it: "
                f"pick one of {runs.capitalize()}'s voices, or the {owner.capitalize()} engine.",
            )
        return data

    def to_request(self, *, dry_run: bool) -> JobRequest:
        data = self.cleaned_data
        render_video = data["render_video"]
        return JobRequest(
            prompt=data["prompt"],
            engine=None if data["engine"] == "auto" else data["engine"],
            voice=data["voice"] or None,
            text_temp=data["text_temp"],
            waveform_temp=data["waveform_temp"],
            seed=data["seed"],
            render_video=render_video,
            video={"preset": data["video_preset"]} if render_video else {},
            caption_text=data["caption_text"] if render_video else "",
            dry_run=dry_run,
        )


def engine_choices(health: list[EngineHealth], auto: str | None) -> list[tuple[str, str]]:
    """Automatic (labelled with the engine it picks) and every engine that can run here; the page's side
    panel says why the others cannot."""
    choices = [("auto", f"Automatic · {auto.capitalize() if auto else 'none can run (plans only)'}")]
    choices += [(h.name, h.name.capitalize()) for h in health if h.ok and h.name in ENGINE_NAMES]
    return choices
