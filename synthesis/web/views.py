"""The web UI: plain function views over `synthesis.jobs.submit`. Every job view looks the job up through
`synthesis.jobs.selectors` (the user's own jobs, their keys' jobs, every job for staff), so any other job is a 404,
never a 403 that confirms it exists."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from synthesis.engines import EngineUnavailable, all_health
from synthesis.http.downloads import serve_artifact
from synthesis.jobs import breaker, selectors
from synthesis.jobs.submit import InvalidRequest, QueueFull, cancel_job, retry_job, submit_job
from synthesis.models import Job
from synthesis.web.forms import JobForm

JOBS_PER_PAGE = 20
# Domain errors name request fields; these are the form fields that show them.
FORM_FIELD_FOR = {"video": "video_preset"}


@login_required
@require_http_methods(["GET", "POST"])
def job_new(request: HttpRequest) -> HttpResponse:
    """The form; its "Plan" button records a dry run and shows the plan, "Submit" queues the job."""
    health = all_health()
    auto = breaker.default_engine()
    planned: Job | None = None
    if request.method == "POST":
        form = JobForm(request.POST, user=request.user, health=health, auto=auto)
        dry_run = "plan" in request.POST
        if form.is_valid():
            try:
                job = submit_job(form.to_request(dry_run=dry_run), owner=request.user)
            except InvalidRequest as exc:
                field = FORM_FIELD_FOR.get(exc.field, exc.field)
                form.add_error(field if field in form.fields else None, exc.message)
            except QueueFull as exc:
                form.add_error(None, f"The queue is full right now. Try again in about {exc.retry_after} seconds.")
            except EngineUnavailable as exc:
                reason = str(exc).rstrip(".")
                form.add_error(None, f"{reason}. Choose another engine, or make a plan (dry run) instead.")
            else:
                if not dry_run:
                    return redirect("job-detail", pk=job.pk)
                planned = job
    else:
        form = JobForm(user=request.user, health=health, auto=auto)
    context = {"form": form, "health": health, "planned": planned, "max_chars": settings.BARK_MAX_PROMPT_CHARS}
    return render(request, "synthesis/job_new.html", context)


@login_required
@require_GET
def job_list(request: HttpRequest) -> HttpResponse:
    """The jobs the user may see, newest first, without dry runs (their plan was shown when they were made)."""
    jobs = selectors.job_list(_caller(request)).select_related("owner", "api_key")
    page = Paginator(jobs, JOBS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "synthesis/job_list.html", {"page": page})


@login_required
@require_GET
def job_detail(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    job = _own_job(request, pk)
    context = {
        "job": job,
        "plan": job.get_plan(),
        "state": describe(job),
        "artifacts": artifact_links(job),
        "timeline": timeline(job),
    }
    return render(request, "synthesis/job_detail.html", context)


@login_required
@require_GET
def job_status(request: HttpRequest, pk: uuid.UUID) -> JsonResponse:
    """What the job page polls while the job is waiting or running."""
    return JsonResponse(describe(_own_job(request, pk)))


@login_required
@require_GET
def job_file(request: HttpRequest, pk: uuid.UUID, name: str) -> HttpResponseBase:
    """One artifact of a job the user may see (staff see all: the admin's player and links use this view too)."""
    try:
        file = selectors.get_artifact(_own_job(request, pk), name)
    except selectors.NotVisible as exc:
        raise Http404(str(exc)) from None
    return serve_artifact(request, file, as_attachment="download" in request.GET)


@login_required
@require_POST
def job_cancel(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    job = _operable_job(request, pk)
    if cancel_job(job):
        messages.success(request, "The job was cancelled.")
    else:
        messages.info(request, f"The job is {job.status}, so there was nothing to cancel.")
    return redirect("job-detail", pk=job.pk)


@login_required
@require_POST
def job_retry(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    job = _operable_job(request, pk)
    if retry_job(job):
        messages.success(request, "The job is queued again.")
    else:
        messages.info(request, f"Only failed or cancelled jobs can be retried; this one is {job.status}.")
    return redirect("job-detail", pk=job.pk)


def _caller(request: HttpRequest) -> selectors.Caller:
    return selectors.Caller.of(request.user)


def _own_job(request: HttpRequest, pk: uuid.UUID) -> Job:
    try:
        return selectors.get_job(_caller(request), pk)
    except selectors.NotVisible as exc:
        raise Http404(str(exc)) from None


def _operable_job(request: HttpRequest, pk: uuid.UUID) -> Job:
    """A job the user may cancel or retry: one of theirs (or their keys'), or any, for staff who may operate
    jobs in the admin too."""
    job = _own_job(request, pk)
    theirs = job.owner_id == request.user.pk or (job.api_key is not None and job.api_key.owner_id == request.user.pk)
    if not theirs and not request.user.has_perm("synthesis.change_job"):
        raise PermissionDenied("Only the job's owner, or an operator, may cancel or retry it.")
    return job


# --- what the pages show about a job ---------------------------------------------------------------------


def describe(job: Job) -> dict[str, Any]:
    """The job's state in words and numbers: the status JSON, and the job page's first render."""
    # Before a worker starts, the plan knows how many segments there will be.
    done, total = job.segments_done, job.segments_total or len(job.get_plan().segments)
    if job.status == Job.Status.QUEUED:
        ahead = (
            Job.objects.filter(status=Job.Status.QUEUED)
            .filter(Q(priority__gt=job.priority) | Q(priority=job.priority, submitted_at__lt=job.submitted_at))
            .count()
        )
        summary = "Waiting for a worker" + (f" ({ahead} job{'s' if ahead != 1 else ''} ahead)" if ahead else "")
    elif job.status == Job.Status.RUNNING:
        if job.stage == "video":
            summary = "Rendering the video"
        elif total:
            summary = f"Speaking: {done} of {total} segment{'s' if total != 1 else ''} done"
        else:
            summary = "Starting"
    else:
        summary = {
            str(Job.Status.PLANNED): "Planned only (dry run); nothing was run",
            Job.Status.COMPLETED: "Done",
            Job.Status.FAILED: "Failed",
            Job.Status.CANCELLED: "Cancelled",
        }[job.status]
    return {
        "id": str(job.id),
        "status": job.status,
        "label": job.get_status_display().capitalize(),
        "summary": summary,
        "progress": round(job.progress, 3),
        "percent": round(job.progress * 100),
        "segments_done": done,
        "segments_total": total,
        "stage": job.stage,
        "finished": job.is_finished,
        "error": job.error,
        "duration_s": job.duration_s,
    }


def artifact_links(job: Job) -> list[dict[str, Any]]:
    """One entry per stored artifact: its name, label, URL and size."""
    links = []
    for name, file in job.artifacts().items():
        field = Job.ARTIFACT_FIELDS[name]
        links.append(
            {
                "name": name,
                "label": Job.ARTIFACT_LABELS.get(name, name),
                "filename": file.name.rsplit("/", 1)[-1],
                "url": reverse("job-file", args=[job.pk, name]),
                "size": job.artifact_sizes.get(field, job.artifact_sizes.get(name)),
            }
        )
    return links


def timeline(job: Job) -> dict[str, list[tuple[str, Any]]]:
    """The job page's timings: the moments it changed state, and how long each part took (seconds)."""
    moments = [
        (label, moment)
        for label, moment in (
            ("Submitted", job.submitted_at),
            ("Started", job.started_at),
            ("Completed", job.completed_at),
            ("Failed", job.failed_at),
            ("Cancelled", job.cancelled_at),
        )
        if moment
    ]
    durations: list[tuple[str, Any]] = []
    if job.started_at and not job.deduplicated_from_id:
        durations.append(("Waited in the queue", (job.started_at - job.submitted_at).total_seconds()))
        if job.completed_at:
            durations.append(("Ran for", (job.completed_at - job.started_at).total_seconds()))
    stage_labels = {"audio_s": "Speech synthesis", "video_s": "Video rendering", "failed_after_s": "Failed after"}
    for key, seconds in job.timings.items():
        durations.append((stage_labels.get(key, key.removesuffix("_s").replace("_", " ").capitalize()), seconds))
    return {"moments": moments, "durations": durations}
