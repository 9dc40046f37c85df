"""The MP4 renderer (synthesis.media.video), on real Piper speech, inspected with imageio-ffmpeg's ffmpeg."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthesis.engines import SynthesisOptions
from synthesis.jobs.generate import AudioResult, synthesize_segments
from synthesis.media import video
from synthesis.media.captions import build_cues
from synthesis.media.video import RenderCancelled, VideoRenderError, render_video
from synthesis.media.video_options import validate_video_options
from tests.media_probe import frame_at, probe


@pytest.fixture(scope="module")
def speech() -> AudioResult:
    """About 1.3 s of real Piper speech in two segments (short, so even the 4K render stays quick)."""
    return synthesize_segments(["Hello there.", "Bye."], "piper", SynthesisOptions(seed=1))


def render(speech: AudioResult, directory: Path, options: dict, **kwargs) -> Path:
    out = directory / "video.mp4"
    cues = build_cues(speech.segments, speech.spans)
    render_video(speech.waveform, speech.sample_rate, cues, validate_video_options(options), out, **kwargs)
    return out


@pytest.mark.parametrize(("preset", "size"), [("4k", (3840, 2160)), ("1080p", (1920, 1080)), ("720p", (1280, 720))])
def test_each_preset_renders_h264_and_aac_at_its_size_and_fps_as_long_as_the_audio(speech, tmp_path, preset, size):
    out = render(speech, tmp_path, {"preset": preset})

    facts = probe(out)
    assert (facts.video_codec, facts.audio_codec) == ("h264", "aac")
    assert (facts.width, facts.height, facts.fps) == (*size, 30)
    assert facts.sample_rate == speech.sample_rate == 22050
    assert facts.duration_s == pytest.approx(speech.duration_s, abs=0.1)
    assert facts.audio_s == pytest.approx(speech.duration_s, abs=0.1)
    assert facts.frames == round(speech.duration_s * 30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["video.mp4"], "no temporary file is left behind"


def test_overrides_reach_the_file(speech, tmp_path):
    out = render(speech, tmp_path, {"preset": "720p", "resolution": "640x360", "fps": 12, "audio_bitrate": "64k"})

    facts = probe(out)
    assert (facts.width, facts.height, facts.fps) == (640, 360, 12)
    assert facts.duration_s == pytest.approx(speech.duration_s, abs=0.1)


def test_the_caption_is_burned_in_while_its_segment_plays_and_the_bars_move(speech, tmp_path):
    out = render(speech, tmp_path, {"preset": "720p"})
    caption_box = (slice(250, 330), slice(400, 880))  # around the caption's place, 40% down the frame
    bars = slice(470, 648)  # the bars' rows

    first_start, first_end = speech.spans[0]
    speaking = frame_at(out, (first_start + first_end) / 2, 1280, 720)
    later = frame_at(out, first_end - 0.1, 1280, 720)
    pause = frame_at(out, (first_end + speech.spans[1][0]) / 2, 1280, 720)

    assert (speaking[caption_box] > 200).all(axis=2).sum() > 500, "white caption text is drawn"
    assert (pause[caption_box] > 200).all(axis=2).sum() == 0, "no caption between segments"
    assert np.abs(speaking[bars].astype(int) - later[bars].astype(int)).sum() > 10_000, "the bars move"


def test_an_uploaded_background_image_is_used(speech, tmp_path):
    image = tmp_path / "background.png"
    Image.new("RGB", (300, 200), (200, 30, 30)).save(image)
    out = render(speech, tmp_path, {"preset": "720p"}, background_image=image)

    corner = frame_at(out, 0.0, 1280, 720)[:40, :40].reshape(-1, 3).mean(axis=0)
    assert corner[0] > 90 and corner[1] < 40, f"the darkened red image, not the default gradient: {corner}"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"this is not an image", "not a readable PNG, JPEG or WebP"),
        ("gif", "use PNG, JPEG or WebP"),
        ("huge", "at most 40 megapixels"),
    ],
)
def test_a_bad_background_image_fails_the_render_with_a_clear_error(speech, tmp_path, content, words):
    image = tmp_path / "upload" / "background.img"
    image.parent.mkdir()
    if content == "gif":
        Image.new("RGB", (10, 10)).save(image, format="GIF")
    elif content == "huge":
        Image.new("1", (8000, 6000)).save(image, format="PNG")  # 48 megapixels, a small file
    else:
        image.write_bytes(content)

    with pytest.raises(VideoRenderError, match=words):
        render(speech, tmp_path, {"preset": "720p"}, background_image=image)
    assert [p.name for p in tmp_path.iterdir()] == ["upload"]


def test_an_encoder_failure_is_reported_with_ffmpegs_reason_and_leaves_nothing(speech, tmp_path):
    options = validate_video_options({"preset": "720p"}) | {"video_codec": "libnothing"}  # forced past validation
    cues = build_cues(speech.segments, speech.spans)

    with pytest.raises(VideoRenderError, match="ffmpeg could not encode the video: .*libnothing"):
        render_video(speech.waveform, speech.sample_rate, cues, options, tmp_path / "video.mp4")
    assert list(tmp_path.iterdir()) == []


def test_a_cancelled_render_stops_and_leaves_no_files(speech, tmp_path, monkeypatch):
    monkeypatch.setattr(video, "CHECK_EVERY_S", 0.0)  # ask at the very first frame
    asked = []

    def should_continue() -> bool:
        asked.append(True)
        return False

    with pytest.raises(RenderCancelled):
        render(speech, tmp_path, {"preset": "720p"}, should_continue=should_continue)
    assert asked == [True]
    assert list(tmp_path.iterdir()) == []
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout
    assert leftover == "", "the ffmpeg process was ended"
