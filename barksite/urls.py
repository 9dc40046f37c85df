"""The site's URLs: the web UI, the API (/api/), OpenAI's (/v1/), the admin, /metrics; the error handlers."""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from synthesis.http.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    path("api/", include("synthesis.api.urls")),
    path("v1/", include("synthesis.api.openai_urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    # Pages name favicon.svg; this is for the browsers and tools that ask for /favicon.ico regardless.
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("", include("synthesis.urls")),
]

# JSON under /api/ and /v1/, the UI's own pages elsewhere (barksite/handlers.py).
handler400 = "barksite.handlers.bad_request"
handler403 = "barksite.handlers.permission_denied"
handler404 = "barksite.handlers.page_not_found"
handler500 = "barksite.handlers.server_error"
