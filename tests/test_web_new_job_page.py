"""The new-job page: the form, its validation in plain words, the dry-run plan, and submitting."""

import pytest
from django.urls import reverse
from django_q.models import OrmQ

from synthesis.engines import reset_engines
from synthesis.models import Job, Voice
from tests.fixtures_web import make_job

URL = reverse("job-new")


def form_data(**overrides) -> dict:
    data = {
        "prompt": "Hello there. This is a test.",
        "engine": "piper",
        "voice": "",
        "text_temp": "0.7",
        "waveform_temp": "0.7",
        "seed": "",
        "video_preset": "1080p",
        "caption_text": "",
        "submit": "",
    }
    data.update(overrides)
    return data


def test_the_new_job_page_is_the_home_page_and_needs_a_signed_in_user(client, db):
    response = client.get(URL)

    assert URL == "/"
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next=/"


def test_the_page_shows_the_form_with_the_limit_engines_and_voices_by_language(signed_in, settings, tiny_bark):
    settings.BARK_MAX_PROMPT_CHARS = 1234
    settings.BARK_DEFAULT_ENGINE = "piper"

    response = signed_in.get(URL)

    body = response.content.decode()
    assert response.status_code == 200
    assert 'maxlength="1234"' in body and "/ 1234 characters" in body and "data-counter-for" in body
    assert '<optgroup label="English">' in body and '<optgroup label="Japanese">' in body
    assert body.index('<optgroup label="English">') < body.index('<optgroup label="Chinese">')
    assert '<option value="v2/ja_speaker_3" data-engine="bark">Speaker 3 · Bark</option>' in body
    assert '<option value="piper/en_US-joe-medium" data-engine="piper">Joe (Piper, US)</option>' in body
    assert 'data-auto-engine="piper"' in body
    assert '<option value="auto" selected>Automatic · Piper</option>' in body
    assert '<option value="piper">Piper</option>' in body and '<option value="bark">Bark</option>' in body
    assert "Plan (dry run)" in body and ">Submit</button>" in body
    for label in ("Text temperature", "Waveform temperature", "Seed", "Render a video with captions", "Video size"):
        assert f">{label}</label>" in body or f"> {label}</label>" in body


def test_an_engine_that_cannot_run_and_its_voices_are_not_offered(signed_in, settings):
    settings.BARK_MODELS_AVAILABLE = "false"
    reset_engines()

    body = signed_in.get(URL).content.decode()

    assert '<option value="bark"' not in body and "v2/en_speaker_6" not in body
    assert '<option value="piper">Piper</option>' in body and "Joe (Piper, US)" in body
    assert "<summary>Cannot run here</summary>disabled by BARK_MODELS_AVAILABLE=false</details>" in body
    reset_engines()


def test_the_temperatures_say_when_the_engine_ignores_them(signed_in):
    body = signed_in.get(URL).content.decode()

    assert body.count("Piper uses it only without a seed (a seeded Piper run is noise-free).") == 2
    assert "data-temperature-ignored hidden>Piper ignores both temperatures for a seeded request" in body


def test_the_users_own_ready_voices_are_offered_and_nobody_elses(signed_in, user, other_user, tiny_bark):
    mine = Voice.objects.create(name="Narrator", source="npz", prompt_file="voices/n.npz", owner=user)
    pending = Voice.objects.create(name="Still encoding", source="clip", status="pending", owner=user)
    theirs = Voice.objects.create(name="Stranger", source="npz", prompt_file="voices/s.npz", owner=other_user)

    body = signed_in.get(URL).content.decode()

    assert '<optgroup label="Your voices">' in body
    assert f'value="{mine.voice_id}"' in body and "Narrator · Bark" in body
    assert pending.voice_id not in body and theirs.voice_id not in body


def test_the_users_clip_voices_say_how_they_were_cloned(signed_in, user, tiny_bark):
    Voice.objects.create(name="Read aloud", source="clip", method="hubert", prompt_file="voices/a.npz", owner=user)
    Voice.objects.create(name="From words", source="clip", method="transcript", prompt_file="voices/b.npz", owner=user)

    body = signed_in.get(URL).content.decode()

    assert "Read aloud · Bark · cloned from the audio" in body
    assert "From words · Bark · cloned from a transcript" in body


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"prompt": "   "}, "prompt", "Write some text to speak."),
        ({"prompt": "x" * 51}, "prompt", "The text has 51 characters; the limit is 50."),
        ({"text_temp": "1.6"}, "text_temp", "Use a temperature from 0 to 1.5."),
        ({"waveform_temp": "-0.1"}, "waveform_temp", "Use a temperature from 0 to 1.5."),
        ({"text_temp": "warm"}, "text_temp", "Enter a number such as 0.7."),
        ({"seed": "1.5"}, "seed", "A seed is a whole number."),
        ({"voice": "v2/xx_speaker_1"}, "voice", "There is no voice v2/xx_speaker_1; pick one from the list."),
        ({"engine": "espeak"}, "engine", "Select a valid choice. espeak is not one of the available choices."),
        ({"video_preset": "8k"}, "video_preset", "Select a valid choice. 8k is not one of the available choices."),
    ],
)
def test_invalid_input_is_shown_next_to_its_field_and_nothing_is_recorded(
    signed_in, settings, overrides, field, message
):
    settings.BARK_MAX_PROMPT_CHARS = 50

    response = signed_in.post(URL, form_data(**overrides))

    body = response.content.decode()
    assert response.status_code == 200
    assert response.context["form"].errors[field] == [message]
    assert f'<ul class="field-errors" id="id_{field}_error"><li>{message}</li></ul>' in body
    assert 'aria-invalid="true"' in body
    assert Job.objects.count() == 0 and OrmQ.objects.count() == 0


