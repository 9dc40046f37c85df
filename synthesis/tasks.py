"""django-q2 entry points: thin on purpose. Each loads what it needs by id and calls one function; the
job row, not the queue, decides whether work happens (see `pipeline.run_job`)."""

from synthesis.jobs import recovery, voices, workers


def run_job_task(job_id: str) -> None:
    """Run job `job_id`, or a more urgent waiting job (see pipeline.next_job_id) whose engine takes work."""
    workers.run_next_job(preferred=job_id)


def sweep_stale_jobs_task() -> dict[str, int]:
    return recovery.sweep()


def build_voice_task(voice_id: str) -> None:
    voices.build_clip_voice(voice_id)
