"""Synthetic but realistic news feeds for demos, tests and the evaluation of detectors.

Every headline is a real one from the vendored, labelled Twitter Financial News tweets,
unchanged: a real model sees real language and the entity linker finds the companies the
text itself names. Only *when* items arrive is synthetic, plus one kind of rewrite that
really happens: syndication. Arrivals follow a daily rhythm (busier during US market
hours, quiet at night and at weekends, with random dead gaps); on top, events of four
kinds (issue 11) are injected for chosen tickers, each written to the ground truth with
its ``kind`` (and each event row carries its ``event_id``, prefixed by the kind):

* ``negative``: a burst of distinct Bearish headlines whose subject is the company (the
  linker's top link, or its cashtag, at relevance >= 0.8: named in the first third of a
  headline that names no other company), arriving front-loaded like
  breaking news;
* ``positive``: the same with Bullish headlines (a rally);
* ``volume``: the same with Neutral headlines (a surge of attention, no tone);
* ``storm``: ONE Bearish headline about the company and copies of it from other outlets
  (``stream_app.offline.syndication.rewrite``: source tags, case, links, truncation, ...),
  which a story-aware detector must not alert on.

"Distinct" is checked with the novelty module, so a burst is as many stories as items.
Background items are the other labelled headlines, drawn without replacement, so no text
repeats by accident. Everything is derived from ``random.Random`` seeded by ``seed``: the
same arguments give the same bytes, which is what lets tests and the shipped sample be
regenerated exactly.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

from models.errors import FinpulseError
from models.labels import DATASET_SENTIMENT_TO_LABEL, SENTIMENT_LABELS
from stream_app.core import novelty
from stream_app.core.entities import extract_cashtags, text_links
from stream_app.offline.syndication import rewrite

if TYPE_CHECKING:
    from stream_app.core.linking import CompanyLinker

__all__ = [
    "DEFAULT_EVENTS",
    "DEFAULT_START",
    "DEFAULT_TICKERS",
    "EVENT_KINDS",
    "BurstSpec",
    "EventKind",
    "GeneratedFeed",
    "LabelledText",
    "SampleError",
    "generate_feed",
    "load_labelled_texts",
    "packaged_linker",
    "parse_burst",
    "parse_event_counts",
    "write_feed",
]

DEFAULT_START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday, well in the past of "now"
DEFAULT_TICKERS: tuple[str, ...] = (
    "AAPL", "MSFT", "AMZN", "GOOGL", "META", "TSLA", "NVDA", "JPM", "BAC", "XOM",
    "WMT", "DIS", "NFLX", "INTC", "AMD", "BA", "KO", "PFE", "GS", "NKE",
)  # fmt: skip
BEARISH, BULLISH, NEUTRAL = 0, 1, 2
EventKind = Literal["negative", "positive", "volume", "storm"]
EVENT_KINDS: Final[tuple[EventKind, ...]] = get_args(EventKind)
DEFAULT_EVENTS: Final[dict[EventKind, int]] = {
    "negative": 4,
    "positive": 2,
    "volume": 2,
    "storm": 3,
}
_LABEL: Final[dict[EventKind, int]] = {
    "negative": BEARISH, "positive": BULLISH, "volume": NEUTRAL, "storm": BEARISH,
}  # fmt: skip
# Random events: (fewest distinct headlines a ticker needs, item range, minutes range).
_RANDOM_SHAPE: Final[dict[EventKind, tuple[int, tuple[int, int], tuple[int, int]]]] = {
    "negative": (12, (12, 15), (15, 30)),
    "positive": (9, (9, 11), (20, 40)),  # minutes stay under _SLOT
    "volume": (15, (15, 20), (20, 30)),
    "storm": (1, (10, 14), (10, 20)),
}
OUTLETS: Final = ("reuters", "bloomberg", "dowjones", "cnbc", "marketwatch", "seekingalpha",
                  "benzinga", "ft", "wsj", "yahoo")  # fmt: skip
# A headline is about a company when the linker's relevance is at least this: the name in
# the first third of the text, and no second company (relevance / sqrt(2) < 0.8). Lower,
# and "..., underperforming by 3.2ppt: BofA" would count as a story about Bank of America.
SUBJECT_RELEVANCE: Final = 0.8
_BURST_SPEC = re.compile(
    r"^(?:(?P<kind>[a-z]+):)?(?P<ticker>[A-Z][A-Z0-9.\-]{0,9})@(?P<start>[^/]+)/(?P<minutes>\d+)m?/(?P<n>\d+)$"
)
_SLOT = timedelta(minutes=45)  # random events start this far apart; none lasts longer
_GAP_COUNT_PER_DAY = 3
_BURST_DECAY = 6.0  # burst span / mean offset of a burst item
_MAX_TICKERS = 8  # well under Settings.max_tickers, so no sample row is dead-lettered


class SampleError(FinpulseError):
    """Bad generator arguments (event spec, sizes) or an unreadable source corpus."""


@dataclass(frozen=True)
class LabelledText:
    text: str
    label: int  # dataset id: 0 Bearish, 1 Bullish, 2 Neutral


@dataclass(frozen=True)
class BurstSpec:
    """An event: ``count`` items about ``ticker`` over ``[start, start + minutes)``.

    For a storm, ``count`` is the number of copies of its one story (the original included).
    """

    ticker: str
    start: datetime
    minutes: int
    count: int
    kind: EventKind = "negative"

    @property
    def end(self) -> datetime:
        return self.start + timedelta(minutes=self.minutes)

    def spec(self) -> str:
        """The ``parse_burst`` form (negative bursts keep the short form)."""
        prefix = "" if self.kind == "negative" else f"{self.kind}:"
        return f"{prefix}{self.ticker}@{_iso(self.start)}/{self.minutes}/{self.count}"


@dataclass
class GeneratedFeed:
    rows: list[dict[str, Any]]
    truth: dict[str, Any]
    bursts: list[BurstSpec] = field(default_factory=list)


def parse_burst(spec: str) -> BurstSpec:
    """``[KIND:]TICKER@ISO_START/MINUTES/COUNT``, e.g. ``storm:NFLX@2026-11-02T15:30Z/15/12``.

    Without a kind the event is a negative burst (the form before issue 11).
    """
    m = _BURST_SPEC.match(spec.strip())
    if not m:
        raise SampleError(f"bad burst {spec!r}: expected [KIND:]TICKER@ISO_START/MINUTES/COUNT")
    kind = m["kind"] or "negative"
    if kind not in EVENT_KINDS:
        raise SampleError(f"bad burst kind {kind!r} in {spec!r}: one of {', '.join(EVENT_KINDS)}")
    try:
        start = datetime.fromisoformat(m["start"].replace("Z", "+00:00"))
    except ValueError:
        raise SampleError(f"bad burst start time {m['start']!r} in {spec!r}") from None
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    minutes, count = int(m["minutes"]), int(m["n"])
    if minutes < 1 or count < 1:
        raise SampleError(f"burst {spec!r} needs at least 1 minute and 1 item")
    return BurstSpec(m["ticker"], start.astimezone(UTC), minutes, count, kind)


def parse_event_counts(specs: Sequence[str]) -> dict[EventKind, int]:
    """``["negative=4", "storm=3"]`` -> how many random events of each kind."""
    out: dict[EventKind, int] = {}
    for spec in specs:
        kind, sep, n = spec.partition("=")
        if not sep or kind not in EVENT_KINDS or not n.isdigit():
            raise SampleError(f"bad event count {spec!r}: expected KIND=N, KIND one of "
                              f"{', '.join(EVENT_KINDS)}")  # fmt: skip
        out[kind] = int(n)
    return out


def packaged_linker() -> CompanyLinker:
    """The company linker over the packaged alias table (the worker's, without user aliases)."""
    from finpulse.resources import alias_files
    from stream_app.core.linking import CompanyLinker

    return CompanyLinker.from_files(*alias_files())


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


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Pools:
    """Headlines per (subject ticker, label), in corpus order: all, and distinct stories."""

    headlines: dict[tuple[str, int], list[str]]
    stories: dict[tuple[str, int], list[str]]

    def of(self, ticker: str, kind: EventKind) -> list[str]:
        return self.stories.get((ticker, _LABEL[kind]), [])


def _pools(texts: Sequence[LabelledText], linker: CompanyLinker) -> _Pools:
    """Headlines by subject and label; near-duplicates of a kept one are left out.

    Links are found exactly as the worker finds them (``text_links`` over the row's
    cashtags and the names in the text), so an event's company is the one it counts for.
    """
    by_key: dict[tuple[str, int], list[str]] = {}
    for t in dict.fromkeys(texts):
        tags = extract_cashtags(t.text, limit=_MAX_TICKERS)
        links = text_links(t.text, linker, _MAX_TICKERS, tickers=tags)
        top = max(links, key=lambda link: link.relevance, default=None)
        if top is not None and top.relevance >= SUBJECT_RELEVANCE:
            by_key.setdefault((top.ticker, t.label), []).append(t.text)
    stories: dict[tuple[str, int], list[str]] = {}
    for key, pool in by_key.items():
        index = novelty.StoryIndex(window_ms=1, max_keys=10 * novelty.BANDS * len(pool))
        stories[key] = [
            text
            for text, sig in zip(pool, novelty.signatures(pool), strict=True)
            if not index.observe(sig, text, 0)[1]
        ]
    return _Pools(by_key, stories)


def _random_events(
    rng: random.Random,
    counts: Mapping[EventKind, int],
    pools: _Pools,
    start: datetime,
    hours: float,
    tickers: Sequence[str],
) -> list[BurstSpec]:
    """Events on distinct tickers with enough distinct stories, in busy hours, spread out.

    Tickers in ``tickers`` are preferred, then those with the most stories of the kind.
    """
    planned: list[tuple[EventKind, str, int, int]] = []
    used: set[str] = set()
    listed = set(tickers)
    for kind in EVENT_KINDS:
        need, items, minutes = _RANDOM_SHAPE[kind]
        for _ in range(counts.get(kind, 0)):
            label = _LABEL[kind]
            ranked = sorted(
                (t for (t, lab), pool in pools.stories.items()
                 if lab == label and len(pool) >= need and t not in used),
                key=lambda t: (t not in listed, -len(pools.of(t, kind)), t),
            )  # fmt: skip
            if not ranked:
                raise SampleError(f"no ticker left with {need} distinct {kind} headlines")
            ticker = rng.choice(ranked[:6])
            used.add(ticker)
            count = rng.randint(*items)
            if kind != "storm":  # a storm is copies of one story; the others need stories
                count = min(count, len(pools.of(ticker, kind)))
            planned.append((kind, ticker, count, rng.randint(*minutes)))
    rng.shuffle(planned)
    slots = _busy_slots(start, hours) or [start + timedelta(hours=hours / 2)]
    step = len(slots) / max(len(planned), 1)
    events = [
        BurstSpec(ticker, slots[int(i * step) % len(slots)], span, count, kind)
        for i, (kind, ticker, count, span) in enumerate(planned)
    ]
    return sorted(events, key=lambda b: (b.start, b.ticker))


def _busy_slots(start: datetime, hours: float) -> list[datetime]:
    """Event starts in US market hours, _SLOT apart so events never overlap."""
    first = start.replace(hour=0, minute=0, second=0, microsecond=0)
    last = start + timedelta(hours=hours) - timedelta(hours=1)
    out = []
    for day in range(int(hours // 24) + 2):
        t = first + timedelta(days=day, hours=14)
        while t.hour < 19:
            if start <= t <= last and t.weekday() < 5:
                out.append(t)
            t += _SLOT
    return out


def _event_texts(rng: random.Random, spec: BurstSpec, pools: _Pools) -> list[tuple[str, str]]:
    """(headline, source) of each item: distinct stories, or one story and its copies."""
    pool = pools.of(spec.ticker, spec.kind)
    if spec.kind == "storm":
        if not pool:
            raise SampleError(f"no Bearish headline is about {spec.ticker} for a storm")
        story = rng.choice(pool)
        outlets = rng.sample(OUTLETS, len(OUTLETS))
        copies = [rewrite(story, rng, edits=rng.randint(1, 3), ticker=spec.ticker)
                  for _ in range(spec.count - 1)]  # fmt: skip
        return [(text, outlets[i % len(outlets)]) for i, text in enumerate([story, *copies])]
    if spec.count > len(pool):
        raise SampleError(
            f"{spec.spec()}: the corpus has {len(pool)} distinct "
            f"{('Bearish', 'Bullish', 'Neutral')[_LABEL[spec.kind]]} headlines about {spec.ticker}"
        )
    return [(text, "sample") for text in rng.sample(pool, spec.count)]


def generate_feed(
    texts: Sequence[LabelledText],
    *,
    items: int,
    seed: int,
    start: datetime = DEFAULT_START,
    hours: float = 48.0,
    bursts: Sequence[BurstSpec] | Mapping[EventKind, int] | int = 4,
    tickers: Sequence[str] = DEFAULT_TICKERS,
    linker: CompanyLinker | None = None,
) -> GeneratedFeed:
    """A feed of ``items`` rows (events included) in event-time order, plus its ground truth.

    ``bursts``: explicit events, or how many random events of each kind (an int: that many
    negative bursts). ``linker`` finds each headline's subject (default: the packaged one).
    """
    if items < 1 or hours <= 0:
        raise SampleError("need items >= 1 and hours > 0")
    rng = random.Random(seed)
    pools = _pools(texts, linker or packaged_linker())
    if isinstance(bursts, int | Mapping):
        counts = {"negative": bursts} if isinstance(bursts, int) else bursts
        event_rng = random.Random(f"{seed}:bursts")
        specs = _random_events(event_rng, counts, pools, start, hours, tickers)  # type: ignore[arg-type]
    else:
        specs = sorted(bursts, key=lambda b: b.start)
    event_items = sum(b.count for b in specs)
    if event_items >= items:
        raise SampleError(f"{items} items cannot hold {event_items} event items plus background")

    rows: list[tuple[datetime, dict[str, Any]]] = []
    truth_events = []
    taken: set[str] = set()
    for i, spec in enumerate(specs, start=1):
        event_id = f"{spec.kind}-{i}-{spec.ticker.lower()}"
        span_ms = spec.minutes * 60_000
        offsets = sorted(_burst_offset(rng, span_ms) for _ in range(spec.count))
        for off, (text, source) in zip(offsets, _event_texts(rng, spec, pools), strict=True):
            row = {"headline": text, "source": source, "event_id": event_id}
            rows.append((spec.start + timedelta(milliseconds=off), row))
        # No other headline like the event's (its ticker, its tone) anywhere else in the feed.
        taken.update(pools.headlines.get((spec.ticker, _LABEL[spec.kind]), ()))
        truth_events.append({
            "event_id": event_id, "kind": spec.kind, "entity": f"ticker:{spec.ticker}",
            "start": _iso(spec.start), "end": _iso(spec.end), "items": spec.count,
        })  # fmt: skip
    background = [t.text for t in dict.fromkeys(texts) if t.text not in taken]
    if not background:
        raise SampleError("no labelled texts left for the background")
    order: list[str] = []
    for when in _arrival_times(rng, start, hours, items - event_items):
        if not order:  # without replacement; a feed longer than the corpus starts over
            order = rng.sample(background, len(background))
        rows.append((when, {"headline": order.pop(), "source": "sample"}))
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
            "bursts": [b.spec() for b in specs],
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
