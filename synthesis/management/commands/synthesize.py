"""`manage.py synthesize "text" --out hello.wav [--video out.mp4]`: the service's pipeline from a terminal.

Every run is recorded as a Job, like a request from the web. By default the job runs right here with a
progress bar; `--enqueue` hands it to the workers instead and prints its id, and `--wait` then follows it to
the end. Bad arguments fail before anything slow: the pipeline (and with it the engines) is imported only once
the request has passed validation.
"""

import argparse
import math
import os
import shutil
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models.fields.files import FieldFile

from synthesis.engines import ENGINE_NAMES, EngineUnavailable
from synthesis.jobs.submit import TEMPERATURE_RANGE, InvalidRequest, JobRequest, QueueFull, submit_job
from synthesis.media.video_options import DEFAULT_PRESET, PRESETS
from synthesis.models import Job

MIN_TEMP, MAX_TEMP = TEMPERATURE_RANGE


def temperature(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not MIN_TEMP <= number <= MAX_TEMP:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"use a temperature from {MIN_TEMP} to {MAX_TEMP} (e.g. 0.7), not {value!r}")
    return number


class Command(BaseCommand):
    help = "Synthesize text to a WAV file (or queue it for the workers with --enqueue)."
    # The system checks import every URL module (the API, its renderers, scipy): seconds before a typo in an
    # argument could be reported. bin/serve and `manage.py check` run them; this command serves no URL.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("text", help="The text to speak; '-' reads it from standard input.")
        parser.add_argument(
            "--engine", choices=ENGINE_NAMES, help="Default: Bark when its weights resolve, else Piper."
        )
        parser.add_argument("--voice", help="e.g. v2/en_speaker_6 (Bark) or piper/en_US-joe-medium.")
        parser.add_argument("--seed", type=int, help="Make the result reproducible.")
        parser.add_argument("--text-temp", type=temperature, default=0.7, help="0.0-1.5 (default 0.7).")
        parser.add_argument("--waveform-temp", type=temperature, default=0.7, help="0.0-1.5 (default 0.7).")
        parser.add_argument("--out", type=Path, help="Where to copy the WAV (default: only the job's artifact).")
        parser.add_argument("--video", type=Path, help="Also render a captioned MP4 and copy it here.")
        parser.add_argument(
            "--video-preset", choices=list(PRESETS), default=DEFAULT_PRESET, help=f"Default {DEFAULT_PRESET}."
        )
        parser.add_argument("--enqueue", action="store_true", help="Queue the job for the workers and exit.")
        parser.add_argument(
            "--wait",
            action="store_true",
            help="With --enqueue: wait until the workers finish it (--out, --video apply).",
        )

    def handle(self, *args, **options) -> None:
        text = sys.stdin.read() if options["text"] == "-" else options["text"]
        if options["wait"] and not options["enqueue"]:
            raise CommandError("--wait goes with --enqueue (without --enqueue the job runs here and is waited for).")
        out: Path | None = options["out"]
        video: Path | None = options["video"]
        if out is not None:
            _check_writable(out, "--out", ".wav")
        if video is not None:
            _check_writable(video, "--video", ".mp4")
        job = _submit(_request(text, options), inline=not options["enqueue"])

        if options["enqueue"]:
            self.stdout.write(f"Queued job {job.id} ({job.engine}, {len(job.get_plan().segments)} segment(s)).")
            if not options["wait"]:
                if out is not None or video is not None:
                    self.stdout.write("--out and --video are ignored with --enqueue: download the job's files later.")
                return
            job = self._wait(job)
        elif job.status == Job.Status.RUNNING:  # claimed for us; a deduplicated job is already completed
            job = _run_here(job)
        if job.status != Job.Status.COMPLETED:
            raise CommandError(f"Job {job.id} {job.status}: {job.error or 'no error recorded'}")
        self._deliver(job, out, video, options["video_preset"])

    def _deliver(self, job: Job, out: Path | None, video: Path | None, preset: str) -> None:
        """Copy the finished job's files where the options asked, and say what was written."""
        if out is not None:
            _copy(job.audio, out)
        if video is not None:
            _copy(job.video, video)
            self.stdout.write(f"Wrote {video} ({preset}, {job.artifact_sizes.get('video', 0)} bytes).")
        where = out or f"{job.audio.name} in {_storage_place()}"
        dedupe = f", reused from job {job.deduplicated_from_id}" if job.deduplicated_from_id else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {where}: {job.duration_s:.2f} s at {job.sample_rate} Hz "
                f"({job.engine}, {job.model}, {job.device or 'cpu'}{dedupe}); job {job.id}."
            )
        )

    def _wait(self, job: Job) -> Job:
        """Follow a queued job until a worker finishes it, with a progress bar of its segments."""
        from tqdm import tqdm

        from synthesis.api.health import live_clusters

        if live_clusters() == 0:
            self.stdout.write("No worker is running yet: the job starts once bin/serve (or manage.py runworkers) runs.")
        with tqdm(total=len(job.get_plan().segments), unit="segment", desc=job.engine, disable=None) as bar:
            while job.status in Job.ACTIVE:
                time.sleep(0.5)
                job.refresh_from_db()
                bar.update(job.segments_done - bar.n)
        return job


def _request(text: str, options: dict) -> JobRequest:
    video: Path | None = options["video"]
    return JobRequest(
        prompt=text,
        engine=options["engine"],
        voice=options["voice"],
        seed=options["seed"],
        text_temp=options["text_temp"],
        waveform_temp=options["waveform_temp"],
        render_video=video is not None,
        video={"preset": options["video_preset"]} if video is not None else {},
        dry_run=False,
    )


def _submit(request: JobRequest, inline: bool) -> Job:
    try:
        return submit_job(request, inline=inline)
    except InvalidRequest as exc:
        raise CommandError(f"{exc.field}: {exc.message}") from None
    except (EngineUnavailable, QueueFull) as exc:
        raise CommandError(str(exc)) from None


def _run_here(job: Job) -> Job:
    """Run a job claimed for this process, with a progress bar of its segments; the job as it ended."""
    from tqdm import tqdm

    from synthesis.jobs.pipeline import run_claimed_job

    with tqdm(total=len(job.get_plan().segments), unit="segment", desc=job.engine, disable=None) as bar:
        run_claimed_job(job, on_progress=lambda done, _total: bar.update(done - bar.n))
    job.refresh_from_db()
    return job


def _check_writable(out: Path, flag: str, suffix: str) -> None:
    """Refuse an output the job could never be copied to, before spending minutes on synthesis."""
    if out.is_dir():
        raise CommandError(f"{flag} {out} is a directory; give a file name such as {out / ('speech' + suffix)}.")
    if out.suffix.lower() != suffix:
        raise CommandError(f"{flag} {out} must end in {suffix}.")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise CommandError(f"{flag} {out}: the directory {parent} does not exist.")
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise CommandError(f"{flag} {out}: no permission to write there.")


def _storage_place() -> str:
    bucket = settings.BARK_S3_BUCKET
    return f"bucket {bucket}" if bucket else str(settings.MEDIA_ROOT)


def _copy(source: FieldFile, destination: Path) -> None:
    """Copy a stored artifact under a temporary name, then rename: the destination is never half-written."""
    tmp = destination.with_name(f".{destination.name}.part")
    try:
        with source.open("rb") as reader, tmp.open("wb") as writer:
            shutil.copyfileobj(reader, writer)
        os.replace(tmp, destination)
    finally:
        tmp.unlink(missing_ok=True)
