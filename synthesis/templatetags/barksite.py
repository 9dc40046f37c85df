"""Small formatting filters for the web UI and the admin dashboard."""

import re

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()


@register.filter
def code_spans(text: str) -> SafeString:
    """Messages written for terminals and logs mark commands with `backticks`; on a page they become <code>."""
    return mark_safe(re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text)))  # escaped first, so this is safe


@register.filter
def video_size(preset: str | None) -> str:
    """A video preset as people write it: "1080p", "4K"."""
    from synthesis.media.video_options import preset_label

    return preset_label(preset) if preset else "video"


@register.filter
def seconds(value: float | str | None) -> str:
    """4.2 -> "4.2 s", 75 -> "1 min 15 s", 3725 -> "1 h 2 min"; empty for None."""
    if value is None or value == "":
        return ""
    value = float(value)
    if value < 60:
        return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"
    minutes, secs = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
