"""/v1/: the OpenAI-compatible routes (base_url for OpenAI's client libraries); an unknown path is the
OpenAI-shaped 404 of barksite.handlers."""

from django.urls import path

from synthesis.api import openai, openai_voices

urlpatterns = [
    path("audio/speech", openai.SpeechView.as_view(), name="openai-speech"),
    path("audio/voices", openai_voices.voices, name="openai-voices"),
    path("audio/voices/<str:voice_id>", openai_voices.voice_detail, name="openai-voice"),
    path("audio/voice_consents", openai_voices.voice_consents, name="openai-voice-consents"),
    path("audio/voice_consents/<str:consent_id>", openai_voices.voice_consent_detail, name="openai-voice-consent"),
    path("models", openai.ModelListView.as_view(), name="openai-models"),
    path("models/<path:model_id>", openai.ModelDetailView.as_view(), name="openai-model"),  # ids hold "/"
]
