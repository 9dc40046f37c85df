"""Which jobs, files and voices a caller may see: decided here once, for the web pages, the API, downloads and
streams alike (like DRF's `get_object`, a job outside the caller's set is "not found", never "forbidden", so ids of
others cannot be probed).

- An API key sees the jobs it submitted and the voices it uploaded.
- A signed-in user sees their own jobs and voices and those of the API keys they own; staff (operators) see every
  job, as the admin does.
- The shared `BARK_API_KEY`, the open API and `manage.py synthesize` share the jobs and voices of nobody.

Lists leave dry runs out (their plan was in the answer that made them) unless the caller asks for planned jobs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Model, Q, QuerySet
from django.db.models.fields.files import FieldFile

from synthesis.engines import CUSTOM_PREFIX
from synthesis.models import ApiKey, Job, Voice

# Who asked, as the web and the API know it: a signed-in user, an anonymous visitor, or nobody (a key, the CLI).
Owner = AbstractBaseUser | AnonymousUser | None


class NotVisible(LookupError):
    """Nothing by that id that this caller may see; the message says so without telling which."""


@dataclass(frozen=True)
class Caller:
    """Who is asking: a signed-in user, a database API key, or neither (shared key, open API, terminal)."""

    user: Any = None
    api_key: ApiKey | None = None

    @classmethod
    def of(cls, owner: Owner = None, api_key: ApiKey | None = None) -> Caller:
        return cls(user=owner if getattr(owner, "is_authenticated", False) else None, api_key=api_key)

    @property
    def is_staff(self) -> bool:
        return self.api_key is None and self.user is not None and self.user.is_staff

    def _mine(self) -> Q:
        if self.api_key is not None:
            return Q(api_key=self.api_key)
        if self.user is not None:
            return Q(owner=self.user) | Q(api_key__owner=self.user)
        return Q(api_key__isnull=True, owner__isnull=True)


def visible_jobs(caller: Caller) -> QuerySet[Job]:
    return Job.objects.all() if caller.is_staff else Job.objects.filter(caller._mine())


def job_list(caller: Caller, status: str | None = None) -> QuerySet[Job]:
    """The caller's jobs newest first, in one status or (without one) all but dry runs."""
    jobs = visible_jobs(caller).order_by("-submitted_at")
    return jobs.filter(status=status) if status is not None else jobs.exclude(status=Job.Status.PLANNED)


def get_job(caller: Caller, job_id: str | uuid.UUID) -> Job:
    """The job, or NotVisible whether it does not exist or belongs to someone else."""
    try:
        pk = job_id if isinstance(job_id, uuid.UUID) else uuid.UUID(job_id)
    except ValueError:
        raise NotVisible(f"There is no job {job_id!r}: job ids are UUIDs.") from None
    job = visible_jobs(caller).filter(pk=pk).first()
    if job is None:
        raise NotVisible(f"There is no job {pk} visible to this caller.")
    return job


def get_artifact(job: Job, name: str) -> FieldFile:
    """The job's stored file `name`, or NotVisible saying whether it never existed or is gone."""
    artifacts = job.artifacts()
    if name not in artifacts:
        available = ", ".join(artifacts) or "none yet"
        raise NotVisible(f"Job {job.id} has no {name!r} artifact (available: {available}).")
    file = artifacts[name]
    if not file.storage.exists(file.name):
        raise NotVisible(f"The {name} file of job {job.id} is gone from storage (purged?).")
    return file  # type: ignore[no-any-return]  # django-stubs types a model's FileField attribute as Any


Upload = TypeVar("Upload", bound=Model)  # a model whose rows someone uploads (owner, api_key)


def uploaded_by(caller: Caller, uploads: QuerySet[Upload]) -> QuerySet[Upload]:
    """The rows of `uploads` (a model with `owner` and `api_key`: voices, consents) that the caller made: a key sees
    its own, an account its own and its keys', an anonymous caller the anonymous ones. Staff get no more: what a
    person uploads is theirs."""
    if caller.api_key is not None:
        return uploads.filter(api_key=caller.api_key)
    if caller.user is not None:
        return uploads.filter(Q(owner=caller.user) | Q(api_key__owner=caller.user))
    return uploads.filter(owner__isnull=True, api_key__isnull=True)


def usable_voices(caller: Caller) -> QuerySet[Voice]:
    """The uploaded voices a caller may speak with and manage."""
    return uploaded_by(caller, Voice.objects.all())


def get_voice(caller: Caller, voice_id: str) -> Voice:
    """An uploaded voice by `custom/<uuid>` or bare uuid, or NotVisible."""
    try:
        pk = uuid.UUID(voice_id.removeprefix(CUSTOM_PREFIX))
    except ValueError:
        raise NotVisible(f"There is no voice {voice_id!r}: voice ids are {CUSTOM_PREFIX}<uuid>.") from None
    voice = usable_voices(caller).filter(pk=pk).first()
    if voice is None:
        raise NotVisible(f"There is no voice {CUSTOM_PREFIX}{pk} of yours.")
    return voice
