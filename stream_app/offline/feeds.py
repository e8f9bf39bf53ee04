"""Historical feed readers: JSON Lines, CSV and Parquet files of NewsItem records.

Readers stream: they yield one row at a time (Parquet in record batches), so a large file
is never parsed into memory at once. Each row is either a ``FeedRow`` (a JSON object of
NewsItem fields, with its 1-based line number) or a ``BadRow`` that says which line is
broken and why; the caller decides whether a bad row is skipped or fatal (``--strict``).

An ``event_id`` column is ground truth, not news: it is split off here, so the record that
the backtest validates and the bytes that replay publishes are exactly the NewsItem.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from models.errors import FinpulseError
from stream_app.config import Settings
from stream_app.core.validation import InvalidRecord, parse_news
from stream_app.schemas import NewsItem, datetime_to_ms

__all__ = [
    "FORMATS",
    "BadRow",
    "FeedError",
    "FeedItem",
    "FeedRow",
    "LoadedFeed",
    "detect_format",
    "load_feed",
    "read_rows",
]

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "csv", "parquet")
TRUTH_COLUMN = "event_id"
_SUFFIXES = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv",
    ".parquet": "parquet", ".pq": "parquet",
}  # fmt: skip
_LIST_COLUMNS = ("tickers",)


class FeedError(FinpulseError):
    """A feed that cannot be read at all, or a bad row in strict mode."""


@dataclass(frozen=True)
class FeedRow:
    """One record of a feed: the NewsItem fields and the ground-truth event it belongs to."""

    line: int
    data: dict[str, Any]
    event_id: str | None = None

    def to_bytes(self) -> bytes:
        """The record as the compact JSON that replay publishes and backtest validates."""
        return json.dumps(self.data, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class BadRow:
    """A row that is not a record; ``reason`` is stable and machine-readable."""

    line: int
    reason: str
    detail: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}: {self.detail}"


def detect_format(path: Path, fmt: str | None = None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise FeedError(f"unknown feed format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return fmt
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise FeedError(
            f"cannot tell the format of {path} from its suffix; "
            "use .jsonl, .csv or .parquet (or pass the format explicitly)"
        )
    return found


def read_rows(path: Path, fmt: str | None = None) -> Iterator[FeedRow | BadRow]:
    """Stream the rows of a feed file in file order."""
    kind = detect_format(path, fmt)
    if not path.is_file():
        raise FeedError(f"feed file not found: {path}")
    if kind == "jsonl":
        return _read_jsonl(path)
    if kind == "csv":
        return _read_csv(path)
    return _read_parquet(path)


def _split_truth(line: int, data: dict[str, Any]) -> FeedRow | BadRow:
    event_id = data.pop(TRUTH_COLUMN, None)
    if event_id is not None and not isinstance(event_id, str | int):
        return BadRow(line, "bad_event_id", f"{TRUTH_COLUMN} must be a string")
    return FeedRow(line, data, None if event_id in (None, "") else str(event_id))


def _read_jsonl(path: Path) -> Iterator[FeedRow | BadRow]:
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                yield BadRow(n, "invalid_json", str(exc))
                continue
            if not isinstance(data, dict):
                yield BadRow(n, "not_object", f"expected a JSON object, got {type(data).__name__}")
                continue
            yield _split_truth(n, data)


def _csv_list(value: str) -> list[str] | None:
    value = value.strip()
    if value.startswith("["):
        parsed = json.loads(value)
        if isinstance(parsed, list) and all(isinstance(v, str) for v in parsed):
            return parsed
        return None
    return [v for v in value.replace(",", ";").replace(" ", ";").split(";") if v]


def _read_csv(path: Path) -> Iterator[FeedRow | BadRow]:
    with path.open(newline="", encoding="utf-8", errors="strict") as fh:
        reader = csv.DictReader(fh)
        try:
            header = reader.fieldnames
        except (csv.Error, UnicodeDecodeError) as exc:
            raise FeedError(f"{path}: unreadable CSV header: {exc}") from exc
        if not header:
            raise FeedError(f"{path}: empty CSV (no header)")
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                yield BadRow(reader.line_num, "bad_csv", str(exc))
                continue
            n = reader.line_num
            if None in row:
                yield BadRow(n, "bad_csv", f"{len(row[None])} more fields than the header")
                continue
            data: dict[str, Any] = {k: v for k, v in row.items() if v not in (None, "")}
            try:
                for col in _LIST_COLUMNS:
                    if col in data:
                        data[col] = _csv_list(data[col])
                        if data[col] is None:
                            raise ValueError(f"{col} must be a list of strings")
            except (ValueError, json.JSONDecodeError) as exc:
                yield BadRow(n, "bad_csv", str(exc))
                continue
            yield _split_truth(n, data)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _read_parquet(path: Path) -> Iterator[FeedRow | BadRow]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise FeedError(f"{path}: not a readable Parquet file: {exc}") from exc
    n = 0
    for batch in pf.iter_batches(batch_size=8192):
        for record in batch.to_pylist():
            n += 1
            data = {k: _plain(v) for k, v in record.items() if v is not None}
            yield _split_truth(n, data)


@dataclass(frozen=True)
class FeedItem:
    """A valid row: the NewsItem, the exact bytes it was parsed from, and its truth mark."""

    line: int
    item: NewsItem
    raw: bytes
    event_id: str | None

    @property
    def event_ms(self) -> int:
        return self.item.event_time_ms


@dataclass
class LoadedFeed:
    """The valid items of a feed in event-time order, and every row that was skipped."""

    items: list[FeedItem]
    bad: list[BadRow]
    filtered: int = 0

    @property
    def skipped_by_reason(self) -> dict[str, int]:
        return dict(sorted(Counter(b.reason for b in self.bad).items()))


def load_feed(
    path: Path,
    settings: Settings,
    *,
    fmt: str | None = None,
    strict: bool = False,
    time_from: datetime | None = None,
    time_to: datetime | None = None,
    max_logged: int = 20,
) -> LoadedFeed:
    """Validate every row with the live ``parse_news`` and sort the valid ones by event time.

    Validation is the worker's own, so a row the worker would dead-letter is a bad row here
    with the same ``reason``. Sorting is stable (ties keep file order) and in memory: the
    items of one feed must fit in RAM, the file itself is streamed. ``time_to`` is exclusive.
    """
    items: list[FeedItem] = []
    bad: list[BadRow] = []
    filtered = 0
    lo = datetime_to_ms(time_from) if time_from else None
    hi = datetime_to_ms(time_to) if time_to else None
    for row in read_rows(path, fmt):
        if isinstance(row, FeedRow):
            raw = row.to_bytes()
            try:
                item = parse_news(raw, record_timestamp_ms=None, settings=settings)
            except InvalidRecord as exc:
                row = BadRow(row.line, exc.reason, exc.detail)
            else:
                ms = item.event_time_ms
                if (lo is not None and ms < lo) or (hi is not None and ms >= hi):
                    filtered += 1
                else:
                    items.append(FeedItem(row.line, item, raw, row.event_id))
                continue
        if strict:
            raise FeedError(f"{path}: {row} (strict mode)")
        if len(bad) < max_logged:
            log.warning("%s: skipping %s", path, row)
        bad.append(row)
    if len(bad) > max_logged:
        log.warning("%s: %d more bad rows skipped", path, len(bad) - max_logged)
    items.sort(key=lambda f: f.event_ms)
    return LoadedFeed(items, bad, filtered)
