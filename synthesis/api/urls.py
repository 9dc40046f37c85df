"""/api/: the REST routes, the OpenAPI schema and its browsable docs (assets served locally by
drf-spectacular-sidecar, so the docs work offline). Anything else under /api/ is the JSON 404 of
barksite.handlers."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from synthesis.api import views, voices

urlpatterns = [
    path("health", views.health, name="api-health"),
    path("capabilities", views.capabilities, name="api-capabilities"),
    path("bark/synthesize", views.synthesize, name="api-synthesize"),
    path("bark/jobs", views.job_list, name="api-jobs"),
    path("bark/jobs/<str:job_id>", views.job_detail, name="api-job"),
    path("bark/jobs/<str:job_id>/artifacts/<str:name>", views.job_artifact, name="api-job-artifact"),
    path("bark/jobs/<str:job_id>/cancel", views.job_cancel, name="api-job-cancel"),
    path("bark/jobs/<str:job_id>/stream", views.job_stream, name="api-job-stream"),
    path("voices", voices.voices, name="api-voices"),
    path("voices/<path:voice_id>", voices.voice_detail, name="api-voice"),
    path("schema", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]
