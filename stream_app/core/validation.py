"""Raw Kafka record bytes -> ``NewsItem``, or ``InvalidRecord`` with a stable reason code.

Every bytes input has a defined outcome: a ``NewsItem`` or an ``InvalidRecord`` whose
``reason`` is one of ``schemas.DEAD_LETTER_REASONS`` (the dead-letter topic's ``reason``).
No other exception escapes (property-tested with arbitrary bytes).

Decisions:
* Control characters (Unicode category Cc: C0, DEL, C1) in text fields are *replaced by a
  space* and the field stripped, not rejected: feeds routinely carry stray ``\\r\\n``/``\\t``
  and a headline is still scorable. Lone surrogates (``"\\ud800"`` escapes, which cannot be
  re-encoded as UTF-8) become U+FFFD. A headline empty after this, or made only of
  invisible characters (format characters such as U+200B, combining marks alone, blank
  fillers such as U+3164), is ``empty_headline``: the model would score nothing.
* Size limits are checked on the raw bytes first (``too_large``), then per field
  (``too_long``) against ``Settings.max_*``.
* Event time is ``published_at`` (ISO-8601 text, naive = UTC, or epoch milliseconds); when
  absent, the Kafka record timestamp. Before 2000-01-01 or after 2100 is ``bad_timestamp``;
  more than ``max_future_skew_seconds`` after the record timestamp is ``future_event``.
  Without a record timestamp only the absolute range is checked, so the outcome never
  depends on the wall clock.
* ``tickers`` absent or null -> cashtags of headline + body (at most ``max_tickers``);
  present -> each must look like an ASCII symbol (``$`` prefix and case are normalised,
  non-ASCII is refused *before* upper-casing, see ``schemas.normalize_ticker``).
* ``decode_object`` (size, UTF-8, JSON, object) is public so the offline feed readers give
  a feed line the reason the worker gives a record with the same bytes.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from pydantic import ValidationError

from models.errors import FinpulseError
from stream_app.config import Settings
from stream_app.core.entities import extract_cashtags
from stream_app.schemas import (
    MAX_EVENT_MS,
    MAX_ID_CHARS,
    MAX_META_CHARS,
    MIN_EVENT_MS,
    DeadLetterReason,
    NewsItem,
    datetime_to_ms,
    ms_to_datetime,
    normalize_ticker,
    parse_event_time,
)

__all__ = ["InvalidRecord", "clean_text", "decode_object", "is_blank", "parse_news"]

# Characters that draw nothing: controls, format characters (zero-width space/joiners,
# BOM, bidi marks, tags), separators, and combining marks without a base character.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp", "Mn", "Me"})
# Letters and symbols that render as blank space (Hangul fillers, braille blank).
_BLANK_FILLERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


class InvalidRecord(FinpulseError):
    """A record that must be dead-lettered; ``reason`` is a stable machine-readable code."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: DeadLetterReason = reason
        self.detail = detail


def clean_text(text: str) -> str:
    """Control characters -> space, lone surrogates -> U+FFFD, outer whitespace stripped."""
    if text.isprintable():
        return text.strip()
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat == "Cc":
            out.append(" ")
        elif cat == "Cs":
            out.append("\ufffd")
        else:
            out.append(ch)
    return "".join(out).strip()


def is_blank(text: str) -> bool:
    """True when no character of ``text`` would be visible (see ``_INVISIBLE_CATEGORIES``)."""
    category = unicodedata.category
    for ch in text:
        if category(ch) not in _INVISIBLE_CATEGORIES and ch not in _BLANK_FILLERS:
            return False
    return True


