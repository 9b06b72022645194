"""Audio helpers: G.711, WAV files, resampling, tones and in-band DTMF detection."""
