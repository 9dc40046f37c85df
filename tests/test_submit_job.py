"""submit_job's own checks: the bounds every surface offers are enforced once more where jobs are made, so a
caller that skips a form or serializer (the Python API, a management command) gets the same answer."""

import pytest

from synthesis.jobs.submit import MAX_SEED, InvalidRequest, JobRequest, submit_job
from synthesis.models import Job


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"text_temp": 1.6}, "text_temp", "Use a temperature from 0 to 1.5; got 1.6."),
        ({"waveform_temp": -0.1}, "waveform_temp", "Use a temperature from 0 to 1.5; got -0.1."),
        ({"seed": MAX_SEED + 1}, "seed", f"Use a seed from 0 to {MAX_SEED}; got {MAX_SEED + 1}."),
        ({"caption_text": "x" * 5001}, "caption_text", "caption_text is limited to 5000 characters."),
    ],
)
def test_out_of_bounds_settings_are_refused_with_the_field_and_the_range(db, settings, change, field, message):
    settings.BARK_MAX_PROMPT_CHARS = 5000

    with pytest.raises(InvalidRequest) as caught:
        submit_job(JobRequest(prompt="Hello.", engine="piper", dry_run=True, **change))

    assert (caught.value.field, caught.value.message) == (field, message)
    assert not Job.objects.exists()


def test_the_plan_is_read_back_typed_as_it_was_made(db):
    job = submit_job(
        JobRequest(
            prompt="One. Two.\nThree.",
            engine="piper",
            seed=3,
            text_temp=0.4,
            control_events=[{"type": "pause", "segment": 0, "ms": 300}],
            modalities=["audio", "captions"],
            dry_run=True,
        )
    )

    plan = Job.objects.get(pk=job.pk).get_plan()

    assert plan.segments == ["One. Two.", "Three."] and plan.pauses_ms == {0: 300}
    assert (plan.engine, plan.seed, plan.text_temp, plan.wants_captions, plan.render_video) == (
        "piper",
        3,
        0.4,
        True,
        False,
    )
    assert plan.plan_json() == job.plan and plan.params_json() == job.params
