"""Price files for backtests, and the one rule that turns prices into a forward return.

A price file is CSV (optionally ``.csv.gz``) or Parquet with the columns ``ticker``,
``timestamp`` (ISO 8601 or epoch ms; naive times are UTC) and ``price``; other columns are
ignored. A CSV may open with ``#`` lines: notes about the file, kept in ``PriceTable.notes``
(Parquet: the ``finpulse.note`` schema metadata). A file whose notes or name say
"synthetic" is flagged ``synthetic``, and the report says so in a banner.

Every row has a defined outcome: a valid observation, or a bad row counted by reason
(``bad_ticker``, ``bad_timestamp``, ``bad_price``) and listed with its line number. Two
rows for one ticker and timestamp keep the later one and are counted as ``duplicates``.

**The forward-return rule** (``forward_return``), as of event time ``t`` and horizon ``h``:

* entry = the last observation at or before ``t``; exit = the last observation at or
  before ``t + h``; return = exit / entry - 1 (a simple return, not annualised);
* an observation older than ``tolerance`` at the time it stands for (``t`` or ``t + h``)
  is stale, and the exit must be a later observation than the entry;
* otherwise the return is *missing*, with a reason, and never guessed: no interpolation,
  no carrying a price across a gap longer than ``tolerance``. Reasons:
  ``no_prices_for_ticker``, ``before_first_price``, ``stale_entry``,
  ``beyond_last_price`` (the horizon ends after the ticker's last price plus tolerance),
  ``stale_exit``, ``no_new_price``.

Using only prices at or before ``t`` for the entry keeps the measurement free of
look-ahead: the alert could have been traded at that price.
"""

from __future__ import annotations

import csv
import gzip
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np

from models.errors import FinpulseError
from stream_app.offline.feeds import BadRow
from stream_app.schemas import TICKER_RE, datetime_to_ms, parse_event_time

__all__ = [
    "HORIZONS",
    "MISSING_REASONS",
    "Entry",
    "PriceError",
    "PriceSeries",
    "PriceTable",
    "forward_return",
    "forward_returns",
    "load_prices",
    "normalise_ticker",
]

# Horizon name -> seconds, in the order reports show them.
HORIZONS: Final[dict[str, int]] = {"5m": 300, "1h": 3600, "1d": 86_400}
MissingReason = Literal[
    "no_prices_for_ticker",
    "before_first_price",
    "stale_entry",
    "beyond_last_price",
    "stale_exit",
    "no_new_price",
]
MISSING_REASONS: Final[tuple[str, ...]] = MissingReason.__args__  # type: ignore[attr-defined]
COLUMNS: Final = ("ticker", "timestamp", "price")
NOTE_KEY: Final = b"finpulse.note"
_MAX_BAD_LISTED = 20


class PriceError(FinpulseError):
    """A price file that cannot be used at all (unreadable, columns missing, no valid row)."""


@dataclass(frozen=True)
class PriceSeries:
    """One ticker's observations: strictly increasing epoch-ms times and positive prices."""

    times_ms: np.ndarray
    prices: np.ndarray

    @property
    def first_ms(self) -> int:
        return int(self.times_ms[0])

    @property
    def last_ms(self) -> int:
        return int(self.times_ms[-1])


@dataclass
class PriceTable:
    source: str
    series: dict[str, PriceSeries]
    notes: list[str] = field(default_factory=list)
    synthetic: bool = False
    rows: int = 0
    duplicates: int = 0
    bad: Counter[str] = field(default_factory=Counter)
    bad_rows: list[BadRow] = field(default_factory=list)

    @property
    def observations(self) -> int:
        return sum(len(s.times_ms) for s in self.series.values())

    def describe(self) -> dict[str, Any]:
        return {
            "file": self.source,
            "synthetic": self.synthetic,
            "notes": self.notes,
            "rows": self.rows,
            "tickers": len(self.series),
            "observations": self.observations,
            "duplicates": self.duplicates,
            "bad_rows": dict(sorted(self.bad.items())),
            "bad_rows_first": [str(b) for b in self.bad_rows],
        }


