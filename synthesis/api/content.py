"""How the API reads request bodies and picks a response format.

Bodies are JSON only, and at most BARK_MAX_BODY_BYTES: DRF hands the parser Django's raw input stream,
which does not apply DATA_UPLOAD_MAX_MEMORY_SIZE, so the bound is enforced here on the declared length
(Django's WSGI input never yields more than Content-Length, and reads nothing without one). JSON nested
deeper than any request needs is refused too: Python's decoder raises RecursionError on about a thousand
levels, and deep structures would reach the serializers' recursive validation otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from rest_framework.exceptions import NotAcceptable, ParseError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

from synthesis.api.exceptions import PayloadTooLarge
from synthesis.engines import cloning_engine


def check_declared_length(parser_context: Mapping[str, Any] | None, limit: int, setting: str) -> None:
    request = (parser_context or {}).get("request")
    declared = request.META.get("CONTENT_LENGTH") if request is not None else None
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The request body is {declared} bytes; the limit is {limit} bytes ({setting}).")


# The deepest request the API takes is three levels (control_events: a list of objects); room to spare.
MAX_JSON_DEPTH = 32


class BoundedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        check_declared_length(parser_context, settings.BARK_MAX_BODY_BYTES, "BARK_MAX_BODY_BYTES")
        too_deep = ParseError(f"JSON parse error - the body is nested deeper than {MAX_JSON_DEPTH} levels.")
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise too_deep from None
        if json_depth(data) > MAX_JSON_DEPTH:
            raise too_deep
        return data


def json_depth(value: Any) -> int:
    """How deeply lists and objects nest in a decoded JSON value (a scalar is 0), without recursion."""
    deepest, pending = 0, [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            pending.extend((child, depth) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


class VoiceUploadParser(MultiPartParser):
    """Multipart uploads of voices: a reference clip may be larger than a JSON body."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        check_declared_length(parser_context, cloning_engine().max_upload_bytes + 64 * 1024, "the voice upload limit")
        return super().parse(stream, media_type, parser_context)


class LenientContentNegotiation(DefaultContentNegotiation):
    """Answer with the first renderer (JSON) when the client's Accept matches none, instead of 406.

    OpenAI's client asks for `application/octet-stream` and download links are fetched with whatever
    Accept a browser or curl sends; the binary views set their own content type, and an error must
    still reach the client as JSON."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderers = list(renderers)
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type
