"""Bark through transformers' BarkModel: the engine, its stages, its voice-prompt format and its checkpoint builder."""
