"""Small readers for environment variables that fail loudly on a bad value.

A typo in production configuration should stop start-up with a message that names the variable and
says what it accepts, not surface later as a confusing runtime error.
"""

import os

from django.core.exceptions import ImproperlyConfigured

TRUTHY = {"1", "true", "yes", "on"}
FALSEY = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_int(name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number; set it like {name}={default}.") from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ImproperlyConfigured(f"{name}={value} is out of range; it must be {bounds}.")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in TRUTHY:
        return True
    if value in FALSEY:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use one of 1/true/yes/on or 0/false/no/off.")


def env_choice(name: str, default: str, choices: set[str]) -> str:
    value = os.environ.get(name, default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} is not one of {', '.join(sorted(choices))}.")
    return value


def env_tristate(name: str, default: str = "auto") -> str:
    """`auto`, `true` or `false`: for switches whose default is decided at run time."""
    value = os.environ.get(name, default).strip().lower()
    if value == "auto":
        return "auto"
    if value in TRUTHY - {""}:
        return "true"
    if value in FALSEY:
        return "false"
    raise ImproperlyConfigured(f"{name}={value!r} must be auto, or a boolean (1/true/yes or 0/false/no).")


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]
