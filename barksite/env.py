"""Small readers for environment variables that fail loudly on a bad value.

A typo in production configuration should stop start-up with a message that names the variable and
says what it accepts, not surface later as a confusing runtime error.
"""

import os
import secrets
from pathlib import Path

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


def env_optional_int(name: str, *, minimum: int = 0, maximum: int | None = None) -> int | None:
    """A whole number, or None when the variable is unset or empty (the setting then comes from elsewhere)."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    return env_int(name, minimum, minimum=minimum, maximum=maximum)


def env_optional_float(name: str, *, minimum: float, maximum: float, exclude_minimum: bool = False) -> float | None:
    """A number between `minimum` and `maximum` (above `minimum` with `exclude_minimum`), or None when unset or
    empty."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number; set it like {name}={maximum}.") from None
    if not (value > minimum if exclude_minimum else value >= minimum) or value > maximum:
        lower = f"above {minimum}" if exclude_minimum else f"at least {minimum}"
        raise ImproperlyConfigured(f"{name}={value} is out of range; it must be {lower} and at most {maximum}.")
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


def local_secret_key(path: Path) -> str:
    """A secret key made once for this checkout and kept in `path` (mode 0600), for local runs that set
    no DJANGO_SECRET_KEY. Written under a temporary name and hard-linked into place, so processes that
    start together (gunicorn workers, qcluster) all end up with the one key that won."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        temporary.write_text(secrets.token_urlsafe(50))
        temporary.chmod(0o600)
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process was first; use its key
        finally:
            temporary.unlink()
    key = path.read_text().strip()
    if len(key) < 50:
        raise ImproperlyConfigured(f"{path} holds no usable secret key; delete it to make a new one.")
    return key