def normalise_ticker(text: str) -> str | None:
    """``$aapl`` / ``ticker:AAPL`` / `` AAPL `` -> ``AAPL``; None when it is not a ticker."""
    sym = text.strip().removeprefix("ticker:").lstrip("$").upper()
    return sym if TICKER_RE.match(sym) else None


def _csv_rows(path: Path, notes: list[str]) -> Iterator[tuple[int, dict[str, str]]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        line_no = 0
        header_line = None
        for raw in fh:
            line_no += 1
            if raw.startswith("#"):
                notes.append(raw[1:].strip())
                continue
            header_line = raw
            break
        if header_line is None:
            raise PriceError(f"{path}: no header row (expected columns {', '.join(COLUMNS)})")
        header = [h.strip().lower() for h in next(csv.reader([header_line]))]
        _check_columns(path, header)
        reader = csv.reader(fh)
        for values in reader:
            if not values or all(not v.strip() for v in values):
                continue
            yield line_no + reader.line_num, dict(zip(header, values, strict=False))


def _check_columns(path: Path, header: list[str]) -> None:
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise PriceError(
            f"{path}: missing column(s) {', '.join(missing)}; need {', '.join(COLUMNS)}, "
            f"found {', '.join(header) or 'none'}"
        )


def _parquet_rows(path: Path, notes: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:
        raise PriceError(f"cannot read Parquet price file {path}: {exc}") from exc
    meta = pf.schema_arrow.metadata or {}
    if NOTE_KEY in meta:
        notes.extend(meta[NOTE_KEY].decode("utf-8", "replace").splitlines())
    _check_columns(path, [n.lower() for n in pf.schema_arrow.names])
    names = {n.lower(): n for n in pf.schema_arrow.names}
    line = 0
    for batch in pf.iter_batches(columns=[names[c] for c in COLUMNS]):
        cols = dict(zip(COLUMNS, batch.columns, strict=True))
        ts = cols["timestamp"]
        if str(ts.type).startswith("timestamp"):
            ts = pc.cast(ts, pa.timestamp("ms")).cast("int64")  # naive = UTC
        values = {k: (ts if k == "timestamp" else v).to_pylist() for k, v in cols.items()}
        for i in range(batch.num_rows):
            line += 1
            yield line, {k: values[k][i] for k in COLUMNS}


def _parse_row(line: int, row: dict[str, Any]) -> tuple[str, int, float] | BadRow:
    raw_ticker = row.get("ticker")
    ticker = normalise_ticker(raw_ticker) if isinstance(raw_ticker, str) else None
    if ticker is None:
        return BadRow(line, "bad_ticker", f"{str(raw_ticker)[:32]!r} is not a ticker")
    try:
        value = row.get("timestamp")
        if isinstance(value, str):
            value = value.strip()
        when = datetime_to_ms(parse_event_time(value))
    except ValueError as exc:
        return BadRow(line, "bad_timestamp", str(exc))
    try:
        price = float(row.get("price"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return BadRow(line, "bad_price", f"{str(row.get('price'))[:32]!r} is not a number")
    if not math.isfinite(price) or price <= 0:
        return BadRow(line, "bad_price", f"{price!r} is not a positive finite price")
    return ticker, when, price


def load_prices(path: Path, fmt: str | None = None) -> PriceTable:
    """Read and validate a price file (see the module docstring for the format)."""
    if not path.is_file():
        raise PriceError(f"price file {path} does not exist")
    name = path.name.lower()
    kind = fmt or ("parquet" if name.endswith((".parquet", ".pq")) else "csv")
    if kind not in ("csv", "parquet"):
        raise PriceError(f"price file format must be csv or parquet, got {kind!r}")
    notes: list[str] = []
    table = PriceTable(source=str(path), series={})
    columns: dict[str, tuple[list[int], list[float]]] = {}
    rows = _parquet_rows(path, notes) if kind == "parquet" else _csv_rows(path, notes)
    try:
        for line, row in rows:
            table.rows += 1
            parsed = _parse_row(line, row)
            if isinstance(parsed, BadRow):
                table.bad[parsed.reason] += 1
                if len(table.bad_rows) < _MAX_BAD_LISTED:
                    table.bad_rows.append(parsed)
                continue
            ticker, when, price = parsed
            times, prices = columns.setdefault(ticker, ([], []))
            times.append(when)
            prices.append(price)
    except (OSError, UnicodeDecodeError, csv.Error, EOFError) as exc:
        raise PriceError(f"cannot read price file {path}: {exc}") from exc
    for ticker, (times, prices) in sorted(columns.items()):
        t = np.asarray(times, dtype=np.int64)
        p = np.asarray(prices, dtype=np.float64)
        order = np.argsort(t, kind="stable")  # stable: among equal times, file order
        t, p = t[order], p[order]
        last_of_run = np.append(t[1:] != t[:-1], True)  # keep the later row of a duplicate
        table.duplicates += int(len(t) - last_of_run.sum())
        table.series[ticker] = PriceSeries(t[last_of_run], p[last_of_run])
    if not table.series:
        first = f"; first: {table.bad_rows[0]}" if table.bad_rows else ""
        raise PriceError(f"{path}: no valid price rows ({table.rows} rows read{first})")
    table.notes = notes
    table.synthetic = "synthetic" in name or any("synthetic" in n.lower() for n in notes)
    return table


@dataclass(frozen=True)
class Entry:
    """One forward return, or why it is missing (``ret`` None and ``missing`` set)."""

    entry_ms: int | None = None
    entry_price: float | None = None
    exit_ms: int | None = None
    exit_price: float | None = None
    ret: float | None = None
    missing: str | None = None


def forward_return(series: PriceSeries | None, t_ms: int, h_ms: int, tolerance_ms: int) -> Entry:
    """The return from ``t_ms`` to ``t_ms + h_ms`` under the rule of the module docstring."""
    if series is None:
        return Entry(missing="no_prices_for_ticker")
    times = series.times_ms
    i = int(np.searchsorted(times, t_ms, side="right")) - 1
    if i < 0:
        return Entry(missing="before_first_price")
    entry_ms = int(times[i])
    if t_ms - entry_ms > tolerance_ms:
        return Entry(missing="stale_entry")
    end = t_ms + h_ms
    if end > series.last_ms + tolerance_ms:
        return Entry(missing="beyond_last_price")
    j = int(np.searchsorted(times, end, side="right")) - 1
    exit_ms = int(times[j])
    if end - exit_ms > tolerance_ms:
        return Entry(missing="stale_exit")
    if j == i:
        return Entry(missing="no_new_price")
    p0, p1 = float(series.prices[i]), float(series.prices[j])
    return Entry(entry_ms, p0, exit_ms, p1, p1 / p0 - 1.0)


def forward_returns(
    series: PriceSeries, t_ms: np.ndarray, h_ms: int, tolerance_ms: int
) -> np.ndarray:
    """``forward_return`` for many times at once; NaN where the return would be missing.

    Vectorised for the random-time baseline (thousands of draws); the per-alert path uses
    ``forward_return`` so each missing value keeps its reason.
    """
    times, prices = series.times_ms, series.prices
    i = np.searchsorted(times, t_ms, side="right") - 1
    end = t_ms + h_ms
    j = np.searchsorted(times, end, side="right") - 1
    ok = i >= 0
    ii, jj = np.clip(i, 0, None), np.clip(j, 0, None)
    ok &= t_ms - times[ii] <= tolerance_ms
    ok &= end <= series.last_ms + tolerance_ms
    ok &= end - times[jj] <= tolerance_ms
    ok &= jj > ii
    out = np.full(t_ms.shape, np.nan)
    out[ok] = prices[jj[ok]] / prices[ii[ok]] - 1.0
    return out