@pytest.mark.parametrize("engine", ["piper", "auto"])
def test_a_bark_voice_with_piper_is_refused_at_the_voice_field(signed_in, settings, tiny_bark, engine):
    settings.BARK_DEFAULT_ENGINE = "piper"

    response = signed_in.post(URL, form_data(engine=engine, voice="v2/en_speaker_6"))

    assert response.status_code == 200
    assert response.context["form"].errors["voice"] == [
        "That is a Bark voice, and the Piper engine cannot speak with it: "
        "pick one of Piper's voices, or the Bark engine."
    ]
    assert Job.objects.count() == 0


def test_a_voice_of_an_engine_that_cannot_run_is_not_a_choice(signed_in, settings):
    settings.BARK_MODELS_AVAILABLE = "false"
    reset_engines()

    response = signed_in.post(URL, form_data(engine="piper", voice="v2/en_speaker_6"))

    assert response.context["form"].errors["voice"] == ["There is no voice v2/en_speaker_6; pick one from the list."]
    assert Job.objects.count() == 0
    reset_engines()


def test_windows_line_breaks_count_as_one_character_like_the_counter_does(signed_in, settings):
    settings.BARK_MAX_PROMPT_CHARS = 10

    response = signed_in.post(URL, form_data(prompt="Hi.\r\nYo.\r\nOk", plan="1"))

    assert response.context["form"].errors == {}
    assert Job.objects.get().prompt == "Hi.\nYo.\nOk"


def test_plan_shows_what_would_run_without_queuing_anything(signed_in, user):
    text = "First sentence here. " * 15 + "And a last one."

    response = signed_in.post(URL, form_data(prompt=text, plan="1", seed="5"))

    body = response.content.decode()
    assert response.status_code == 200
    planned = response.context["planned"]
    assert planned.status == Job.Status.PLANNED and planned.owner == user
    assert planned.plan["segment_count"] == 2
    assert "Nothing was queued." in body and "2 segments" in body
    assert "<code>en_US-joe-medium</code>" in body and "<code>piper/en_US-joe-medium</code>" in body
    assert f"about {planned.plan['estimated_duration_s']:.0f} s" in body
    assert "<li>And a last one.</li>" in body or "And a last one.</li>" in body
    assert OrmQ.objects.count() == 0
    assert not Job.objects.filter(status=Job.Status.QUEUED).exists()


def test_submit_queues_a_job_owned_by_the_user_and_opens_its_page(signed_in, user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = signed_in.post(
            URL, form_data(text_temp="0.5", waveform_temp="0.9", seed="42", render_video="on", video_preset="720p")
        )

    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("job-detail", args=[job.pk])
    assert (job.status, job.owner, job.engine, job.voice) == ("queued", user, "piper", "piper/en_US-joe-medium")
    assert job.params["text_temp"] == 0.5 and job.params["waveform_temp"] == 0.9 and job.params["seed"] == 42
    assert job.params["render_video"] is True and job.params["video"]["preset"] == "720p"
    assert len(callbacks) == 1
    task = OrmQ.objects.get()
    assert task.func() == "synthesis.tasks.run_job_task" and task.task["args"] == (str(job.id),)


def test_automatic_engine_picks_one_that_can_run(signed_in, settings):
    settings.BARK_MODELS_AVAILABLE = "false"
    reset_engines()

    response = signed_in.post(URL, form_data(engine="auto"))

    assert response.status_code == 302
    assert Job.objects.get().engine == "piper"
    reset_engines()


def test_an_engine_that_cannot_run_is_refused_at_the_engine_field_plans_included(signed_in, settings):
    settings.BARK_MODELS_AVAILABLE = "false"
    reset_engines()

    submitted = signed_in.post(URL, form_data(engine="bark"))
    planned = signed_in.post(URL, form_data(engine="bark", plan="1"))

    message = "The bark engine cannot run here: disabled by BARK_MODELS_AVAILABLE=false."
    assert submitted.context["form"].errors["engine"] == [message] == planned.context["form"].errors["engine"]
    assert Job.objects.count() == 0
    reset_engines()


def test_when_no_engine_can_run_a_submit_says_why_and_a_plan_still_works(signed_in, settings, monkeypatch):
    from synthesis.engines.piper.engine import PiperEngine

    settings.BARK_MODELS_AVAILABLE = "false"
    reset_engines()
    monkeypatch.setattr(PiperEngine, "_missing", lambda self: "piper is switched off for this test")

    body = signed_in.get(URL).content.decode()
    submitted = signed_in.post(URL, form_data(engine="auto"))
    planned = signed_in.post(URL, form_data(engine="auto", plan="1"))

    assert '<option value="auto" selected>Automatic · none can run (plans only)</option>' in body
    assert submitted.context["form"].non_field_errors() == [
        "The bark engine cannot run here: disabled by BARK_MODELS_AVAILABLE=false. "
        "Choose another engine, or make a plan (dry run) instead."
    ]
    assert 'class="alert alert-error" role="alert"' in submitted.content.decode()
    assert planned.context["planned"].status == Job.Status.PLANNED
    assert Job.objects.count() == 1
    reset_engines()


def test_a_full_queue_is_a_form_error_that_says_when_to_come_back(signed_in, user, settings):
    settings.BARK_MAX_QUEUE_SIZE = 1
    make_job(user)

    response = signed_in.post(URL, form_data())

    [error] = response.context["form"].non_field_errors()
    assert error.startswith("The queue is full right now. Try again in about ")
    assert Job.objects.count() == 1
