"""/v1/: the OpenAI-compatible routes (base_url for OpenAI's client libraries)."""

from django.urls import path, re_path

from synthesis.api import openai

urlpatterns = [
    path("audio/speech", openai.SpeechView.as_view(), name="openai-speech"),
    path("models", openai.ModelListView.as_view(), name="openai-models"),
    path("models/<path:model_id>", openai.ModelDetailView.as_view(), name="openai-model"),  # ids hold "/"
    re_path(r"^", openai.not_found),
]
