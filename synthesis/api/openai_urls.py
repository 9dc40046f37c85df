"""/v1/: the OpenAI-compatible routes (base_url for OpenAI's client libraries); an unknown path is the
OpenAI-shaped 404 of barksite.handlers."""

from django.urls import path

from synthesis.api import openai

urlpatterns = [
    path("audio/speech", openai.SpeechView.as_view(), name="openai-speech"),
    path("models", openai.ModelListView.as_view(), name="openai-models"),
    path("models/<path:model_id>", openai.ModelDetailView.as_view(), name="openai-model"),  # ids hold "/"
]
