"""Uploaded voices in the admin: the list says how each clip voice was cloned, and filters by it."""

from django.urls import reverse

from synthesis.models import Voice

LIST = reverse("admin:synthesis_voice_changelist")


def test_the_list_shows_how_each_voice_was_made_and_filters_by_method(admin_client):
    Voice.objects.create(name="Read aloud", source="clip", method="hubert", prompt_file="voices/a.npz")
    Voice.objects.create(name="From words", source="clip", method="transcript", prompt_file="voices/b.npz")
    Voice.objects.create(name="Preset", source="npz", prompt_file="voices/c.npz")

    body = admin_client.get(LIST).content.decode()
    hubert_only = admin_client.get(LIST, {"method__exact": "hubert"}).content.decode()

    assert '<td class="field-method">HuBERT: semantic tokens from the audio</td>' in body
    assert '<td class="field-method">Transcript: semantic tokens from the words</td>' in body
    assert "Read aloud" in hubert_only and "From words" not in hubert_only and "Preset" not in hubert_only
