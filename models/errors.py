"""One root exception for finpulse, so callers can catch everything we raise on purpose."""

from __future__ import annotations

__all__ = ["FinpulseError", "ModelDirError"]


class FinpulseError(Exception):
    """Root of every error finpulse raises deliberately (as opposed to bugs)."""


class ModelDirError(FinpulseError):
    """A model directory is missing files, inconsistent, or not safe to load."""
