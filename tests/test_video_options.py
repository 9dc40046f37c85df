"""The one table of video presets and bounds (synthesis.media.video_options)."""

import pytest

from synthesis.media.video_options import PRESETS, VideoOptionsError, capabilities, validate_video_options


def test_no_options_give_the_one_default_of_1080p_at_30_fps_with_h264_and_aac():
    assert validate_video_options(None) == {
        "preset": "1080p",
        "width": 1920,
        "height": 1080,
        "fps": 30,
        "video_bitrate": "8000k",
        "audio_bitrate": "192k",
        "video_codec": "libx264",
        "audio_codec": "aac",
        "background": "gradient",
    }


@pytest.mark.parametrize(("preset", "size"), [("4k", (3840, 2160)), ("1080p", (1920, 1080)), ("720p", (1280, 720))])
def test_each_preset_sets_its_resolution_at_30_fps(preset, size):
    options = validate_video_options({"preset": preset})
    assert (options["width"], options["height"], options["fps"]) == (*size, 30)


def test_overrides_replace_the_presets_values_and_are_normalised():
    options = validate_video_options(
        {"preset": "1080p", "resolution": "1280x720", "fps": 24, "bitrate": "2.5M", "audio_bitrate": 128000}
    )
    assert options == {
        "preset": "1080p",
        "width": 1280,
        "height": 720,
        "fps": 24,
        "video_bitrate": "2500k",
        "audio_bitrate": "128k",
        "video_codec": "libx264",
        "audio_codec": "aac",
        "background": "gradient",
    }


def test_a_preset_name_as_resolution_takes_that_presets_bitrates_too():
    assert validate_video_options({"resolution": "720p"}) == validate_video_options({"preset": "720p"})


def test_normalised_options_validate_to_themselves():
    options = validate_video_options({"preset": "720p", "fps": 25, "background": "#1E293B"})
    assert validate_video_options(options) == options
    assert options["background"] == "#1e293b"


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        ({"resolution": "15360x8640"}, "resolution", "out of range"),
        ({"resolution": "3840x2161"}, "resolution", "out of range"),
        ({"resolution": "1921x1080"}, "resolution", "even"),
        ({"resolution": "big"}, "resolution", "WIDTHxHEIGHT"),
        ({"fps": 240}, "fps", "out of range"),
        ({"fps": 0}, "fps", "out of range"),
        ({"fps": 29.97}, "fps", "whole number"),
        ({"video_bitrate": 0}, "video_bitrate", "positive"),
        ({"bitrate": "1000M"}, "video_bitrate", "out of range"),
        ({"video_bitrate": "fast"}, "video_bitrate", "such as"),
        ({"audio_bitrate": "100k"}, "audio_bitrate", "not offered"),
        ({"audio_bitrate": "10M"}, "audio_bitrate", "not offered"),
        ({"video_codec": "libx265"}, "video_codec", "Unsupported codec"),
        ({"audio_codec": "mp3"}, "audio_codec", "Unsupported codec"),
        ({"preset": "8k"}, "preset", "Unknown preset"),
        ({"background": "red"}, "background", "gradient"),
        ({"framerate": 30}, "framerate", "Unknown video option"),
    ],
)
def test_out_of_bounds_options_are_refused_with_the_field_and_a_reason(raw, field, words):
    with pytest.raises(VideoOptionsError) as caught:
        validate_video_options(raw)
    assert caught.value.field == field
    assert words in caught.value.message


def test_a_portrait_4k_frame_is_allowed_but_not_more_pixels_than_4k():
    assert validate_video_options({"resolution": "2160x3840"})["height"] == 3840
    with pytest.raises(VideoOptionsError):
        validate_video_options({"resolution": "3840x3840"})


def test_capabilities_come_from_the_same_table_the_validator_uses():
    caps = capabilities()
    assert caps["video_presets"] == PRESETS and caps["default_video_preset"] == "1080p"
    assert caps["codecs"] == {"video": ["libx264"], "audio": ["aac"]}
    for bitrate in caps["audio_bitrates"]:
        assert validate_video_options({"audio_bitrate": bitrate})["audio_bitrate"] == bitrate
