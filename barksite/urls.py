from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("synthesis.api.urls")),
    path("v1/", include("synthesis.api.openai_urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("synthesis.urls")),
]
