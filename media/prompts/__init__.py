"""Spoken prompts: TTS engines, the on-disk prompt cache and the prompt catalogue."""
