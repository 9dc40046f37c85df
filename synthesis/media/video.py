"""Render a captioned MP4 (H.264 + AAC): a background, the current caption cue burned in, and spectrum bars.

Cost is what decides the design. Building every frame as a full RGB picture in Python (moviepy's usual path) costs
about 2/5/20 s per video second at 720p/1080p/4K on 2 CPU cores (`bench/video_render.py` measures both ways).
Instead the frame is kept in the encoder's own format, YUV 4:2:0, so ffmpeg does no colour conversion: the background
is drawn and converted once, each cue's caption once (only its box is converted), and per frame only the bars' rows
are restored and redrawn before the buffer is piped to ffmpeg. The audio is muxed from a WAV by ffmpeg
directly, which keeps its sample rate and exact length (moviepy's audio clips resample and mis-time it).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import font_source_sans_pro
import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from synthesis.media import ffmpeg
from synthesis.media.audio import write_wav
from synthesis.media.captions import Cue

MAX_BACKGROUND_BYTES = 20 * 1024 * 1024
MAX_BACKGROUND_PIXELS = 40_000_000  # bounds Pillow's decode memory (about 160 MB as RGBA)
BACKGROUND_FORMATS = ("PNG", "JPEG", "WEBP")
GRADIENT = ((15, 23, 42), (49, 46, 129))  # slate to indigo, top to bottom
BAR_COLOURS = ((34, 211, 238), (167, 139, 250))  # cyan to violet, left to right
CHECK_EVERY_S = 0.5  # how often (wall clock) a long render asks whether the job was cancelled
FONT_PATH = font_source_sans_pro.font_files_ttf["SourceSansProSemibold"]


class VideoRenderError(Exception):
    """The video could not be made; the message says why in words a user can act on."""


class RenderCancelled(Exception):
    """`should_continue()` said stop (the job was cancelled); nothing is left behind."""


def x264_preset(width: int, height: int) -> str:
    """Faster presets for bigger frames: mostly-static pictures compress well even at ultrafast, and a
    slower preset at 4K would cost more CPU than the rest of the render together (see bench/)."""
    pixels = width * height
    if pixels > 1920 * 1080:
        return "ultrafast"
    if pixels > 1280 * 720:
        return "superfast"
    return "veryfast"


def render_video(
    waveform: np.ndarray,
    sample_rate: int,
    cues: Sequence[Cue],
    options: dict[str, Any],
    out_path: Path,
    *,
    background_image: Path | None = None,
    should_continue: Callable[[], bool] | None = None,
) -> None:
    """Write an MP4 of `waveform` to `out_path` with `options` from `validate_video_options`.

    Raises VideoRenderError on a bad background image or an encoder failure, and RenderCancelled
    when `should_continue()` returns False; either way no temporary file is left behind.

    One function on purpose (about 70 lines): the encoder process, its stderr reader and the temporary WAV are
    owned by one try/finally, so every way out (done, cancelled, crashed) cleans up the same three things.
    """
    width, height, fps = options["width"], options["height"], options["fps"]
    audio = np.asarray(waveform, dtype=np.float32).reshape(-1)
    frames = max(1, round(len(audio) / sample_rate * fps))
    background = _background(options["background"], width, height, background_image)
    picture = _Picture(background)
    bars = _Bars(audio, sample_rate, fps, width, height)

    fd, wav_name = tempfile.mkstemp(dir=out_path.parent, prefix=".render-", suffix=".wav")
    os.close(fd)
    wav = Path(wav_name)
    proc: subprocess.Popen[bytes] | None = None
    stdin: IO[bytes] | None = None
    stderr: IO[bytes] | None = None
    reader: threading.Thread | None = None
    errors = bytearray()
    try:
        write_wav(wav, sample_rate, audio)
        proc, stdin, stderr = ffmpeg.start(_ffmpeg_args(options, wav, out_path))
        # Drain stderr on the side: a chatty ffmpeg must never block on a full pipe while we write frames.
        reader = threading.Thread(target=lambda pipe=stderr: errors.extend(pipe.read()), daemon=True)
        reader.start()
        next_check = time.monotonic() + CHECK_EVERY_S
        upcoming, showing = 0, -1  # the first cue not yet over, and the cue on screen (-1: none)
        for index in range(frames):
            if should_continue is not None and time.monotonic() >= next_check:
                if not should_continue():
                    raise RenderCancelled("The job was cancelled while its video was rendering.")
                next_check = time.monotonic() + CHECK_EVERY_S
            time_ms = index * 1000 // fps
            while upcoming < len(cues) and cues[upcoming].end_ms <= time_ms:
                upcoming += 1
            now = upcoming if upcoming < len(cues) and cues[upcoming].start_ms <= time_ms else -1
            frame = picture.frame(cues[now] if now >= 0 else None, full=now != showing)
            showing = now
            bars.draw(picture, frame, index)
            try:
                stdin.write(frame.data)  # type: ignore[call-overload]  # a numpy buffer, written without a copy
            except BrokenPipeError:
                break  # ffmpeg gave up; its exit status and message are reported below
        _finish(proc, stdin, reader, errors)
    except BaseException:
        if proc is not None and proc.poll() is None:
            proc.kill()  # cancelled or crashed mid-render: stop the encoder, then drop its partial file
            proc.wait()
        out_path.unlink(missing_ok=True)
        raise
    finally:
        if stdin is not None and stderr is not None:
            with contextlib.suppress(OSError):
                stdin.close()
            if reader is not None:
                reader.join(timeout=5)
            stderr.close()
        wav.unlink(missing_ok=True)


def open_background_image(path: Path) -> Image.Image:
    """An uploaded background as RGB, after checking its size, format and pixel count."""
    name = path.name
    try:
        size = path.stat().st_size
    except OSError:
        raise VideoRenderError(f"The background image {name} cannot be read.") from None
    if size > MAX_BACKGROUND_BYTES:
        raise VideoRenderError(f"The background image {name} is {size // 2**20} MB; the limit is 20 MB.")
    try:
        with Image.open(path) as image:
            if image.format not in BACKGROUND_FORMATS:
                raise VideoRenderError(f"The background image {name} is {image.format}; use PNG, JPEG or WebP.")
            if image.width * image.height > MAX_BACKGROUND_PIXELS:
                raise VideoRenderError(
                    f"The background image {name} is {image.width}x{image.height}; at most 40 megapixels, please."
                )
            return ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise VideoRenderError(f"The background image {name} is not a readable PNG, JPEG or WebP ({exc}).") from None


# --- the picture -----------------------------------------------------------------------------------------


def _background(kind: str, width: int, height: int, image_path: Path | None) -> Image.Image:
    if image_path is not None:
        image = ImageOps.fit(open_background_image(image_path), (width, height), Image.Resampling.LANCZOS)
        # Darkened, so white captions and bright bars stay readable on any photo.
        return Image.blend(image, Image.new("RGB", image.size), 0.4)
    if kind.startswith("#"):
        return Image.new("RGB", (width, height), tuple(int(kind[i : i + 2], 16) for i in (1, 3, 5)))
    top, bottom = (np.array(colour, dtype=np.float32) for colour in GRADIENT)
    rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    column = (top + (bottom - top) * rows).round().astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(np.broadcast_to(column[:, None, :], (height, width, 3))))


def _rgb_to_yuv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.709 limited-range Y, and U/V averaged over 2x2 blocks (the MP4 is tagged BT.709 to match)."""
    x = rgb.astype(np.float32) / 255.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 16 + 219 * (0.2126 * r + 0.7152 * g + 0.0722 * b)
    sub = x.reshape(x.shape[0] // 2, 2, x.shape[1] // 2, 2, 3).mean(axis=(1, 3))
    r, g, b = sub[..., 0], sub[..., 1], sub[..., 2]
    u = 128 + 224 * (-0.114572 * r - 0.385428 * g + 0.5 * b)
    v = 128 + 224 * (0.5 * r - 0.454153 * g - 0.045847 * b)
    return tuple(np.clip(p, 0, 255).round().astype(np.uint8) for p in (y, u, v))


class _Frame:
    """One YUV 4:2:0 frame: a single buffer (what ffmpeg reads) with plane views into it."""

    def __init__(self, width: int, height: int, source: _Frame | None = None):
        luma = width * height
        self.data: np.ndarray = source.data.copy() if source is not None else np.empty(luma * 3 // 2, dtype=np.uint8)
        self.y = self.data[:luma].reshape(height, width)
        self.u = self.data[luma : luma * 5 // 4].reshape(height // 2, width // 2)
        self.v = self.data[luma * 5 // 4 :].reshape(height // 2, width // 2)

    def paste(self, rgb: np.ndarray, left: int, top: int) -> None:
        """Convert an RGB block (even position and size) into this frame."""
        y, u, v = _rgb_to_yuv(rgb)
        self.y[top : top + y.shape[0], left : left + y.shape[1]] = y
        self.u[top // 2 : top // 2 + u.shape[0], left // 2 : left // 2 + u.shape[1]] = u
        self.v[top // 2 : top // 2 + v.shape[0], left // 2 : left // 2 + v.shape[1]] = v

    def fill(self, left: int, top: int, right: int, bottom: int, yuv: tuple[int, int, int]) -> None:
        self.y[top:bottom, left:right] = yuv[0]
        self.u[top // 2 : bottom // 2, left // 2 : right // 2] = yuv[1]
        self.v[top // 2 : bottom // 2, left // 2 : right // 2] = yuv[2]


class _Picture:
    """The background with the current cue burned in. Each cue is drawn once, when it first shows."""

    def __init__(self, background: Image.Image):
        self.background = background
        self.width, self.height = background.size
        self.plain = _Frame(self.width, self.height)
        self.plain.paste(np.asarray(background), 0, 0)
        self.base = self.plain  # what the current cue looks like without bars
        self.current = _Frame(self.width, self.height, self.plain)

    def frame(self, cue: Cue | None, full: bool) -> _Frame:
        """The frame to draw bars on: fully reset when the cue changes, else only the bars' rows later."""
        if full:
            self.base = self._with_caption(cue) if cue is not None else self.plain
            self.current.data[:] = self.base.data
        return self.current

    def _with_caption(self, cue: Cue) -> _Frame:
        width, height = self.width, self.height
        size = max(8, height // 15)
        font = ImageFont.truetype(FONT_PATH, size)
        measure = ImageDraw.Draw(Image.new("L", (1, 1)))
        text_width = measure.multiline_textbbox((0, 0), cue.text, font=font, align="center")[2]
        if text_width > 0.9 * width:  # a narrow (portrait or tiny) frame: shrink the type to fit
            size = max(6, int(size * 0.9 * width / text_width))
            font = ImageFont.truetype(FONT_PATH, size)
        stroke, pad = max(1, size // 24), size // 2
        centre = (width // 2, int(height * 0.4))
        left, top, right, bottom = measure.multiline_textbbox(
            centre, cue.text, font=font, anchor="mm", align="center", spacing=size // 4, stroke_width=stroke
        )
        # The caption box, padded and aligned to even pixels so its chroma lines up with 4:2:0.
        box = (
            max(0, int(left - pad) // 2 * 2),
            max(0, int(top - pad) // 2 * 2),
            min(width, int(right + pad + 2) // 2 * 2),
            min(height, int(bottom + pad + 2) // 2 * 2),
        )
        region = self.background.crop(box).convert("RGBA")
        overlay = Image.new("RGBA", region.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        draw.rounded_rectangle((0, 0, region.width - 1, region.height - 1), radius=pad, fill=(0, 0, 0, 150))
        draw.multiline_text(
            (centre[0] - box[0], centre[1] - box[1]),
            cue.text,
            font=font,
            fill=(255, 255, 255, 255),
            anchor="mm",
            align="center",
            spacing=size // 4,
            stroke_width=stroke,
            stroke_fill=(0, 0, 0, 255),
        )
        frame = _Frame(width, height, self.plain)
        frame.paste(np.asarray(Image.alpha_composite(region, overlay).convert("RGB")), box[0], box[1])
        return frame


class _Bars:
    """Spectrum bars along the bottom: one short FFT per frame, drawn as filled rectangles."""

    def __init__(self, audio: np.ndarray, sample_rate: int, fps: int, width: int, height: int):
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        self.audio = audio / peak if peak > 0 else audio  # quiet voices move the bars as much as loud ones
        self.rate, self.fps = sample_rate, fps
        self.window = np.hanning(1 << int(np.ceil(np.log2(sample_rate * 0.08)))).astype(np.float32)
        left, right = width * 8 // 100 // 2 * 2, width * 92 // 100 // 2 * 2
        count = min(48, max(1, (right - left) // 8))
        slot = (right - left) / count
        bar = max(2, int(slot * 0.6) // 2 * 2)
        self.columns = [(int(left + i * slot) // 2 * 2, int(left + i * slot) // 2 * 2 + bar) for i in range(count)]
        self.baseline = height * 9 // 10 // 2 * 2
        self.top = max(0, self.baseline - height // 4 // 2 * 2)
        self.min_height = max(2, height // 180 // 2 * 2)
        frequencies = np.fft.rfftfreq(len(self.window), 1 / sample_rate)
        edges = np.geomspace(80, min(8000, sample_rate / 2 * 0.95), count + 1)
        bins = np.searchsorted(frequencies, edges)  # each band's first FFT bin; every band gets one at least
        self.bands = [np.arange(lo, max(hi, lo + 1)) for lo, hi in zip(bins[:-1], bins[1:], strict=True)]
        self.colours = [_yuv_of(_mix(*BAR_COLOURS, i / max(1, count - 1))) for i in range(count)]
        self.levels = np.zeros(count, dtype=np.float32)

    def draw(self, picture: _Picture, frame: _Frame, index: int) -> None:
        top, bottom = self.top, self.baseline
        # Only the bars' rows change from frame to frame: restore them from the cue's picture.
        frame.y[top:bottom] = picture.base.y[top:bottom]
        frame.u[top // 2 : bottom // 2] = picture.base.u[top // 2 : bottom // 2]
        frame.v[top // 2 : bottom // 2] = picture.base.v[top // 2 : bottom // 2]
        self.levels = np.maximum(self._spectrum(index), self.levels * 0.8 ** (30 / self.fps))  # fall back slowly
        span = bottom - top
        for (left, right), level, colour in zip(self.columns, self.levels, self.colours, strict=True):
            bar_height = max(self.min_height, int(level * span) // 2 * 2)
            frame.fill(left, bottom - bar_height, right, bottom, colour)

    def _spectrum(self, index: int) -> np.ndarray:
        size = len(self.window)
        start = round(index * self.rate / self.fps) - size // 2
        chunk = self.audio[max(0, start) : start + size]
        if len(chunk) < size:  # the first and last frames reach past the audio: pad with silence
            chunk = np.pad(chunk, (max(0, -start), 0))[:size]
            chunk = np.pad(chunk, (0, size - len(chunk)))
        magnitude = np.abs(np.fft.rfft(chunk * self.window)) * 2 / self.window.sum()
        power = np.array([np.mean(magnitude[band] ** 2) for band in self.bands])
        decibels = 10 * np.log10(power + 1e-12)
        return np.clip((decibels + 60) / 50, 0.0, 1.0).astype(np.float32)  # -60 dB..-10 dB fills the range


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    r, g, blue = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return r, g, blue


def _yuv_of(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    y, u, v = _rgb_to_yuv(np.full((2, 2, 3), rgb, dtype=np.uint8))
    return int(y[0, 0]), int(u[0, 0]), int(v[0, 0])


# --- encoding --------------------------------------------------------------------------------------------


def _ffmpeg_args(options: dict[str, Any], wav: Path, out_path: Path) -> list[str]:
    width, height, fps = options["width"], options["height"], options["fps"]
    video_kbps = int(options["video_bitrate"].removesuffix("k"))
    return [
        *("-loglevel", "error", "-y"),
        *("-f", "rawvideo", "-pix_fmt", "yuv420p", "-video_size", f"{width}x{height}", "-framerate", str(fps)),
        *("-i", "pipe:0", "-i", str(wav), "-map", "0:v:0", "-map", "1:a:0"),
        *("-c:v", options["video_codec"], "-preset", x264_preset(width, height), "-pix_fmt", "yuv420p"),
        # The bitrate is a ceiling: mostly-still pictures need far less and x264 spends less.
        *("-b:v", f"{video_kbps}k", "-maxrate", f"{video_kbps}k", "-bufsize", f"{2 * video_kbps}k"),
        # Tag the frames as what _rgb_to_yuv made (output-side -colorspace flags leave primaries unset).
        *("-vf", "setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709"),
        *("-threads", str(os.cpu_count() or 1)),
        *("-c:a", options["audio_codec"], "-b:a", options["audio_bitrate"]),
        # The output is a temporary name without .mp4, so the container is named; faststart lets a
        # browser play the file before it has all of it.
        *("-movflags", "+faststart", "-f", "mp4", str(out_path)),
    ]


def _finish(proc: subprocess.Popen[bytes], stdin: IO[bytes], reader: threading.Thread, errors: bytearray) -> None:
    with contextlib.suppress(BrokenPipeError):  # ffmpeg exited early; its status says why
        stdin.close()
    code = proc.wait()
    reader.join()
    if code != 0:
        raise VideoRenderError(str(ffmpeg.failure("encode the video", code, bytes(errors))))
