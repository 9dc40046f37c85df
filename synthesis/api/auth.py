"""Who is calling, and which jobs they see.

A caller is one of: a database API key (`request.auth` is the `ApiKey`), the shared `BARK_API_KEY`
(`request.auth is SHARED_KEY`), a signed-in session user (`request.user`, for the web UI's JSON calls,
via DRF's SessionAuthentication with its CSRF check), or nobody while the API is open.

Which jobs and voices each caller sees is decided in `synthesis.jobs.selectors`, for every surface.
"""

from __future__ import annotations

import hmac
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from synthesis.jobs.selectors import Caller
from synthesis.models import ApiKey

# last_used_at is written at most this often per key, so authentication stays a read on busy keys.
TOUCH_EVERY = timedelta(minutes=1)
# Generated keys are about 41 characters; anything far longer is not worth hashing.
MAX_KEY_LENGTH = 200


class SharedKey:
    """`request.auth` for callers that presented `BARK_API_KEY`."""

    def __repr__(self) -> str:
        return "<shared BARK_API_KEY>"


SHARED_KEY = SharedKey()


def presented_key(request: Request) -> str | None:
    """The key from `X-API-Key`, else from `Authorization: Bearer <key>` (what OpenAI clients send)."""
    key = request.META.get("HTTP_X_API_KEY", "").strip()
    if key:
        return key
    scheme, _, credentials = request.META.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


class ApiKeyAuthentication(BaseAuthentication):
    """Authenticates a hashed database key or the shared BARK_API_KEY; no key at all is left to the
    next authenticator (the session) and then to `HasApiAccess`."""

    def authenticate(self, request: Request) -> tuple[None, ApiKey | SharedKey] | None:
        key = presented_key(request)
        if key is None:
            return None
        shared = settings.BARK_API_KEY
        if shared and hmac.compare_digest(key.encode(), shared.encode()):
            return None, SHARED_KEY
        api_key = _verified_key(key)
        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at >= TOUCH_EVERY:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
            api_key.last_used_at = now
        return None, api_key

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403). X-API-Key has no registered scheme; the message names it.
        return 'Bearer realm="barksite"'


def _verified_key(key: str) -> ApiKey:
    """The ApiKey for `key`, or AuthenticationFailed saying whether it is unknown, revoked or expired.
    The hash is checked before the state is revealed, so only the key's holder learns it was revoked."""
    if len(key) > MAX_KEY_LENGTH:
        raise AuthenticationFailed("Unknown API key.")
    api_key = ApiKey.objects.filter(prefix=key.partition(".")[0]).first()
    if api_key is None or not api_key.is_valid(key):
        raise AuthenticationFailed("Unknown API key.")
    if api_key.revoked:
        raise AuthenticationFailed("This API key has been revoked.")
    if api_key.has_expired:
        raise AuthenticationFailed("This API key has expired.")
    return api_key


def api_is_open() -> bool:
    """Open (no key needed) only while no key was ever created and BARK_API_KEY is unset. Revoked keys
    count: revoking every key must not open the API."""
    return not settings.BARK_API_KEY and not ApiKey.objects.exists()


def session_user(request: Request) -> Any | None:
    user = request.user
    return user if user is not None and user.is_authenticated else None


class HasApiAccess(BasePermission):
    """A key, a session user, or an open API. Without them DRF answers 401 with WWW-Authenticate."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return request.auth is not None or session_user(request) is not None or api_is_open()


def caller(request: Request) -> Caller:
    """Who is calling, for `synthesis.jobs.selectors`: a database key, else the signed-in user, else nobody."""
    api_key = request.auth if isinstance(request.auth, ApiKey) else None
    return Caller(user=None if api_key is not None else session_user(request), api_key=api_key)


def submitter(request: Request) -> dict[str, Any]:
    """`submit_job`'s owner/api_key arguments for this caller."""
    return {
        "api_key": request.auth if isinstance(request.auth, ApiKey) else None,
        "owner": session_user(request),
    }


def rate_identity(request: Request) -> tuple[str | None, int]:
    """Whom a rate limit counts (None: the client IP) and how many requests a minute they get."""
    if isinstance(request.auth, ApiKey):
        # The prefix, not the pk: the pk embeds the key's hash, which has no business in logs and hooks.
        return f"key:{request.auth.prefix}", request.auth.rate_limit_per_min or settings.BARK_RATE_LIMIT_PER_MIN
    if request.auth is SHARED_KEY:
        return "shared", settings.BARK_RATE_LIMIT_PER_MIN
    user = session_user(request)
    if user is not None:
        return f"user:{user.pk}", settings.BARK_RATE_LIMIT_PER_MIN
    return None, settings.BARK_RATE_LIMIT_PER_MIN


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """Documents the two ways to present a key in the OpenAPI schema (either one is enough)."""

    target_class = ApiKeyAuthentication
    name = ["ApiKeyHeader", "BearerKey"]

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[Any]]]:
        return [{"ApiKeyHeader": []}, {"BearerKey": []}]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, str]]:
        return [
            {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            {"type": "http", "scheme": "bearer", "description": "The same key as a Bearer token (OpenAI clients)."},
        ]
