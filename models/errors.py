"""One root exception for finpulse, so callers can catch everything we raise on purpose."""

from __future__ import annotations

__all__ = ["DeviceError", "FinpulseError", "ModelDirError"]


class FinpulseError(Exception):
    """Root of every error finpulse raises deliberately (as opposed to bugs)."""


class ModelDirError(FinpulseError):
    """A model directory is missing files, inconsistent, or not safe to load."""


class DeviceError(FinpulseError, ValueError):
    """A device that this machine does not have or that finpulse cannot run on."""
