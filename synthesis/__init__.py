"""barksite's app. The Python API, usable without the web layer (inside a configured Django project):

from synthesis import generate_audio, generate_multimedia
sample_rate, waveform = generate_audio("Hello there.", voice="v2/en_speaker_6", seed=1)
paths = generate_multimedia("Hello there.", "out/", video={"preset": "720p"})  # {"video": Path(...), ...}
"""


def __getattr__(name: str):
    # Lazy, because the app package is imported before Django's app registry is ready.
    if name in ("generate_audio", "generate_multimedia"):
        from synthesis.jobs import generate

        return getattr(generate, name)
    raise AttributeError(name)
