"""Media that is not engine-specific: WAV/PCM audio, captions, video rendering and options, transcoding."""
