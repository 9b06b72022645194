"""The demo's one error type: a message that tells the user what to do."""

from __future__ import annotations


class DemoError(RuntimeError):
    """Raised for a problem the user can fix (missing tool, service not running); printed without a trace."""
