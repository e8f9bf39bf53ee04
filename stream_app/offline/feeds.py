"""Historical feed readers: JSON Lines, CSV and Parquet files of NewsItem records.

Readers stream: they yield one row at a time (Parquet in record batches), so a large file
is never parsed into memory at once. Each row is either a ``FeedRow`` (a JSON object of
NewsItem fields, with its 1-based line number) or a ``BadRow`` that says which line is
broken and why; the caller decides whether a bad row is skipped or fatal (``--strict``).

One bad row costs that row only, never the file or its neighbours (issue 9):
* JSON Lines go through the worker's ``decode_object``, so a line gets the dead-letter
  reason (``not_utf8``, ``too_deep``, ``invalid_json``, ...) a record with its bytes gets.
* CSV is decoded line by line, so an invalid UTF-8 byte spoils only the record holding it
  (``not_utf8``); a record is reported at the line it *starts* on. A ``tickers`` cell that
  starts with ``[`` is JSON and is judged like the worker judges a record's ``tickers``.
* Parquet values that JSON cannot carry are converted (UTF-8 binary -> text, decimal ->
  number) or, in a NewsItem column, reported (``not_utf8``, ``wrong_type``; other columns
  are left out, as the worker ignores them); a row group with a corrupt page
  reports each of its unread rows (``bad_parquet``) and reading goes on with the next.
* Only a file that cannot be read at all (missing, no header, no Parquet footer) is a
  ``FeedError``.
Every row of a Parquet file, and every record of a JSONL or CSV file, therefore ends as
exactly one ``FeedRow`` or ``BadRow`` (tests/stream_app/offline/test_feeds_fuzz.py).

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
from datetime import time as time_of_day
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

from models.errors import FinpulseError
from stream_app.config import Settings
from stream_app.core.validation import InvalidRecord, decode_object, parse_news
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
# A line longer than this is reported (``too_large``) without being held in memory. Rows
# are further bounded by ``Settings.max_message_bytes`` when they are validated.
MAX_ROW_BYTES = 16 * 1024 * 1024
_BOM = b"\xef\xbb\xbf"
_RECORD_FIELDS = frozenset(NewsItem.model_fields) | {TRUTH_COLUMN}


class FeedError(FinpulseError):
    """A feed that cannot be read at all, or a bad row in strict mode."""


@dataclass(frozen=True)
class FeedRow:
    """One record of a feed: the NewsItem fields and the ground-truth event it belongs to."""

    line: int
    data: dict[str, Any]
    event_id: str | None = None

    def to_bytes(self) -> bytes:
        """The record as the compact JSON that replay publishes and backtest validates.

        A lone surrogate (from a ``"\\ud800"`` escape) cannot be UTF-8: such a record keeps
        its ``\\u`` escapes, so the worker reads the same text the feed held."""
        text = json.dumps(self.data, ensure_ascii=False, separators=(",", ":"))
        try:
            return text.encode()
        except UnicodeEncodeError:
            return json.dumps(self.data, separators=(",", ":")).encode()


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
    if event_id is not None and (isinstance(event_id, bool) or not isinstance(event_id, str | int)):
        return BadRow(line, "bad_event_id", f"{TRUTH_COLUMN} must be a string")
    return FeedRow(line, data, None if event_id in (None, "") else str(event_id))


def _physical_lines(fh: BinaryIO) -> Iterator[bytes | None]:
    """The file's lines (each ending in a newline) as bytes; ``None`` for a line over
    ``MAX_ROW_BYTES``, skipped without ever being held whole. A leading UTF-8 BOM is dropped."""
    first = True
    while True:
        line = fh.readline(MAX_ROW_BYTES + 1)
        if not line:
            return
        if first:
            line, first = line.removeprefix(_BOM), False
        if len(line) > MAX_ROW_BYTES:
            while line and not line.endswith(b"\n"):
                line = fh.readline(1 << 20)
            yield None
            continue
        yield line


def _too_long(line: int) -> BadRow:
    return BadRow(line, "too_large", f"line longer than {MAX_ROW_BYTES} bytes")


def _read_jsonl(path: Path) -> Iterator[FeedRow | BadRow]:
    """One JSON object per newline-terminated line, checked by the worker's own
    ``decode_object``: a line gets the reason a Kafka record with its bytes would get."""
    with path.open("rb") as fh:
        for n, raw in enumerate(_physical_lines(fh), start=1):
            if raw is None:
                yield _too_long(n)
                continue
            if not raw.strip():
                continue
            try:
                data = decode_object(raw, MAX_ROW_BYTES)
            except InvalidRecord as exc:
                yield BadRow(n, exc.reason, exc.detail)
                continue
            yield _split_truth(n, data)


class _DecodedLines:
    """The physical lines of a CSV file for ``csv.reader``, decoded *one at a time*.

    A line that is not UTF-8 is decoded with ``surrogateescape`` (ASCII bytes, hence
    commas, quotes and line breaks, keep their meaning) and remembered, so only the record
    holding it is refused. ``count`` is the number of lines handed out: the record that
    the next ``next(reader)`` returns starts on line ``count + 1``. Lines break at CR LF,
    LF or CR, as in text mode with ``newline=""``.
    """

    def __init__(self, fh: BinaryIO) -> None:
        self._chunks = _physical_lines(fh)
        self._pending: list[bytes] = []
        self.count = 0
        self.last_bad = 0  # the last line that was not UTF-8 (0: none yet)
        self.bad_detail = ""
        self.last_long = 0  # the last line over MAX_ROW_BYTES

    def __iter__(self) -> _DecodedLines:
        return self

    def __next__(self) -> str:
        while not self._pending:
            chunk = next(self._chunks)
            if chunk is None:
                self.count += 1
                self.last_long = self.count
                return "\n"
            self._pending = chunk.splitlines(keepends=True)[::-1]
        raw = self._pending.pop()
        self.count += 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.last_bad = self.count
            self.bad_detail = f"not UTF-8 at byte {exc.start} of line {self.count}"
            return raw.decode("utf-8", "surrogateescape")


def _csv_tickers(value: str) -> Any:
    """``AAPL;MSFT`` / ``AAPL MSFT`` / ``AAPL,MSFT`` -> a list; a cell starting with ``[`` is
    JSON, passed on as parsed so ``parse_news`` judges it as it would judge the record."""
    value = value.strip()
    if not value.startswith("["):
        return [v for v in value.replace(",", ";").replace(" ", ";").split(";") if v]
    try:
        return json.loads(value)
    except RecursionError:
        raise InvalidRecord("too_deep", "tickers: JSON nested too deeply") from None
    except ValueError as exc:
        raise InvalidRecord("invalid_json", f"tickers: {str(exc)[:200]}") from None


def _read_csv(path: Path) -> Iterator[FeedRow | BadRow]:
    """A header line, then one record per row; a row is reported at the line it starts on."""
    with path.open("rb") as fh:
        lines = _DecodedLines(fh)
        reader = csv.reader(lines)
        header: list[str] | None = None
        while header is None:
            try:
                header = next(reader) or None
            except StopIteration:
                raise FeedError(f"{path}: empty CSV (no header)") from None
            except csv.Error as exc:
                raise FeedError(f"{path}: unreadable CSV header: {exc}") from None
            if lines.last_bad:
                raise FeedError(f"{path}: CSV header is {lines.bad_detail}")
        while True:
            start = lines.count + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield BadRow(start, "bad_csv", str(exc))
                continue
            if not fields:
                continue  # a blank line
            if lines.last_bad >= start:
                yield BadRow(start, "not_utf8", lines.bad_detail)
            elif lines.last_long >= start:
                yield _too_long(lines.last_long)
            elif len(fields) > len(header):
                yield BadRow(
                    start, "bad_csv", f"{len(fields) - len(header)} more fields than the header"
                )
            else:
                yield _csv_row(start, header, fields)


def _csv_row(line: int, header: list[str], fields: list[str]) -> FeedRow | BadRow:
    data: dict[str, Any] = {k: v for k, v in zip(header, fields, strict=False) if v != ""}
    for col in _LIST_COLUMNS:
        if col in data:
            try:
                data[col] = _csv_tickers(data[col])
            except InvalidRecord as exc:
                return BadRow(line, exc.reason, exc.detail)
    return _split_truth(line, data)


class _NotJson(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class _Unconvertible:
    """A value Arrow holds but Python cannot (a timestamp past year 9999, ...)."""

    error: str


def _batch_records(batch: Any) -> list[dict[str, Any]]:
    """The rows of a record batch as dicts. One unconvertible value fails the whole batch's
    ``to_pylist``; then the batch is converted value by value, and only that value is
    marked, so only its row is refused."""
    try:
        return list(batch.to_pylist())
    except (ArithmeticError, ValueError, TypeError):
        pass
    records: list[dict[str, Any]] = []
    for i in range(batch.num_rows):
        record: dict[str, Any] = {}
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            try:
                record[name] = column[i].as_py()
            except (ArithmeticError, ValueError, TypeError) as exc:
                record[name] = _Unconvertible(f"{type(exc).__name__}: {str(exc)[:120]}")
        records.append(record)
    return records


def _plain(value: Any, column: str) -> Any:
    """An Arrow value as JSON data, or ``_NotJson``; text columns stored as binary are
    common, so UTF-8 bytes become text (other bytes are ``not_utf8``, as in the worker)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, _Unconvertible):
        reason = "bad_timestamp" if column == "published_at" else "wrong_type"
        raise _NotJson(reason, f"column {column}: {value.error}")
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _NotJson("not_utf8", f"column {column}: not UTF-8 at byte {exc.start}") from None
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date | time_of_day):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v, column) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, column) for k, v in value.items()}
    raise _NotJson("wrong_type", f"column {column}: a {type(value).__name__} is not JSON data")


