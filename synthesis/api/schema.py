"""The answers every operation can give, added to the OpenAPI schema in one place (a drf-spectacular
postprocessing hook) rather than repeated on each view: the schema must describe exactly what is served.

- 414 on every route: barksite.handlers refuses URLs over MAX_URL_BYTES before routing.
- 401 and 429 on every route that needs a caller: the key check and the rate limits run on all of them.
- 403 on unsafe methods that accept a browser session: its CSRF check.
- Under /v1/ every error has OpenAI's shape (`OpenAIError`).
"""

from __future__ import annotations

from typing import Any

from barksite.handlers import MAX_URL_BYTES

OPENAI_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string", "description": "invalid_request_error, authentication_error, …"},
                "param": {"type": "string", "nullable": True},
                "code": {"type": "string"},
            },
            "required": ["message", "type", "param", "code"],
        }
    },
    "required": ["error"],
}

_ADDED = {
    "414": f"The URL is longer than {MAX_URL_BYTES} bytes.",
    "401": "Missing, unknown, revoked or expired API key.",
    "429": "Rate limit exceeded (code rate_limited); see the Retry-After header.",
    "403": "A signed-in browser session sent no valid CSRF token (code csrf_failed).",
}


def add_common_responses(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    result["components"]["schemas"]["OpenAIError"] = OPENAI_ERROR
    for path, operations in result["paths"].items():
        openai = path.startswith("/v1/")
        error = {"$ref": "#/components/schemas/" + ("OpenAIError" if openai else "Error")}
        for method, operation in operations.items():
            responses = operation["responses"]
            added = ["414"]
            if operation.get("security"):
                added += ["401", "429"] + (["403"] if method in ("post", "put", "patch", "delete") else [])
            for status in added:
                responses.setdefault(status, {"description": _ADDED[status]})
            for status, response in responses.items():
                if status.startswith(("4", "5")) and (openai or status in added):
                    response["content"] = {"application/json": {"schema": error}}
    return result
