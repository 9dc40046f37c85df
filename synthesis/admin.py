"""The operators' admin: read-only jobs with retry and cancel actions, API keys (shown once, revocable),
uploaded voices, and a service dashboard."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from synthesis.jobs.submit import cancel_job, retry_job
from synthesis.models import ApiKey, Job, Voice
from synthesis.templatetags.barksite import seconds
from synthesis.web import dashboard

# The library registers its own concrete APIKey model; barksite's keys are `synthesis.ApiKey`.
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)

_SHORT_ID = re.compile(r"^[0-9a-f]{4,8}$")
_LINE_BREAK = mark_safe("<br>")

admin.site.site_header = "barksite operations"
admin.site.site_title = "barksite admin"
admin.site.index_title = "Operations"
# The model list in a side bar costs ~300 px that the job list needs on a 1280 px screen; the breadcrumbs and
# the admin home lead everywhere it does.
admin.site.enable_nav_sidebar = False
TEXT_PREVIEW_CHARS = 60


def _pretty_json(value: Any) -> str:
    return format_html('<pre class="json">{}</pre>', json.dumps(value, indent=2, ensure_ascii=False))


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("short_id", "status_badge", "text", "engine_voice", "requested_by", "submitted", "duration")
    list_filter = ("status", "engine", "submitted_at")
    date_hierarchy = "submitted_at"
    search_fields = ("prompt",)
    search_help_text = "Search the text, or a job id (whole, or its first 4 to 8 characters)."
    list_select_related = ("owner", "api_key")
    list_per_page = 50
    actions = ("retry_jobs", "cancel_jobs")
    readonly_fields = (
        "status_badge", "duration", "requested_by", "progress_display", "error_display", "audio_player",
        "artifact_links", "params_display", "plan_display", "timings_display",
    )  # fmt: skip
    fieldsets = (
        (None, {"fields": ("id", "status_badge", "requested_by", "attempts", "progress_display", "error_display")}),
        ("Result", {"fields": ("audio_player", "artifact_links", "duration", "sample_rate", "engine", "model")}),
        ("Request", {"fields": ("prompt", "caption_text", "voice", "params_display", "priority", "deduplicated_from")}),
        ("Plan", {"fields": ("plan_display",)}),
        ("Timings", {"fields": ("submitted_at", "started_at", "completed_at", "failed_at", "cancelled_at")}),
        (None, {"fields": ("device", "dtype", "engine_settings", "heartbeat_at", "timings_display")}),
    )

    # Jobs are records of what happened: operators act on them (retry, cancel), never edit them, and
    # purge them with `manage.py purge_jobs`, which also removes their files.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        return False

    def has_operate_permission(self, request: HttpRequest) -> bool:
        """Retrying and cancelling need the job change permission, though the change form is read-only."""
        return request.user.has_perm("synthesis.change_job")

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        """The read-only page, with Retry or Cancel buttons that run the list's actions on this job."""
        job = self.get_object(request, unquote(object_id))
        action = None
        if job is not None and self.has_operate_permission(request):
            if job.status in (Job.Status.FAILED, Job.Status.CANCELLED):
                action = ("retry_jobs", "Retry this job")
            elif job.status in Job.ACTIVE:
                action = ("cancel_jobs", "Cancel this job")
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "job_action": action})

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip().lower()
        try:
            return found | queryset.filter(pk=uuid.UUID(term)), may_have_duplicates
        except ValueError:
            pass
        if _SHORT_ID.match(term):  # the list shows ids by their first 8 characters
            found = found | queryset.filter(pk__startswith=term)
        return found, may_have_duplicates

    # --- list columns ------------------------------------------------------------------------------------

    @admin.display(description="Job", ordering="id")
    def short_id(self, job: Job) -> str:
        return format_html("<code>{}</code>", str(job.id)[:8])

    @admin.display(description="Status", ordering="status")
    def status_badge(self, job: Job) -> str:
        badge = format_html('<span class="job-badge job-{}">{}</span>', job.status, job.get_status_display())
        if job.attempts > 1:  # a worker died under it at least once
            return format_html('{} <span class="job-attempts" title="attempts">×{}</span>', badge, job.attempts)
        return badge

    @admin.display(description="Text")
    def text(self, job: Job) -> str:
        prompt = " ".join(job.prompt.split())
        short = prompt if len(prompt) <= TEXT_PREVIEW_CHARS else prompt[: TEXT_PREVIEW_CHARS - 1].rstrip() + "…"
        return format_html('<span class="job-text" title="{}">{}</span>', prompt, short)

    @admin.display(description="Engine · voice", ordering="engine")
    def engine_voice(self, job: Job) -> str:
        return format_html('{}<br><span class="job-voice">{}</span>', job.engine, job.voice)

    @admin.display(description="Key or user")
    def requested_by(self, job: Job) -> str:
        if job.api_key is not None:
            return format_html("key {} <code>{}</code>", job.api_key.name, job.api_key.prefix)
        return job.origin

    @admin.display(description="Submitted", ordering="submitted_at")
    def submitted(self, job: Job) -> str:
        return date_format(timezone.localtime(job.submitted_at), "Y-m-d H:i")

    @admin.display(description="Duration", ordering="duration_s")
    def duration(self, job: Job) -> str:
        return seconds(job.duration_s) or "—"

    # --- detail fields -----------------------------------------------------------------------------------

    @admin.display(description="Progress")
    def progress_display(self, job: Job) -> str:
        stage = f", {job.stage}" if job.stage else ""
        return f"{job.segments_done} of {job.segments_total} segments ({job.progress:.0%}{stage})"

    @admin.display(description="Error")
    def error_display(self, job: Job) -> str:
        return format_html('<span class="job-error">{}</span>', job.error) if job.error else "—"

    @admin.display(description="Player")
    def audio_player(self, job: Job) -> str:
        players = []
        if job.audio:
            players.append(format_html('<audio controls preload="metadata" src="{}"></audio>', _file_url(job, "audio")))
        if job.video:
            players.append(
                format_html('<video controls preload="metadata" width="480" src="{}"></video>', _file_url(job, "video"))
            )
        return format_html_join(_LINE_BREAK, "{}", ((p,) for p in players)) if players else "—"

    @admin.display(description="Artifacts")
    def artifact_links(self, job: Job) -> str:
        rows = [
            (_file_url(job, name), Job.ARTIFACT_LABELS.get(name, name), file.name)
            for name, file in job.artifacts().items()
        ]
        if not rows:
            return "—"
        return format_html_join(_LINE_BREAK, '<a href="{}?download=1">{}</a> <code>{}</code>', rows)

    @admin.display(description="Parameters")
    def params_display(self, job: Job) -> str:
        return _pretty_json(job.params)

    @admin.display(description="Plan")
    def plan_display(self, job: Job) -> str:
        return _pretty_json(job.plan)

    @admin.display(description="Seconds per stage")
    def timings_display(self, job: Job) -> str:
        return _pretty_json(job.timings) if job.timings else "—"

    # --- actions -----------------------------------------------------------------------------------------

    @admin.action(description="Retry selected failed or cancelled jobs", permissions=["operate"])
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet) -> None:
        selected = list(queryset)
        done = sum(retry_job(job) for job in selected)
        self._report(request, done, len(selected), "queued again", "failed or cancelled")

    @admin.action(description="Cancel selected queued or running jobs", permissions=["operate"])
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet) -> None:
        selected = list(queryset)
        done = sum(cancel_job(job) for job in selected)
        self._report(request, done, len(selected), "cancelled", "queued or running")

    def _report(self, request: HttpRequest, done: int, selected: int, verb: str, eligible: str) -> None:
        text = f"{done} job{'s' if done != 1 else ''} {verb}."
        skipped = selected - done
        if skipped:
            text += f" {skipped} skipped: {'it was' if skipped == 1 else 'they were'} not {eligible}."
        self.message_user(request, text, messages.SUCCESS if done else messages.WARNING)

    # --- dashboard ---------------------------------------------------------------------------------------

    def get_urls(self) -> list:
        dashboard_url = path(
            "dashboard/", self.admin_site.admin_view(self.dashboard_view), name="synthesis_job_dashboard"
        )
        return [dashboard_url, *super().get_urls()]

    def dashboard_view(self, request: HttpRequest) -> TemplateResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Service dashboard",
            "is_nav_sidebar_enabled": False,  # the page needs the width
            **dashboard.report(),
        }
        return TemplateResponse(request, "admin/synthesis/dashboard.html", context)


