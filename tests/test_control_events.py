"""Control events and routing priorities: validated, applied, and echoed in the plan."""

import pytest

from synthesis.jobs.control import ControlError, apply_events, priority
from synthesis.jobs.submit import InvalidRequest, JobRequest, submit_job

SEGMENTS = ["First part.", "Second part.", "Third part."]


def test_a_pause_event_sets_the_silence_after_its_segment():
    applied = apply_events([{"type": "pause", "segment": 1, "ms": 800}], SEGMENTS, "v2/en_speaker_1")

    assert applied.pauses_ms == {1: 800}
    assert applied.segments == SEGMENTS


def test_a_voice_event_changes_the_voice_from_its_segment_on():
    applied = apply_events([{"type": "voice", "segment": 1, "voice": "v2/en_speaker_9"}], SEGMENTS, "v2/en_speaker_1")

    assert applied.segment_voices == ["v2/en_speaker_1", "v2/en_speaker_9", "v2/en_speaker_9"]


def test_a_dialogue_alternates_voices():
    events = [
        {"type": "voice", "segment": 1, "voice": "v2/en_speaker_9"},
        {"type": "voice", "segment": 2, "voice": "v2/en_speaker_1"},
    ]

    applied = apply_events(events, SEGMENTS, "v2/en_speaker_1")

    assert applied.segment_voices == ["v2/en_speaker_1", "v2/en_speaker_9", "v2/en_speaker_1"]


def test_a_cue_event_puts_the_cue_at_the_start_of_its_segment():
    applied = apply_events([{"type": "cue", "segment": 2, "cue": "[laughs]"}], SEGMENTS, "v")

    assert applied.segments[2] == "[laughs] Third part."


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"type": "pause", "segment": 3, "ms": 100}, "from 0 to 2 \\(this text has 3\\)"),
        ({"type": "pause", "segment": 0, "ms": 60_000}, "from 0 to 10000"),
        ({"type": "pause", "segment": True, "ms": 10}, "'segment' must be a segment index"),
        ({"type": "cue", "segment": 0, "cue": "[explodes]"}, "unknown cue '\\[explodes\\]'"),
        ({"type": "teleport", "segment": 0}, "'type' must be one of pause, voice, cue"),
        ({"type": "voice", "segment": 0}, "a voice change needs 'voice'"),
        ("pause", "must be an object"),
    ],
)
def test_a_bad_event_is_refused_with_a_message_naming_it(event, message):
    with pytest.raises(ControlError, match=message):
        apply_events([event], SEGMENTS, "v")


def test_the_priority_is_the_mean_weight_of_the_requested_modalities():
    assert priority({}, ["audio"]) == 100
    assert priority({"audio": 2.0, "video": 0.5}, ["audio", "video"]) == 125
    with pytest.raises(ControlError, match="unknown modality 'smell'"):
        priority({"smell": 1}, ["audio"])
    with pytest.raises(ControlError, match="from 0 to 10"):
        priority({"audio": 11}, ["audio"])


def test_a_planned_dialogue_echoes_voices_pauses_cues_and_priority(db):
    job = submit_job(
        JobRequest(
            prompt="Hello, who is there? It is me. Oh, good.",
            engine="bark",
            voice="v2/en_speaker_1",
            dry_run=True,
            control_events=[
                {"type": "voice", "segment": 0, "voice": "v2/en_speaker_9"},
                {"type": "pause", "segment": 0, "ms": 500},
                {"type": "cue", "segment": 0, "cue": "[gasps]"},
            ],
            routing_priorities={"audio": 3},
        )
    )

    assert job.status == job.Status.PLANNED
    assert job.plan["segment_voices"] == ["v2/en_speaker_9"]
    assert job.plan["pauses_ms"] == {"0": 500} and job.get_plan().pauses_ms == {0: 500}
    assert job.plan["segments"][0].startswith("[gasps] ")
    assert job.priority == job.plan["priority"] == 300


def test_a_voice_event_naming_another_engines_voice_is_refused(db):
    with pytest.raises(InvalidRequest, match="belongs to the piper engine") as caught:
        submit_job(
            JobRequest(
                prompt="Hi.",
                engine="bark",
                dry_run=True,
                control_events=[{"type": "voice", "segment": 0, "voice": "piper/en_US-joe-medium"}],
            )
        )
    assert caught.value.field == "control_events"


def test_the_readme_dialogue_runs_with_two_bark_voices(db, tiny_bark):
    from synthesis.tasks import run_job_task

    job = submit_job(
        JobRequest(
            prompt="Did you hear that noise last night?\nI did, and I could not sleep at all.\n"
            "Well, it was only the cat.",
            engine="bark",
            voice="v2/en_speaker_9",
            seed=7,
            control_events=[
                {"type": "pause", "segment": 0, "ms": 600},
                {"type": "voice", "segment": 1, "voice": "v2/en_speaker_6"},
                {"type": "voice", "segment": 2, "voice": "v2/en_speaker_9"},
                {"type": "cue", "segment": 2, "cue": "[laughs]"},
            ],
        )
    )

    run_job_task(str(job.id))

    job.refresh_from_db()
    assert job.status == job.Status.COMPLETED, job.error
    assert job.plan["segment_voices"] == ["v2/en_speaker_9", "v2/en_speaker_6", "v2/en_speaker_9"]
    assert job.plan["segments"][2] == "[laughs] Well, it was only the cat."
    assert job.segments_done == 3
