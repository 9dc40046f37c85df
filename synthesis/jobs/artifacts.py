"""Where job artifacts go, and how they get there without ever being half-written.

Paths are `jobs/<job_id>/<prefix>.<ext>` inside BARK_OUTPUT_ROOT (the media root). A request's
`output_path` only picks the prefix, after `safe_prefix` has refused anything that could leave that
directory. Files are written to a temporary name beside their destination and renamed into place, so
a crash leaves either the old state or the whole file, and the job row only ever names whole files.
"""

import errno
import os
import re
import tempfile
from collections.abc import Callable, Collection
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

from django.core.files import File
from django.core.files.storage import FileSystemStorage, default_storage

if TYPE_CHECKING:
    from synthesis.models import Job

DEFAULT_PREFIX = "audio"
_PREFIX_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class UnsafeOutputPath(ValueError):
    """An output_path that could escape the job's directory."""


class StorageFull(OSError):
    """No space was left to store an artifact (the disk or a quota is full); nothing half-written stays."""


# ENOSPC: the disk is full; EDQUOT: a quota; EFBIG: a file size limit (RLIMIT_FSIZE) or the filesystem's own.
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def safe_prefix(output_path: str | None) -> str:
    """The artifact prefix for a requested output_path, or UnsafeOutputPath saying what is wrong.

    Accepts `name` or `dir/name` made of letters, digits, `.`, `_` and `-`; an extension the caller
    added (`speech.wav`) is dropped, since each artifact gets its own.
    """
    if output_path is None or output_path.strip() == "":
        return DEFAULT_PREFIX
    if "\x00" in output_path:
        raise UnsafeOutputPath("output_path contains a NUL byte.")
    if output_path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", output_path):
        raise UnsafeOutputPath("output_path must be relative (a name like 'greeting' or 'chapter1/intro').")
    parts = output_path.replace("\\", "/").strip("/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafeOutputPath("output_path may not contain '..', '.' or empty parts.")
    if len(parts) > 4 or not all(_PREFIX_PART.match(part) for part in parts):
        raise UnsafeOutputPath(
            "output_path may hold up to 4 parts of letters, digits, '.', '_' and '-' (64 characters each)."
        )
    stem, ext = os.path.splitext(parts[-1])
    if ext.lower() in {".wav", ".mp3", ".mp4", ".flac", ".srt", ".vtt", ".json", ".ogg", ".opus", ".aac"}:
        parts[-1] = stem
    return "/".join(parts)


def artifact_name(job: "Job", ext: str) -> str:
    return f"jobs/{job.id}/{job.output_prefix}.{ext}"


def store_artifact(job: "Job", field: str, ext: str, write: Callable[[Path], object]) -> int:
    """Write one artifact via `write(path)` to a temporary file, move it into place, point `job.<field>`
    at it (unsaved) and return its size in bytes."""
    name, size = store_file(artifact_name(job, ext), write)
    getattr(job, field).name = name
    job.artifact_sizes = {**job.artifact_sizes, field: size}
    return size


def store_segment(job: "Job", index: int, write: Callable[[Path], object]) -> None:
    """Store one finished segment's WAV while the job still runs (what streams and players read early)."""
    store_file(job.segment_name(index), write)


def store_file(name: str, write: Callable[[Path], object]) -> tuple[str, int]:
    """Write `name` in the default storage via `write(path)`, atomically; return its final name and size. A full
    disk raises StorageFull, saying so in plain words."""
    try:
        return _store_file(name, write)
    except OSError as exc:
        if exc.errno not in _NO_SPACE:
            raise
        raise StorageFull(
            exc.errno,
            f"No space left to store {Path(name).name}: the output storage (BARK_OUTPUT_ROOT) or the scratch "
            "directory is full. Free some space (manage.py purge_jobs removes old jobs' files), then retry the job.",
        ) from exc


def _store_file(name: str, write: Callable[[Path], object]) -> tuple[str, int]:
    storage = default_storage
    if isinstance(storage, FileSystemStorage):
        destination = Path(storage.path(name))
        root = Path(storage.location).resolve()
        # A symlink planted inside the output root must not carry the write elsewhere; checked before
        # mkdir, which would otherwise create directories at the symlink's target.
        if not destination.parent.resolve().is_relative_to(root):
            raise UnsafeOutputPath(f"{name} resolves outside BARK_OUTPUT_ROOT.")
        destination.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(destination, write)
        return name, destination.stat().st_size
    # An object store (django-storages' S3) publishes an object only once its upload completed, and a PUT
    # over an existing name replaces it whole: the file is made in a local scratch directory, then sent once
    # under its final name (`file_overwrite` keeps that name; a requeued job overwrites its earlier try).
    with tempfile.TemporaryDirectory(prefix="bark-artifact-") as scratch:
        tmp = Path(scratch) / Path(name).name
        write(tmp)
        with tmp.open("rb") as handle:
            saved = storage.save(name, File(handle))
        if saved != name:
            storage.delete(saved)
            raise RuntimeError(f"The storage renamed {name} to {saved}; configure it to overwrite (file_overwrite).")
        return name, tmp.stat().st_size


def delete_job_files(job_id: str, keep: Collection[str] = ()) -> None:
    """Delete every stored file under `jobs/<job_id>/` (segments included) except the names in `keep`."""
    storage = default_storage

    def walk(directory: str) -> None:
        try:
            folders, files = storage.listdir(directory)
        except FileNotFoundError:
            return
        for file in files:
            if f"{directory}/{file}" not in keep:
                storage.delete(f"{directory}/{file}")
        for folder in folders:
            walk(f"{directory}/{folder}")
        if isinstance(storage, FileSystemStorage):  # object stores have no folders to leave behind
            with suppress(OSError):  # not empty: it holds a kept file
                Path(storage.path(directory)).rmdir()

    walk(f"jobs/{job_id}")


def write_atomically(destination: Path, write: Callable[[Path], object]) -> None:
    """`write(path)` to a temporary name beside `destination`, then rename: never a half-written file."""
    fd, tmp = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, destination)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
