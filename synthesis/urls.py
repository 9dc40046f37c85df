"""The web UI's pages (mounted at the site root; sign-in lives under /accounts/)."""

from django.urls import path

from synthesis.web import views

urlpatterns = [
    path("", views.job_new, name="job-new"),
    path("jobs/", views.job_list, name="job-list"),
    path("jobs/<uuid:pk>/", views.job_detail, name="job-detail"),
    path("jobs/<uuid:pk>/status.json", views.job_status, name="job-status"),
    path("jobs/<uuid:pk>/files/<slug:name>", views.job_file, name="job-file"),
    path("jobs/<uuid:pk>/cancel", views.job_cancel, name="job-cancel"),
    path("jobs/<uuid:pk>/retry", views.job_retry, name="job-retry"),
]
