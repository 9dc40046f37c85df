"""Every API failure as JSON `{"error": {"code", "message", "fields"?}}` with the status the README documents, and
under /v1/ in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`.

DRF's own handler still runs first, so its headers (WWW-Authenticate on 401, Retry-After on 429) stay;
this module maps the domain's exceptions onto DRF's and rewrites the body. Anything it does not know is
a bug and is left to Django as a 500; bad input never gets there.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, JsonResponse
from django_ratelimit.exceptions import Ratelimited
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from synthesis.api.exceptions import Conflict, EngineUnavailableError, PayloadTooLarge, QueueFullError
from synthesis.engines import EngineUnavailable
from synthesis.jobs.consents import ConsentInUse
from synthesis.jobs.selectors import NotVisible
from synthesis.jobs.submit import InvalidRequest, QueueFull

# A Ratelimited raised by a plain django-ratelimit decorator does not say when its window ends; a
# whole window is the longest the client can have to wait.
RATELIMIT_WINDOW_S = 60


# DRF's codes, renamed where other words are clearer for clients.
_CODES = {"parse_error": "malformed_json", "throttled": "rate_limited"}

_MESSAGES: dict[type[exceptions.APIException], str] = {
    exceptions.NotAuthenticated: (
        "An API key is required: send it as 'X-API-Key: <key>' or 'Authorization: Bearer <key>'."
    ),
}


# OpenAI's error types by status; any other 4xx is an invalid_request_error, any 5xx a server_error.
_OPENAI_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    exc = as_api_exception(exc)
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    error = describe(exc)
    request = context.get("request")
    if request is not None and request.path.startswith("/v1/"):
        fields = error.get("fields") or {}
        field = next(iter(fields), None)
        message = f"{field}: {fields[field][0]}" if field else error["message"]
        response.data = openai_error(response.status_code, message, error["code"], field or getattr(exc, "param", None))
    else:
        response.data = {"error": error}
    return response


def openai_error(status_code: int, message: str, code: str, param: str | None = None) -> dict[str, Any]:
    kind = _OPENAI_TYPES.get(status_code, "server_error" if status_code >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def as_api_exception(exc: Exception) -> Exception:
    """Domain and Django exceptions as the DRF exceptions that carry their status and headers."""
    if isinstance(exc, InvalidRequest):
        return exceptions.ValidationError({exc.field: [exc.message]})
    if isinstance(exc, NotVisible):
        return exceptions.NotFound(str(exc))
    if isinstance(exc, QueueFull):
        return QueueFullError(exc)
    if isinstance(exc, EngineUnavailable):
        return EngineUnavailableError(str(exc))
    if isinstance(exc, ConsentInUse):
        return Conflict(str(exc))
    if isinstance(exc, Ratelimited):  # before PermissionDenied, its base class
        return exceptions.Throttled(wait=RATELIMIT_WINDOW_S)
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge()
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    return exc


def describe(exc: exceptions.APIException) -> dict[str, Any]:
    """The `error` object for an APIException."""
    code = _CODES.get(exc.default_code, exc.default_code)
    if isinstance(exc, exceptions.ValidationError):
        fields = flatten_fields(exc.detail)
        first, messages = next(iter(fields.items()))
        where = "" if first == "non_field_errors" else f"{first}: "
        return {"code": "invalid", "message": f"Invalid request. {where}{messages[0]}", "fields": fields}
    message = _MESSAGES.get(type(exc)) or _text(exc.detail)
    if isinstance(exc, QueueFullError):
        message = exc.message
    elif isinstance(exc, exceptions.Throttled):
        message = f"Rate limit exceeded; retry in {getattr(exc, 'wait', None) or RATELIMIT_WINDOW_S:.0f} s."
    return {"code": code, "message": message}


def flatten_fields(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as `{"video.fps": [...], "control_events[0].ms": [...]}`."""
    if isinstance(detail, dict):
        fields: dict[str, list[str]] = {}
        for key, value in detail.items():
            if key == "non_field_errors" and prefix:
                name = prefix
            elif isinstance(key, int):
                name = f"{prefix}[{key}]"
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            for field, messages in flatten_fields(value, name).items():
                fields.setdefault(field, []).extend(messages)
        return fields
    if isinstance(detail, list):
        fields = {}
        strings = [str(item) for item in detail if not isinstance(item, dict | list)]
        if strings:
            fields[prefix or "non_field_errors"] = strings
        for index, item in enumerate(detail):
            if isinstance(item, dict | list):
                for field, messages in flatten_fields(item, f"{prefix}[{index}]").items():
                    fields.setdefault(field, []).extend(messages)
        return fields
    return {prefix or "non_field_errors": [str(detail)]}


def _text(detail: Any) -> str:
    if isinstance(detail, list | dict):
        return "; ".join(f"{k}: {v[0]}" for k, v in flatten_fields(detail).items())
    return str(detail)


def ratelimited(request: HttpRequest, exception: Exception) -> JsonResponse:
    """RATELIMIT_VIEW: what django-ratelimit's middleware answers for a plain Django view."""
    response = JsonResponse(
        {"error": {"code": "rate_limited", "message": f"Rate limit exceeded; retry in {RATELIMIT_WINDOW_S} s."}},
        status=status.HTTP_429_TOO_MANY_REQUESTS,
    )
    response["Retry-After"] = str(RATELIMIT_WINDOW_S)
    return response
