"""Voicemail storage: mailboxes and messages in MongoDB (documents + GridFS audio)."""
