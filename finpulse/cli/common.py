"""What every ``finpulse`` verb shares: settings from the environment and argument types.

An invalid environment or argument is reported as one line naming the variable or flag
(``finpulse: error: ...``, exit 2), never a traceback.

Exit statuses every verb keeps: 0 done; 2 an error (``finpulse: error: ...``, also argparse's
usage errors); ``EXIT_SKIPPED`` (3) done, but input rows were skipped (the summary lists
them); 130 interrupted.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, BinaryIO

from pydantic import ValidationError

from models.errors import FinpulseError
from stream_app.config import Settings

__all__ = [
    "EXIT_SKIPPED",
    "MAX_LINE_BYTES",
    "bounded_int",
    "load_settings",
    "non_negative_float",
    "positive_float",
    "positive_int",
    "stdin_lines",
    "time_arg",
    "topic_name",
]

EXIT_SKIPPED = 3
MAX_LINE_BYTES = 1 << 20  # a longer stdin line is reported, not read into memory


def stdin_lines(stream: BinaryIO) -> Iterator[tuple[str | None, str | None]]:
    """``(text or None, error or None)`` per line; over-long lines are drained, not kept.

    Verbs that read texts from standard input (``link``, ``predict``) give every line an
    outcome: its text, or why not (not UTF-8, longer than ``MAX_LINE_BYTES``).
    """
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while (rest := stream.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
            yield None, f"line longer than {MAX_LINE_BYTES} bytes"
            continue
        raw = raw.rstrip(b"\r\n")
        try:
            yield raw.decode("utf-8"), None
        except UnicodeDecodeError as exc:
            yield None, f"not UTF-8 (byte {raw[exc.start]:#04x} at offset {exc.start})"


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the non-None ``overrides`` applied."""
    try:
        settings = Settings()  # type: ignore[call-arg]  # mypy misreads Field(default, ...)
        changes = {k: v for k, v in overrides.items() if v is not None}
        return settings.with_overrides(**changes) if changes else settings
    except ValidationError as exc:
        problems = "; ".join(
            f"FINPULSE_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            if err["loc"]
            else str(err["msg"]).removeprefix("Value error, ")  # a rule across variables
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


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in ``[low, high]``."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = low - 1
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(
                f"expected an integer from {low} to {high}, got {value!r}"
            )
        return number

    return parse


def positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}") from None
    if not (number > 0 and math.isfinite(number)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return number


def non_negative_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (number >= 0 and math.isfinite(number)):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value!r}")
    return number


def topic_name(value: str) -> str:
    """An argparse type: a name Kafka accepts for a topic (checked before connecting)."""
    from stream_app.config import check_topic_name

    try:
        return check_topic_name(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def time_arg(text: str | None, flag: str) -> datetime | None:
    """An ISO-8601 or epoch-ms event time given on the command line, or None."""
    from stream_app.schemas import parse_event_time

    if text is None:
        return None
    try:
        return parse_event_time(text)
    except ValueError as exc:
        raise FinpulseError(f"{flag}: {exc}") from None
