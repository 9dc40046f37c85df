from django.contrib import admin
from django.urls import include, path

from synthesis.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    path("api/", include("synthesis.api.urls")),
    path("v1/", include("synthesis.api.openai_urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("synthesis.urls")),
]
