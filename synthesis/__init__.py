"""barksite's app. The Python API, usable without the web layer (inside a configured Django project):

    from synthesis import generate_audio
    sample_rate, waveform = generate_audio("Hello there.", voice="v2/en_speaker_6", seed=1)
"""


def __getattr__(name: str):
    # Lazy, because the app package is imported before Django's app registry is ready.
    if name == "generate_audio":
        from synthesis.pipeline import generate_audio

        return generate_audio
    raise AttributeError(name)