def _parquet_row(line: int, record: dict[str, Any]) -> FeedRow | BadRow:
    """A NewsItem field that JSON cannot carry makes the row bad; another column's value is
    left out (the worker ignores unknown fields, so the outcome is the same)."""
    data: dict[str, Any] = {}
    for k, v in record.items():
        if v is None:
            continue
        try:
            data[k] = _plain(v, k)
        except _NotJson as exc:
            if k in _RECORD_FIELDS:
                return BadRow(line, exc.reason, exc.detail)
    return _split_truth(line, data)


def _read_parquet(path: Path) -> Iterator[FeedRow | BadRow]:
    """Row groups in order, each in record batches. A row group that fails to decode
    (a corrupt page) costs its remaining rows, each reported; the next group is read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise FeedError(f"{path}: not a readable Parquet file: {exc}") from exc
    first = 0  # rows before this group
    for group, size in enumerate(sizes):
        done = 0
        detail = f"row group {group} has fewer rows than the {size} its metadata promises"
        try:
            for batch in pf.iter_batches(batch_size=8192, row_groups=[group]):
                for record in _batch_records(batch):
                    done += 1
                    yield _parquet_row(first + done, record)
        except (pa.ArrowException, OSError, ArithmeticError, ValueError) as exc:
            detail = f"row group {group} unreadable from its row {done + 1}: {str(exc)[:200]}"
        for k in range(done + 1, size + 1):
            yield BadRow(first + k, "bad_parquet", detail)
        first += max(size, done)


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
            try:
                raw = row.to_bytes()
                item = parse_news(raw, record_timestamp_ms=None, settings=settings)
            except RecursionError:  # parsed just below the limit, too deep to write back
                row = BadRow(row.line, "too_deep", "JSON nested too deeply")
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
