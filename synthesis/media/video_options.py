"""The one table of video presets and bounds: request validation, /api/capabilities and the renderer all read it.

validate_video_options({"preset": "1080p", "fps": 24})
-> {"preset": "1080p", "width": 1920, "height": 1080, "fps": 24, "video_bitrate": "8000k",
    "audio_bitrate": "192k", "video_codec": "libx264", "audio_codec": "aac"}
"""

import re
from typing import Any

# One default for every surface (web form, CLI, API, Python). The product description's default is 4K/30; this
# is 1080p because rendering runs on the CPU even on a GPU host, where 4K costs about twice as long per second of
# video (bench/video_render.py: 1.09 vs 0.51 s per video second on 2 cores). Ask for "4k" per request.
DEFAULT_PRESET = "1080p"

PRESETS: dict[str, dict[str, Any]] = {
    "4k": {"width": 3840, "height": 2160, "fps": 30, "video_bitrate": "20000k", "audio_bitrate": "192k"},
    "1080p": {"width": 1920, "height": 1080, "fps": 30, "video_bitrate": "8000k", "audio_bitrate": "192k"},
    "720p": {"width": 1280, "height": 720, "fps": 30, "video_bitrate": "4000k", "audio_bitrate": "128k"},
}

MIN_SIDE = 16
MAX_SIDE = 3840
MAX_PIXELS = 3840 * 2160  # 4K in either orientation, so portrait 2160x3840 is allowed too
MIN_FPS, MAX_FPS = 1, 60
MIN_VIDEO_KBPS, MAX_VIDEO_KBPS = 100, 50_000
AUDIO_BITRATES = ("64k", "96k", "128k", "160k", "192k", "256k", "320k")
VIDEO_CODECS = ("libx264",)
AUDIO_CODECS = ("aac",)

FIELDS = (
    "preset",
    "resolution",
    "width",
    "height",
    "fps",
    "video_bitrate",
    "audio_bitrate",
    "video_codec",
    "audio_codec",
    "background",
)
_ALIASES = {"bitrate": "video_bitrate"}  # clients may say just "bitrate" for the video stream's
_BITRATE = re.compile(r"^(\d+(?:\.\d+)?)\s*([km]?)$", re.IGNORECASE)
_RESOLUTION = re.compile(r"^(\d+)\s*[xX]\s*(\d+)$")
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
BACKGROUNDS = ("gradient", "#rrggbb")  # the default gradient, or one solid colour


class VideoOptionsError(ValueError):
    """A video option is out of bounds; `field` names it for a 400 response."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def validate_video_options(raw: dict[str, Any] | None) -> dict[str, Any]:
    """Return the preset's settings with `raw`'s overrides applied, every value checked and normalised.

    One function on purpose (about 60 lines): the options are checked in the order a reader of the table above
    expects, each in a few lines, and splitting them would scatter one table's rules over many helpers."""
    if raw is not None and not isinstance(raw, dict):
        raise VideoOptionsError("video", "Expected an object of video options.")
    raw = dict(raw or {})
    for alias, name in _ALIASES.items():
        if alias in raw:
            if name in raw:
                raise VideoOptionsError(alias, f"Give either '{alias}' or '{name}', not both.")
            raw[name] = raw.pop(alias)
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise VideoOptionsError(unknown[0], f"Unknown video option; known options are: {', '.join(FIELDS)}.")

    preset = raw.get("preset")
    if preset is None and isinstance(raw.get("resolution"), str) and raw["resolution"].lower() in PRESETS:
        preset = raw.pop("resolution").lower()  # "resolution": "720p" means the 720p preset, bitrates included
    preset = preset or DEFAULT_PRESET
    if not isinstance(preset, str) or preset not in PRESETS:
        raise VideoOptionsError("preset", f"Unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}.")
    options: dict[str, Any] = {
        "preset": preset,
        **PRESETS[preset],
        "video_codec": "libx264",
        "audio_codec": "aac",
        "background": "gradient",
    }

    if raw.get("width") is not None or raw.get("height") is not None:
        # The normalised form spells width and height out; accepting it makes validation idempotent.
        if raw.get("resolution") is not None:
            raise VideoOptionsError("resolution", "Give either 'resolution' or 'width' and 'height', not both.")
        raw["resolution"] = f"{raw.get('width', options['width'])}x{raw.get('height', options['height'])}"
    if raw.get("resolution") is not None:
        options["width"], options["height"] = _resolution(raw["resolution"])
    if raw.get("fps") is not None:
        options["fps"] = _fps(raw["fps"])
    if raw.get("video_bitrate") is not None:
        kbps = _kbps("video_bitrate", raw["video_bitrate"])
        if not MIN_VIDEO_KBPS <= kbps <= MAX_VIDEO_KBPS:
            raise VideoOptionsError(
                "video_bitrate", f"{kbps}k is out of range; use {MIN_VIDEO_KBPS}k to {MAX_VIDEO_KBPS // 1000}M."
            )
        options["video_bitrate"] = f"{kbps}k"
    if raw.get("audio_bitrate") is not None:
        audio = f"{_kbps('audio_bitrate', raw['audio_bitrate'])}k"
        if audio not in AUDIO_BITRATES:
            offered = ", ".join(AUDIO_BITRATES)
            raise VideoOptionsError("audio_bitrate", f"{audio} is not offered; choose one of: {offered}.")
        options["audio_bitrate"] = audio
    for name, allowed in (("video_codec", VIDEO_CODECS), ("audio_codec", AUDIO_CODECS)):
        value = raw.get(name)
        if value is not None:
            if value not in allowed:
                raise VideoOptionsError(name, f"Unsupported codec {value!r}; supported: {', '.join(allowed)}.")
            options[name] = value
    background = raw.get("background")
    if background is not None:
        if not isinstance(background, str) or not (background == "gradient" or _COLOUR.match(background)):
            raise VideoOptionsError("background", f"Use 'gradient' or a colour like '#1e293b', got {background!r}.")
        options["background"] = background.lower()
    return options


