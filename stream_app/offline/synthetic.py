"""Synthetic but realistic news feeds for demos, tests and threshold tuning.

Texts are the vendored, labelled Twitter Financial News tweets, so a real model sees real
language; only *when* they arrive and *which ticker* they name is synthetic. Arrivals
follow a daily rhythm (busier during US market hours, quiet at night and at weekends, with
random dead gaps), and negative bursts are injected for chosen tickers: Bearish texts whose
cashtag is rewritten to the burst ticker, arriving front-loaded like breaking news (most
items in the first minutes, then decaying). Every burst is written to a ground-truth side file
(and each burst row carries its ``event_id``), so a backtest can score its alerts.

Everything is derived from one ``random.Random(seed)``: the same arguments give the same
bytes, which is what lets tests and the shipped sample be regenerated exactly.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from models.errors import FinpulseError
from models.labels import DATASET_SENTIMENT_TO_LABEL, SENTIMENT_LABELS
from stream_app.core.entities import extract_cashtags

__all__ = [
    "DEFAULT_START",
    "DEFAULT_TICKERS",
    "BurstSpec",
    "GeneratedFeed",
    "LabelledText",
    "SampleError",
    "generate_feed",
    "load_labelled_texts",
    "parse_burst",
    "write_feed",
]

DEFAULT_START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday, well in the past of "now"
DEFAULT_TICKERS: tuple[str, ...] = (
    "AAPL", "MSFT", "AMZN", "GOOGL", "META", "TSLA", "NVDA", "JPM", "BAC", "XOM",
    "WMT", "DIS", "NFLX", "INTC", "AMD", "BA", "KO", "PFE", "GS", "NKE",
)  # fmt: skip
BEARISH, BULLISH, NEUTRAL = 0, 1, 2
CASHTAG = re.compile(r"\$[A-Za-z]{1,6}(?:\.[A-Za-z]{1,2})?\b")
_BURST_SPEC = re.compile(r"^(?P<ticker>[A-Z]{1,6})@(?P<start>[^/]+)/(?P<minutes>\d+)m?/(?P<n>\d+)$")
# Share of background items re-pointed at a listed ticker, so listed tickers have a baseline.
_LISTED_SHARE = 0.35
_GAP_COUNT_PER_DAY = 3
_BURST_DECAY = 6.0  # burst span / mean offset of a burst item
_MAX_TICKERS = 8  # well under Settings.max_tickers, so no sample row is dead-lettered


class SampleError(FinpulseError):
    """Bad generator arguments (burst spec, sizes) or an unreadable source corpus."""


@dataclass(frozen=True)
class LabelledText:
    text: str
    label: int  # dataset id: 0 Bearish, 1 Bullish, 2 Neutral


@dataclass(frozen=True)
class BurstSpec:
    """``count`` Bearish items about ``ticker`` spread over ``[start, start + minutes)``."""

    ticker: str
    start: datetime
    minutes: int
    count: int

    @property
    def end(self) -> datetime:
        return self.start + timedelta(minutes=self.minutes)


@dataclass
class GeneratedFeed:
    rows: list[dict[str, Any]]
    truth: dict[str, Any]
    bursts: list[BurstSpec] = field(default_factory=list)


def parse_burst(spec: str) -> BurstSpec:
    """``TICKER@ISO_START/MINUTES/COUNT``, e.g. ``TSLA@2026-11-02T15:30:00Z/20/30``."""
    m = _BURST_SPEC.match(spec.strip())
    if not m:
        raise SampleError(f"bad burst {spec!r}: expected TICKER@ISO_START/MINUTES/COUNT")
    try:
        start = datetime.fromisoformat(m["start"].replace("Z", "+00:00"))
    except ValueError:
        raise SampleError(f"bad burst start time {m['start']!r} in {spec!r}") from None
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    minutes, count = int(m["minutes"]), int(m["n"])
    if minutes < 1 or count < 1:
        raise SampleError(f"burst {spec!r} needs at least 1 minute and 1 item")
    return BurstSpec(m["ticker"], start.astimezone(UTC), minutes, count)


def load_labelled_texts(data_dir: Path | None = None) -> list[LabelledText]:
    """All sentiment texts of the vendored corpus (train then valid, file order).

    Read through ``training.data``, the one reader of the labelled CSVs; labels are mapped
    back to the dataset's ids (0 Bearish, 1 Bullish, 2 Neutral) that the generator uses.
    """
    from training.data import DatasetError, load_split

    to_dataset = {SENTIMENT_LABELS.index(name): i for i, name in DATASET_SENTIMENT_TO_LABEL.items()}
    out: list[LabelledText] = []
    try:
        for split in ("train", "valid"):
            data = load_split("sentiment", split, data_dir)
            pairs = zip(data.texts, data.labels, strict=True)
            out += [LabelledText(t.strip(), to_dataset[y]) for t, y in pairs]
    except DatasetError as exc:
        raise SampleError(str(exc)) from exc
    return out


def _minute_weight(t: datetime) -> float:
    """Relative news rate at a UTC minute: US market hours busiest, nights and weekends quiet."""
    hour = t.hour + t.minute / 60
    if t.weekday() >= 5:
        return 0.15
    if 13.5 <= hour < 20.0:  # 09:30-16:00 New York
        return 1.0
    if 11.0 <= hour < 13.5 or 20.0 <= hour < 23.0:  # pre-market, after hours
        return 0.45
    return 0.12


def _arrival_times(rng: random.Random, start: datetime, hours: float, n: int) -> list[datetime]:
    minutes = max(1, int(hours * 60))
    weights = [_minute_weight(start + timedelta(minutes=i)) for i in range(minutes)]
    for _ in range(max(1, round(_GAP_COUNT_PER_DAY * hours / 24))):
        gap_start, gap_len = rng.randrange(minutes), rng.randint(5, 40)
        for i in range(gap_start, min(minutes, gap_start + gap_len)):
            weights[i] = 0.0
    picks = rng.choices(range(minutes), weights=weights, k=n)
    return sorted(start + timedelta(minutes=m, milliseconds=rng.randrange(60_000)) for m in picks)


def _burst_offset(rng: random.Random, span_ms: int) -> int:
    """Breaking news arrives front-loaded: exponential decay, mean a sixth of the span."""
    while True:
        off = int(rng.expovariate(_BURST_DECAY / span_ms))
        if off < span_ms:
            return off


def _retarget(text: str, ticker: str) -> str:
    """The text about ``ticker``: its first cashtag replaced, or the cashtag prepended.

    Checked with the live cashtag extractor, so the row surely counts for ``ticker``.
    """
    tag = f"${ticker}"
    rewritten = CASHTAG.sub(tag, text, count=1)
    if ticker in extract_cashtags(rewritten):
        return rewritten
    return f"{tag} {text}"


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _random_bursts(
    rng: random.Random, n: int, start: datetime, hours: float, tickers: Sequence[str]
) -> list[BurstSpec]:
    """``n`` bursts on distinct tickers, in busy hours, spread so they do not overlap."""
    if n > len(tickers):
        raise SampleError(f"{n} bursts need at least {n} tickers")
    chosen = rng.sample(list(tickers), n)
    slots = [start + timedelta(hours=hours * (i + 0.5) / n) for i in range(n)]
    out = []
    for ticker, centre in zip(chosen, slots, strict=True):
        # Move into the busy part of that day so the burst competes with real traffic.
        day = centre.replace(hour=0, minute=0, second=0, microsecond=0)
        when = day + timedelta(hours=14 + rng.random() * 5, minutes=0)
        if not start <= when < start + timedelta(hours=hours) - timedelta(minutes=60):
            when = centre
        when = when.replace(second=0, microsecond=0)
        out.append(BurstSpec(ticker, when, rng.randint(15, 30), rng.randint(25, 40)))
    return sorted(out, key=lambda b: b.start)


def generate_feed(
    texts: Sequence[LabelledText],
    *,
    items: int,
    seed: int,
    start: datetime = DEFAULT_START,
    hours: float = 48.0,
    bursts: Sequence[BurstSpec] | int = 4,
    tickers: Sequence[str] = DEFAULT_TICKERS,
) -> GeneratedFeed:
    """A feed of ``items`` rows (bursts included) in event-time order, plus its ground truth."""
    if items < 1 or hours <= 0:
        raise SampleError("need items >= 1 and hours > 0")
    rng = random.Random(seed)
    specs = (
        _random_bursts(random.Random(f"{seed}:bursts"), bursts, start, hours, tickers)
        if isinstance(bursts, int)
        else sorted(bursts, key=lambda b: b.start)
    )
    burst_items = sum(b.count for b in specs)
    if burst_items >= items:
        raise SampleError(f"{items} items cannot hold {burst_items} burst items plus background")
    bearish = [t for t in texts if t.label == BEARISH]
    if not bearish:
        raise SampleError("the corpus has no Bearish texts to build bursts from")

    rows: list[tuple[datetime, dict[str, Any]]] = []
    for when in _arrival_times(rng, start, hours, items - burst_items):
        source = rng.choice(texts)
        text = source.text
        if rng.random() < _LISTED_SHARE:
            text = _retarget(text, rng.choice(list(tickers)))
        rows.append((when, {"headline": text, "source": "sample", "label": source.label}))
    truth_events = []
    for i, burst in enumerate(specs, start=1):
        event_id = f"burst-{i}-{burst.ticker.lower()}"
        span_ms = burst.minutes * 60_000
        offsets = sorted(_burst_offset(rng, span_ms) for _ in range(burst.count))
        for off in offsets:
            text = _retarget(rng.choice(bearish).text, burst.ticker)
            row = {"headline": text, "source": "sample", "label": BEARISH, "event_id": event_id}
            rows.append((burst.start + timedelta(milliseconds=off), row))
        truth_events.append(
            {
                "event_id": event_id,
                "entity": f"ticker:{burst.ticker}",
                "start": _iso(burst.start),
                "end": _iso(burst.end),
                "items": burst.count,
            }
        )
    rows.sort(key=lambda r: r[0])
    out: list[dict[str, Any]] = []
    for n, (when, row) in enumerate(rows):
        digest = hashlib.sha256(f"{seed}:{n}:{row['headline']}".encode()).hexdigest()[:16]
        record: dict[str, Any] = {
            "id": f"s{seed}-{n:07d}-{digest}",
            "published_at": _iso(when),
            "source": row["source"],
            "headline": row["headline"],
            "tickers": extract_cashtags(str(row["headline"]), limit=_MAX_TICKERS),
        }
        if "event_id" in row:
            record["event_id"] = row["event_id"]
        out.append(record)
    truth = {
        "generator": {
            "seed": seed,
            "items": items,
            "start": _iso(start),
            "hours": hours,
            "bursts": [f"{b.ticker}@{_iso(b.start)}/{b.minutes}/{b.count}" for b in specs],
        },
        "items": len(out),
        "start": _iso(start),
        "end": _iso(start + timedelta(hours=hours)),
        "events": truth_events,
    }
    return GeneratedFeed(out, truth, list(specs))


def write_feed(feed: GeneratedFeed, output: Path, truth_path: Path | None = None) -> Path:
    """Write rows as JSONL, CSV or Parquet (by suffix) and the truth JSON; returns truth path."""
    output.parent.mkdir(parents=True, exist_ok=True)
    suffix = output.suffix.lower()
    if suffix in {".jsonl", ".json", ".ndjson"}:
        with output.open("w", encoding="utf-8") as fh:
            for row in feed.rows:
                fh.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
    elif suffix == ".csv":
        cols = ["id", "published_at", "source", "headline", "tickers", "event_id"]
        with output.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=cols)
            writer.writeheader()
            for row in feed.rows:
                writer.writerow({**row, "tickers": ";".join(row["tickers"])})
    elif suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols = ["id", "published_at", "source", "headline", "tickers", "event_id"]
        table = pa.table({c: [row.get(c) for row in feed.rows] for c in cols})
        pq.write_table(table, output)
    else:
        raise SampleError(f"unknown feed format {output.suffix!r}: use .jsonl, .csv or .parquet")
    truth_path = truth_path or output.with_name(output.stem + ".truth.json")
    truth_path.write_text(json.dumps(feed.truth, indent=2) + "\n", encoding="utf-8")
    return truth_path
