"""Video render cost: seconds of render per second of video at 720p, 1080p and 4K, against the naive way.

    python bench/video_render.py [--seconds 5] [--naive-seconds 1]

Ours is synthesis.media.video.render_video. The naive way is moviepy's usual path: a
background clip, TextClip captions and a bars clip composited by moviepy into a full RGB frame for every
frame in Python, then write_videofile with its defaults. Both render the same synthetic speech-like audio
(3 segments, 22.05 kHz mono), so the numbers need no TTS engine; the naive run is shorter, since its cost
per second is flat.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import describe  # noqa: E402  (bench/machine.py)
from moviepy import CompositeVideoClip, ImageClip, TextClip, VideoClip  # noqa: E402
from moviepy.audio.AudioClip import AudioArrayClip  # noqa: E402

from synthesis.media.captions import build_cues  # noqa: E402
from synthesis.media.video import FONT_PATH, render_video, x264_preset  # noqa: E402
from synthesis.media.video_options import validate_video_options  # noqa: E402

RATE = 22050
TEXTS = [
    "Hello there, and welcome to the benchmark.",
    "This second segment is a little longer, so its caption wraps onto two lines of text.",
    "Goodbye.",
]


def speechlike(seconds: float) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Three bursts of a modulated harmonic tone with noise, separated by short pauses."""
    rng = np.random.default_rng(0)
    spans, parts = [], []
    bounds = np.linspace(0.0, seconds, 4)
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        spoken = end - start - 0.25
        t = np.arange(int(spoken * RATE)) / RATE
        pitch = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
        tone = sum(np.sin(2 * np.pi * k * np.cumsum(pitch) / RATE) / k for k in range(1, 6))
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
        parts += [0.2 * tone * envelope + 0.02 * rng.standard_normal(len(t)), np.zeros(int(0.25 * RATE))]
        spans.append((start, start + spoken))
    return np.concatenate(parts).astype(np.float32), spans


def measured(work) -> tuple[float, float]:
    """Wall seconds and CPU seconds (this process and its finished children: ffmpeg) spent by `work()`.
    CPU time stays meaningful on a shared machine, where wall time depends on what else runs."""
    before, started = os.times(), time.perf_counter()
    work()
    after = os.times()
    cpu = sum(getattr(after, f) - getattr(before, f) for f in ("user", "system", "children_user", "children_system"))
    return time.perf_counter() - started, cpu


def ours(audio: np.ndarray, spans: list, preset: str, out: Path) -> tuple[float, float]:
    options = validate_video_options({"preset": preset})
    return measured(lambda: render_video(audio, RATE, build_cues(TEXTS, spans), options, out))


def naive(audio: np.ndarray, spans: list, preset: str, out: Path, scratch: str) -> tuple[float, float]:
    """The usual moviepy composition: a background clip, a TextClip per caption, a bars clip drawn per
    frame, composited by moviepy in RGB for every frame and written with write_videofile's defaults."""
    options = validate_video_options({"preset": preset})
    width, height = options["width"], options["height"]
    rows = np.linspace(0, 1, height)[:, None, None]
    gradient = (((1 - rows) * [15, 23, 42] + rows * [49, 46, 129]) * np.ones((1, width, 1))).astype(np.uint8)
    duration = len(audio) / RATE
    captions = [
        TextClip(
            font=FONT_PATH,
            text=text,
            font_size=height // 15,
            color="white",
            method="caption",
            size=(width * 8 // 10, None),
            margin=(None, height // 40),  # TextClip clips descenders without a bottom margin
        )
        .with_start(start)
        .with_duration(end - start)
        .with_position(("center", height * 3 // 10))
        for text, (start, end) in zip(TEXTS, spans, strict=True)
    ]
    bar_height = height // 4

    def bars(t: float) -> np.ndarray:
        picture = np.zeros((bar_height, width, 3), dtype=np.uint8)
        chunk = audio[int(t * RATE) : int(t * RATE) + 2048]
        levels = np.abs(np.fft.rfft(chunk, 2048))[:48] / 100 if len(chunk) else np.zeros(48)
        for i, level in enumerate(levels):
            x = int(width * (8 + 84 * i / 48) / 100)
            picture[bar_height - int(min(level, 1) * bar_height) :, x : x + width // 100] = (34, 211, 238)
        return picture

    layers = [ImageClip(gradient).with_duration(duration), *captions]
    layers.append(VideoClip(bars, duration=duration).with_position((0, height * 9 // 10 - bar_height)))
    stereo = np.repeat(audio[:, None], 2, axis=1)  # a mono AudioArrayClip writes a track twice as long
    clip = CompositeVideoClip(layers, size=(width, height)).with_audio(AudioArrayClip(stereo, fps=RATE))
    return measured(
        lambda: clip.write_videofile(
            str(out),
            fps=30,
            codec="libx264",
            audio_codec="aac",
            audio_fps=RATE,
            temp_audiofile_path=scratch,
            logger=None,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="video length for our renderer")
    parser.add_argument("--naive-seconds", type=float, default=1.0, help="video length for the naive renderer")
    args = parser.parse_args()
    print(f"machine: {describe()}")
    print("seconds of render per second of video: wall (CPU: this process + ffmpeg)")
    print(f"{'preset':>6}  {'x264':>9}  {'ours':>13}  {'naive':>13}  {'speed-up':>8}  {'MP4 (ours)':>10}")
    with tempfile.TemporaryDirectory() as scratch:
        for preset in ("720p", "1080p", "4k"):
            audio, spans = speechlike(args.seconds)
            out = Path(scratch) / f"ours-{preset}.mp4"
            wall, cpu = (x / args.seconds for x in ours(audio, spans, preset, out))
            short, short_spans = speechlike(args.naive_seconds)
            naive_wall, naive_cpu = (
                x / args.naive_seconds for x in naive(short, short_spans, preset, Path(scratch) / "naive.mp4", scratch)
            )
            options = validate_video_options({"preset": preset})
            print(
                f"{preset:>6}  {x264_preset(options['width'], options['height']):>9}  {wall:5.2f} ({cpu:5.2f})  "
                f"{naive_wall:5.2f} ({naive_cpu:5.2f})  {naive_wall / wall:7.1f}x  {out.stat().st_size / 1e6:7.2f} MB"
            )


if __name__ == "__main__":
    main()
