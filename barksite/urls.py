from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("synthesis.api.urls")),
    path("v1/", include("synthesis.api.openai_urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("synthesis.urls")),
]

# JSON under /api/ and /v1/, the UI's own pages elsewhere (barksite/handlers.py).
handler400 = "barksite.handlers.bad_request"
handler403 = "barksite.handlers.permission_denied"
handler404 = "barksite.handlers.page_not_found"
handler500 = "barksite.handlers.server_error"
