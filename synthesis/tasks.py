"""django-q2 entry points: thin on purpose. Each loads what it needs by id and calls one function; the
job row, not the queue, decides whether work happens (see `pipeline.run_job`)."""

from synthesis import jobs, pipeline, voices


def run_job_task(job_id: str) -> None:
    """Run job `job_id`, or a job of higher priority that is waiting (see pipeline.next_job_id)."""
    chosen = pipeline.next_job_id(preferred=job_id)
    if chosen is not None:
        pipeline.run_job(chosen)


def sweep_stale_jobs_task() -> dict[str, int]:
    return jobs.sweep_stale_jobs()


def build_voice_task(voice_id: str) -> None:
    voices.build_clip_voice(voice_id)
