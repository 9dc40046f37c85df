"""django-q2 entry points: thin on purpose. Each loads what it needs by id and calls one function; the
job row, not the queue, decides whether work happens (see `pipeline.run_job`)."""

from synthesis import jobs, pipeline


def run_job_task(job_id: str) -> None:
    pipeline.run_job(job_id)


def sweep_stale_jobs_task() -> dict[str, int]:
    return jobs.sweep_stale_jobs()
