"""Serving a stored artifact: the right content type, and single byte ranges so that browsers can seek in
audio and video. Callers check who may see the job first; this module only streams bytes."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import IO, Any

from django.conf import settings
from django.core.files.storage import Storage
from django.db.models.fields.files import FieldFile
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils.http import content_disposition_header

# mimetypes' answers vary by platform (audio/x-wav, no SRT at all); these are what browsers expect.
CONTENT_TYPES = {
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".aac": "audio/aac",
    ".mp4": "video/mp4",
    ".srt": "application/x-subrip",
    ".vtt": "text/vtt",
    ".json": "application/json",
}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 64 * 1024


def content_type_for(name: str) -> str:
    suffix = PurePosixPath(name).suffix.lower()
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def serve_artifact(request: HttpRequest, file: FieldFile, *, as_attachment: bool = False) -> HttpResponseBase:
    """The whole file (200), one requested byte range (206), or 416 for a range past the end; with
    BARK_S3_PRESIGNED, a redirect to a short-lived signed URL of the bucket, which honours ranges itself."""
    storage, name = file.storage, file.name or ""
    filename = PurePosixPath(name).name
    content_type = content_type_for(name)
    if settings.BARK_S3_BUCKET and settings.BARK_S3_PRESIGNED:
        return _redirect_to_bucket(storage, name, content_type, content_disposition_header(as_attachment, filename))
    handle = storage.open(name, "rb")
    # django-storages' S3 file knows its object (opening it fetched its size); its bytes are read straight
    # from the bucket, range by range, rather than downloaded whole first.
    s3_object = getattr(handle, "obj", None)
    size = s3_object.content_length if s3_object is not None else storage.size(name)
    byte_range = _parse_range(request.headers.get("Range", ""), size)
    response: HttpResponseBase
    if byte_range == "unsatisfiable":
        handle.close()
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response

    if byte_range is None and s3_object is None:
        response = FileResponse(handle, content_type=content_type, as_attachment=as_attachment, filename=filename)
    else:
        start, end = byte_range if isinstance(byte_range, tuple) else (0, size - 1)
        chunks = _read_object(s3_object, start, end) if s3_object is not None else _read(handle, start, end - start + 1)
        response = StreamingHttpResponse(chunks, status=206 if byte_range else 200, content_type=content_type)
        if byte_range:
            response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(end - start + 1)
        response["Content-Disposition"] = content_disposition_header(as_attachment, filename) or ""
    response["Accept-Ranges"] = "bytes"
    return response


def _redirect_to_bucket(storage: Storage, name: str, content_type: str, disposition: str | None) -> HttpResponse:
    parameters = {"ResponseContentType": content_type}
    if disposition:
        parameters["ResponseContentDisposition"] = disposition
    response = HttpResponseRedirect(storage.url(name, parameters=parameters))  # type: ignore[call-arg]  # S3Storage.url
    response["Cache-Control"] = "no-store"  # the signed URL expires (BARK_S3_URL_EXPIRE_S)
    return response


def _read_object(s3_object: Any, start: int, end: int) -> Iterator[bytes]:
    if end < start:  # an empty object: S3 refuses the range bytes=0--1
        return
    body = s3_object.get(Range=f"bytes={start}-{end}")["Body"]
    try:
        yield from body.iter_chunks(CHUNK)
    finally:
        body.close()


def _parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """(start, end) inclusive for one satisfiable range; None to send the whole file (no header, several
    ranges, or one we do not understand: RFC 9110 lets a server ignore Range); "unsatisfiable"."""
    match = _RANGE.match(header.strip())
    if not match or (not match[1] and not match[2]):
        return None
    if match[1]:
        start = int(match[1])
        end = min(int(match[2]), size - 1) if match[2] else size - 1
        if start >= size:
            return "unsatisfiable"
        if end < start:
            return None
        return start, end
    suffix = int(match[2])  # "bytes=-N": the last N bytes
    if suffix == 0:
        return "unsatisfiable"
    return max(size - suffix, 0), size - 1


def _read(handle: IO[bytes], start: int, length: int) -> Iterator[bytes]:
    try:
        handle.seek(start)
        while length > 0:
            chunk = handle.read(min(CHUNK, length))
            if not chunk:
                break
            length -= len(chunk)
            yield chunk
    finally:
        handle.close()
