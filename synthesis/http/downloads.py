"""Serving a stored artifact: the right content type, and single byte ranges so that browsers can seek in
audio and video. Callers check who may see the job first; this module only streams bytes."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import IO

from django.db.models.fields.files import FieldFile
from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse
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
    """The whole file (200), one requested byte range (206), or 416 for a range past the end."""
    storage, name = file.storage, file.name or ""
    size = storage.size(name)
    filename = PurePosixPath(name).name
    content_type = content_type_for(name)
    byte_range = _parse_range(request.headers.get("Range", ""), size)
    response: HttpResponseBase
    if byte_range == "unsatisfiable":
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response

    handle = storage.open(name, "rb")
    if not isinstance(byte_range, tuple):
        response = FileResponse(handle, content_type=content_type, as_attachment=as_attachment, filename=filename)
    else:
        start, end = byte_range
        response = StreamingHttpResponse(_read(handle, start, end - start + 1), status=206, content_type=content_type)
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(end - start + 1)
        response["Content-Disposition"] = content_disposition_header(as_attachment, filename) or ""
    response["Accept-Ranges"] = "bytes"
    return response


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