def preset_label(name: str) -> str:
    """How a preset is written for people: "1080p", "720p", "4K" (the keys are lower case: "4k")."""
    return "4K" if name == "4k" else name


def capabilities() -> dict[str, Any]:
    """What /api/capabilities advertises about video, straight from the table above."""
    return {
        "video_presets": {name: dict(preset) for name, preset in PRESETS.items()},
        "default_video_preset": DEFAULT_PRESET,
        "audio_bitrates": list(AUDIO_BITRATES),
        "codecs": {"video": list(VIDEO_CODECS), "audio": list(AUDIO_CODECS)},
        "video_backgrounds": list(BACKGROUNDS),
        "video_bounds": {
            "side": [MIN_SIDE, MAX_SIDE],
            "max_pixels": MAX_PIXELS,
            "fps": [MIN_FPS, MAX_FPS],
            "video_bitrate_kbps": [MIN_VIDEO_KBPS, MAX_VIDEO_KBPS],
        },
    }


def _resolution(value: Any) -> tuple[int, int]:
    if isinstance(value, str) and value.lower() in PRESETS:
        preset = PRESETS[value.lower()]
        return preset["width"], preset["height"]
    match = _RESOLUTION.match(value.strip()) if isinstance(value, str) else None
    if not match:
        presets = ", ".join(PRESETS)
        raise VideoOptionsError("resolution", f"Write it as WIDTHxHEIGHT (e.g. 1920x1080) or a preset: {presets}.")
    width, height = int(match[1]), int(match[2])
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE) or width * height > MAX_PIXELS:
        raise VideoOptionsError(
            "resolution",
            f"{width}x{height} is out of range; each side {MIN_SIDE} to {MAX_SIDE}, at most 4K's pixel count.",
        )
    if width % 2 or height % 2:
        raise VideoOptionsError("resolution", f"{width}x{height}: width and height must be even numbers (H.264 4:2:0).")
    return width, height


def _fps(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise VideoOptionsError("fps", f"Expected a whole number of frames per second, got {value!r}.")
    if not MIN_FPS <= value <= MAX_FPS:
        raise VideoOptionsError("fps", f"{value:g} fps is out of range; use {MIN_FPS} to {MAX_FPS}.")
    return int(value)


def _kbps(field: str, value: Any) -> int:
    """Bitrates as ffmpeg writes them ("128k", "8M") or as bits per second (128000)."""
    if isinstance(value, bool):
        raise VideoOptionsError(field, f"Expected a bitrate such as '192k' or '8M', got {value!r}.")
    if isinstance(value, int | float):
        kbps = value / 1000
    else:
        match = _BITRATE.match(str(value).strip())
        if not match:
            raise VideoOptionsError(field, f"Expected a bitrate such as '192k' or '8M', got {value!r}.")
        kbps = float(match[1]) * {"": 0.001, "k": 1, "m": 1000}[match[2].lower()]
    if kbps <= 0 or kbps != int(kbps):
        raise VideoOptionsError(field, f"Expected a positive whole number of kbit/s, got {value!r}.")
    return int(kbps)
