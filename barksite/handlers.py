"""What the site answers when something fails before or outside a view's own error handling.

Under /api/ and /v1/ every failure is JSON in the API's shape (`{"error": {"code", "message"}}`, OpenAI's
`{"error": {"message", "type", "param", "code"}}` under /v1/), whatever produced it: Django's error
handlers (a refused Host header, too many form fields, an unknown path, a crash), the CSRF check, or an
HTML or plain-text page from anywhere else (`JsonErrorsMiddleware` rewrites those). The web UI gets its own
branded 404 and 500 pages instead of Django's.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from django.core.exceptions import DisallowedHost, RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.template import loader

API_PREFIXES = ("/api/", "/v1/")
# A URL the app refuses with 414 (gunicorn refuses a request line over its own limit before the app sees
# it; bin/serve raises that to 8190 bytes so the app's JSON answer covers everything between).
MAX_URL_BYTES = 4096

_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    429: "rate_limited",
    500: "server_error",
    503: "service_unavailable",
}
_MESSAGES = {
    400: "The request could not be understood.",
    403: "This request is not allowed.",
    404: "Not found.",
    405: "This method is not allowed on this route.",
    413: "The request body is too large.",
    414: f"The URL is too long (at most {MAX_URL_BYTES} bytes).",
    416: "The requested byte range starts past the end of the file.",
    500: "An unexpected error occurred on the server; it has been logged.",
}
# A database, Redis or object store that is out for a moment: what the client is told, and when to try again.
OUTAGE_MESSAGE = (
    "A service barksite depends on (its database, queue or storage) is unreachable right now; nothing you sent "
    "before was lost. Retry this request shortly."
)
OUTAGE_RETRY_AFTER_S = 10
# Headers of the original response that still mean something once its body is replaced.
_KEPT_HEADERS = ("Allow", "Content-Range", "Retry-After", "WWW-Authenticate", "X-Job-Id")


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIXES)


def api_error(request: HttpRequest, status: int, message: str | None = None, code: str | None = None) -> JsonResponse:
    """A JSON error in the shape of the API the request was for."""
    code = code or _CODES.get(status, "server_error" if status >= 500 else "bad_request")
    message = message or _MESSAGES.get(status, "The request failed.")
    if request.path.startswith("/v1/"):
        from synthesis.api.errors import openai_error  # the module loads DRF's views; only here

        return JsonResponse(openai_error(status, message, code), status=status)
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler400: SuspiciousOperation and BadRequest raised anywhere, including by middleware."""
    if isinstance(exception, RequestDataTooBig):
        status, message = 413, "The request body is too large."
    elif isinstance(exception, TooManyFieldsSent | TooManyFilesSent):
        status, message = 400, "The request has too many form fields or files."
    elif isinstance(exception, DisallowedHost):
        status, message = 400, "This server does not answer for the host named in the Host header."
    else:
        status, message = 400, None
    if is_api(request):
        return api_error(request, status, message)
    return HttpResponse(message or _MESSAGES[400], status=status, content_type="text/plain; charset=utf-8")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api(request):
        return api_error(request, 403)
    return HttpResponse(_MESSAGES[403], status=403, content_type="text/plain; charset=utf-8")


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api(request):
        return api_error(request, 404, f"There is no route {request.path}; the API's routes are listed at /api/docs.")
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500. The page is rendered without the request's context: whatever failed (the database,
    a session) must not fail the error page too. A shared service that is out (the database, Redis, the bucket)
    is not a bug: that answer is a 503 with Retry-After, since the same request will work once it is back."""
    from synthesis.jobs.breaker import is_dependency_error  # the job layer's rule of what is an outage

    failure = sys.exc_info()[1]  # Django calls this handler while it handles the exception
    if failure is not None and is_dependency_error(failure):
        response: HttpResponse
        if is_api(request):
            response = api_error(request, 503, OUTAGE_MESSAGE, code="service_unavailable")
        else:
            response = HttpResponse(loader.get_template("503.html").render(), status=503)
        response["Retry-After"] = str(OUTAGE_RETRY_AFTER_S)
        return response
    if is_api(request):
        return api_error(request, 500)
    return HttpResponse(loader.get_template("500.html").render(), status=500)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a signed-in browser session posted without its CSRF token."""
    if is_api(request):
        message = (
            f"CSRF check failed ({reason}). Programs should send their API key (X-API-Key or "
            "Authorization: Bearer); a browser session must send the X-CSRFToken header."
        )
        return api_error(request, 403, message, code="csrf_failed")
    from django.views.csrf import csrf_failure as django_csrf_failure

    return django_csrf_failure(request, reason)


class JsonErrorsMiddleware:
    """Outermost middleware: a URL too long for the API is a 414, and any error response under /api/ or
    /v1/ that is not JSON (Django's debug pages with DEBUG on, a plain-text 400 from a middleware) is
    replaced by the JSON error of the same status."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if not is_api(request):
            return self.get_response(request)
        if len(request.get_full_path().encode()) > MAX_URL_BYTES:
            return api_error(request, 414)
        response = self.get_response(request)
        if response.status_code < 400 or response.get("Content-Type", "").startswith("application/json"):
            return response
        replacement = api_error(request, response.status_code)
        for header in _KEPT_HEADERS:
            if header in response:
                replacement[header] = response[header]
        return replacement
