"""The synthesis app's configuration: when it is ready, each django-q2 worker learns to hand its job back on a stop."""

from django.apps import AppConfig


class SynthesisConfig(AppConfig):
    name = "synthesis"
    verbose_name = "Synthesis"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from synthesis.jobs.workers import install_stop_handlers

        # Each django-q2 worker hands its job back and exits on SIGTERM/SIGINT (see synthesis/jobs/workers.py).
        post_spawn.connect(install_stop_handlers, dispatch_uid="synthesis-stop-handlers")