def _file_url(job: Job, name: str) -> str:
    return reverse("job-file", args=[job.pk, name])


@admin.register(ApiKey)
class ApiKeyAdmin(APIKeyModelAdmin):
    list_display = (  # type: ignore[assignment]  # the library's stub fixes its own tuple's length
        "name", "prefix", "owner", "state", "created_on", "last_used_at", "rate_limit", "expiry_date",
    )  # fmt: skip
    list_filter = ("revoked", "created")  # type: ignore[assignment]  # as above
    list_select_related = ("owner",)
    fields = ("name", "prefix", "owner", "rate_limit_per_min", "expiry_date", "revoked", "created", "last_used_at")
    autocomplete_fields = ("owner",)
    actions = ("revoke_keys",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return (*super().get_readonly_fields(request, obj), "created", "last_used_at")

    def save_model(self, request: HttpRequest, obj: Any, form: Any = None, change: bool = False) -> None:
        """Show a new key once, in full; only its prefix and hash are stored."""
        if change:
            obj.save()
            return
        key = ApiKey.objects.assign_key(obj)
        obj.save()
        self.message_user(
            request,
            format_html(
                "API key “{}” created. Copy it now; it will not be shown again: <code class='new-key'>{}</code>",
                obj.name,
                key,
            ),
            messages.WARNING,
        )

    @admin.display(description="State", ordering="revoked")
    def state(self, key: ApiKey) -> str:
        if key.revoked:
            return format_html('<span class="job-badge job-failed">{}</span>', "revoked")
        if key.has_expired:
            return format_html('<span class="job-badge job-cancelled">{}</span>', "expired")
        return format_html('<span class="job-badge job-completed">{}</span>', "active")

    @admin.display(description="Created", ordering="created")
    def created_on(self, key: ApiKey) -> str:
        return date_format(timezone.localtime(key.created), "Y-m-d H:i")

    @admin.display(description="Requests / min")
    def rate_limit(self, key: ApiKey) -> str:
        if key.rate_limit_per_min:
            return str(key.rate_limit_per_min)
        return f"default ({settings.BARK_RATE_LIMIT_PER_MIN})"

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet) -> None:
        revoked = queryset.filter(revoked=False).update(revoked=True)
        text = f"{revoked} key{'s' if revoked != 1 else ''} revoked; clients using them now get 401."
        self.message_user(request, text, messages.SUCCESS)


@admin.register(Voice)
class VoiceAdmin(admin.ModelAdmin):
    list_display = ("name", "voice_id", "source", "method", "status", "owner", "api_key", "created_at")
    list_filter = ("status", "source", "method")
    search_fields = ("name", "transcript")
    list_select_related = ("owner", "api_key")
