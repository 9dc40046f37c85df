"""Fixtures for the web UI and admin tests (a pytest plugin: see conftest): people, signed-in clients and
jobs owned by them, finished by the real task function and the real Piper engine."""

import pytest
from django.test import Client

from synthesis.jobs.submit import JobRequest, submit_job
from synthesis.models import Job
from synthesis.tasks import run_job_task

PASSWORD = "correct horse battery staple"


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("ada", email="ada@example.org", password=PASSWORD)


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("grace", password=PASSWORD)


@pytest.fixture
def signed_in(client: Client, user) -> Client:
    client.force_login(user)
    return client


def make_job(owner, prompt: str = "Hello there. This is a test.", **options) -> Job:
    """A queued Piper job owned by `owner`, submitted as the web form submits it. (Its task reaches the
    queue only when the test's transaction commits, so outside `transactional_db` no worker sees it.)"""
    return submit_job(JobRequest(prompt=prompt, engine="piper", **options), owner=owner)


def finish(job: Job) -> Job:
    """Run `job` exactly as a django-q2 worker does, and return its fresh row."""
    run_job_task(str(job.id))
    job.refresh_from_db()
    return job


@pytest.fixture
def completed_job(user) -> Job:
    job = finish(make_job(user, seed=7))
    assert job.status == Job.Status.COMPLETED, job.error
    return job


@pytest.fixture
def failed_job(user) -> Job:
    """A real failure: Piper refusing a Bark voice, with the readable error the worker records."""
    job = Job.objects.create(
        prompt="Hello.", engine="piper", voice="v2/en_speaker_6", owner=user, plan={"segments": ["Hello."]}
    )
    job = finish(job)
    assert job.status == Job.Status.FAILED
    return job
