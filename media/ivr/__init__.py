"""Sans-IO call applications (voicemail deposit, voicemail access) fed events, returning actions."""
