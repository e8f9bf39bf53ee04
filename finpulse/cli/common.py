"""What every ``finpulse`` verb shares: settings from the environment and argument types.

An invalid environment or argument is reported as one line naming the variable or flag
(``finpulse: error: ...``, exit 2), never a traceback.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from models.errors import FinpulseError
from stream_app.config import Settings

__all__ = ["load_settings", "positive_float", "positive_int", "time_arg"]


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the non-None ``overrides`` applied."""
    try:
        settings = Settings()  # type: ignore[call-arg]  # mypy misreads Field(default, ...)
        changes = {k: v for k, v in overrides.items() if v is not None}
        return settings.with_overrides(**changes) if changes else settings
    except ValidationError as exc:
        problems = "; ".join(
            f"FINPULSE_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise FinpulseError(f"invalid configuration: {problems}") from None


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return number


def time_arg(text: str | None, flag: str) -> datetime | None:
    """An ISO-8601 or epoch-ms event time given on the command line, or None."""
    from stream_app.schemas import parse_event_time

    if text is None:
        return None
    try:
        return parse_event_time(text)
    except ValueError as exc:
        raise FinpulseError(f"{flag}: {exc}") from None