def decode_object(raw: bytes, max_bytes: int) -> dict[str, Any]:
    """Record bytes -> a JSON object, or ``InvalidRecord`` (``not_bytes``, ``too_large``,
    ``not_utf8``, ``too_deep``, ``invalid_json``, ``not_object``)."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise InvalidRecord("not_bytes", f"record value is {type(raw).__name__}, not bytes")
    raw = bytes(raw)
    if len(raw) > max_bytes:
        raise InvalidRecord("too_large", f"{len(raw)} bytes > max_message_bytes {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidRecord("not_utf8", f"not UTF-8 at byte {e.start}") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise InvalidRecord("too_deep", "JSON nested too deeply") from None
    except ValueError as e:  # JSONDecodeError, and int-too-long conversions
        raise InvalidRecord("invalid_json", str(e)[:200]) from None
    if not isinstance(data, dict):
        raise InvalidRecord("not_object", f"JSON {type(data).__name__}, expected an object")
    return data


def _text(data: dict[str, Any], name: str, limit: int, *, required: bool) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidRecord("missing_field", f"{name} is required")
        return None
    if not isinstance(value, str):
        raise InvalidRecord("wrong_type", f"{name} must be a string, got {type(value).__name__}")
    value = clean_text(value)
    if len(value) > limit:
        raise InvalidRecord("too_long", f"{name} has {len(value)} characters > {limit}")
    if required and not value:
        reason: DeadLetterReason = "empty_headline" if name == "headline" else "empty_field"
        raise InvalidRecord(reason, f"{name} is empty")
    if name == "headline" and is_blank(value):
        raise InvalidRecord("empty_headline", "headline has no visible character")
    return value or None


def _tickers(data: dict[str, Any], headline: str, body: str | None, limit: int) -> list[str]:
    value = data.get("tickers")
    if value is None:
        return extract_cashtags(f"{headline}\n{body or ''}", limit=limit) if limit else []
    if not isinstance(value, list):
        raise InvalidRecord("wrong_type", f"tickers must be a list, got {type(value).__name__}")
    out: list[str] = []
    for t in value:
        if not isinstance(t, str):
            raise InvalidRecord("wrong_type", "tickers must be strings")
        sym = normalize_ticker(t)
        if sym is None:
            raise InvalidRecord("invalid_ticker", f"ticker {t[:16]!r} is not a symbol")
        if sym not in out:
            out.append(sym)
    if len(out) > limit:
        raise InvalidRecord("too_many_tickers", f"{len(out)} tickers > max_tickers {limit}")
    return out


def _event_ms(data: dict[str, Any], record_timestamp_ms: int | None, settings: Settings) -> int:
    value = data.get("published_at")
    if value is None:
        if record_timestamp_ms is None:
            raise InvalidRecord("missing_field", "published_at absent and no record timestamp")
        if not MIN_EVENT_MS <= record_timestamp_ms < MAX_EVENT_MS:
            raise InvalidRecord("bad_timestamp", f"record timestamp {record_timestamp_ms}")
        ms = record_timestamp_ms
    elif isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidRecord("wrong_type", "published_at must be ISO-8601 text or epoch ms")
    else:
        try:
            ms = datetime_to_ms(parse_event_time(value))
        except (ValueError, OverflowError, OSError) as e:
            raise InvalidRecord("bad_timestamp", str(e)[:200]) from None
    if record_timestamp_ms is not None:
        skew_ms = settings.window.max_future_skew_seconds * 1000
        if ms > record_timestamp_ms + skew_ms:
            raise InvalidRecord(
                "future_event",
                f"published_at {ms} ms is more than {skew_ms} ms after the record timestamp",
            )
    return ms


def parse_news(
    raw: bytes, *, record_timestamp_ms: int | None = None, settings: Settings
) -> NewsItem:
    """Validate one record value. ``record_timestamp_ms`` <= 0 counts as absent (Kafka -1)."""
    if record_timestamp_ms is not None and (
        isinstance(record_timestamp_ms, bool) or record_timestamp_ms <= 0
    ):
        record_timestamp_ms = None
    data = decode_object(raw, settings.max_message_bytes)
    if isinstance(data.get("id"), int) and not isinstance(data["id"], bool):
        data["id"] = str(data["id"])  # numeric ids are common in feeds; keys are text
    rid = _text(data, "id", MAX_ID_CHARS, required=True)
    headline = _text(data, "headline", settings.max_headline_chars, required=True)
    body = _text(data, "body", settings.max_body_chars, required=False)
    source = _text(data, "source", MAX_META_CHARS, required=False)
    url = _text(data, "url", MAX_META_CHARS, required=False)
    assert headline is not None
    assert rid is not None
    tickers = _tickers(data, headline, body, settings.max_tickers)
    ms = _event_ms(data, record_timestamp_ms, settings)
    try:
        return NewsItem(
            id=rid,
            headline=headline,
            body=body,
            source=source,
            url=url,
            tickers=tickers,
            published_at=ms_to_datetime(ms),
        )
    except ValidationError as e:  # defence in depth: the checks above should catch all
        raise InvalidRecord("wrong_type", str(e.errors()[0].get("msg", e))[:200]) from None
