"""MRF-style media server: RTP engine, prompts, voicemail deposit/access IVR (see README.md)."""
