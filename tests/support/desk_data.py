"""A realistic desk for dashboard tests: a few dozen entities with three hours of buckets,
alerts as the worker publishes them (built with ``stream_app.schemas.Alert``) and
headlines with entity-link spans. Deterministic for a seed.
"""

from __future__ import annotations

import random
from typing import Any

from stream_app.config import DetectorSettings, WindowSettings
from stream_app.core.detector import severity, stats
from stream_app.core.windows import Counts, WindowGeometry
from stream_app.schemas import Alert, Evidence, alert_id, ms_to_datetime
from stream_app.service.dashboard.source import EntityState, Headline, HeadlineLink
from tests.support.dashboard_source import MemoryDashboardSource

__all__ = ["CLOCK_MS", "DETECTOR", "WINDOW", "burst_alert", "fill_desk", "linked"]

WINDOW = WindowSettings(
    bucket_seconds=60, window_seconds=900, baseline_seconds=14_400, retention_seconds=28_800
)
DETECTOR = DetectorSettings()
CLOCK_MS = 1_795_000_000_000 - (1_795_000_000_000 % 60_000) + 42_000  # 42 s into a minute

TICKERS = [
    ("TSLA", "Tesla"), ("AAPL", "Apple"), ("MSFT", "Microsoft"), ("NVDA", "Nvidia"),
    ("AMZN", "Amazon"), ("META", "Meta"), ("GOOGL", "Alphabet"), ("JPM", "JPMorgan"),
    ("BA", "Boeing"), ("XOM", "Exxon"), ("PFE", "Pfizer"), ("DIS", "Disney"),
    ("NFLX", "Netflix"), ("INTC", "Intel"), ("AMD", "AMD"), ("KO", "Coca-Cola"),
    ("WMT", "Walmart"), ("GS", "Goldman Sachs"), ("CVX", "Chevron"), ("UBER", "Uber"),
]  # fmt: skip
TOPICS = ["earnings", "macro", "mergers-acquisitions", "analyst-update", "fed-central-banks"]
TEMPLATES = [
    "{name} shares slip after guidance cut",
    "{name} beats estimates as demand holds up",
    "Analysts keep {name} at neutral ahead of results",
    "{name} names new finance chief",
    "{name} faces probe over accounting practices",
    "{name} raises dividend, buyback on track",
]


def linked(text: str, name: str, entity: str) -> tuple[HeadlineLink, ...]:
    """A name link for the first occurrence of ``name`` in ``text`` (code-point span)."""
    at = text.find(name)
    if at < 0:
        return ()
    return (HeadlineLink(entity, "name", (at, at + len(name)), 0.9),)


def _buckets(rng: random.Random, last: int, n: int, rate: float, p_neg: float) -> dict[int, Counts]:
    out: dict[int, Counts] = {}
    for b in range(last - n + 1, last + 1):
        total = max(0, round(rng.gauss(rate, rate**0.5)))
        if total == 0:
            continue
        neg = sum(rng.random() < p_neg for _ in range(total))
        pos = sum(rng.random() < 0.3 for _ in range(total - neg))
        out[b] = Counts(neg, total - neg - pos, pos, round(neg * 850_000 + (total - neg) * 60_000))
    return out


def _sums(
    buckets: dict[int, Counts], geometry: WindowGeometry, clock_ms: int
) -> tuple[Counts, Counts]:
    window, baseline = Counts(), Counts()
    for b in geometry.window_range(clock_ms):
        window.add(buckets.get(b, Counts()))
    last = geometry.bucket(clock_ms)  # the baseline: (B - baseline, B - window]
    for b in range(last - geometry.baseline_buckets + 1, last - geometry.window_buckets + 1):
        baseline.add(buckets.get(b, Counts()))
    return window, baseline


def burst_alert(
    entity: str, name: str, window: Counts, baseline: Counts, clock_ms: int, episode: int = 1
) -> dict[str, Any]:
    """The ``firing`` alert the detector would publish now, as wire JSON, with evidence
    whose ``links`` carry name spans (issue 10's evidence format)."""
    s = stats(window, baseline, DETECTOR)
    start, end = WindowGeometry.of(WINDOW).window_bounds_ms(clock_ms)
    heads = [
        f"{name} recalls 2 million vehicles over safety flaw",
        f"Regulators widen probe into {name} after crash reports",
        f"{name} shares tumble as recall costs mount",
    ]
    alert = Alert(
        alert_id=alert_id(entity, episode, clock_ms, "firing"),
        state="firing",
        entity=entity,
        severity=severity(s.z, DETECTOR.fire_z),
        episode=episode,
        episode_start=ms_to_datetime(clock_ms),
        window_start=ms_to_datetime(start),
        window_end=ms_to_datetime(end),
        negative_count=s.count,
        total_count=s.total,
        negative_share=s.share,
        baseline_share=s.baseline,
        count=s.count,
        share=s.share,
        score=s.z,
        threshold=DETECTOR.fire_z,
        evidence=[
            Evidence(id=f"ev-{i}", headline=h, negative_prob=0.97 - i / 50)
            for i, h in enumerate(heads)
        ],
        model_version="test-model",
        fired_at=ms_to_datetime(clock_ms),
    )
    wire = alert.model_dump(mode="json")
    wire["kind"] = "negative"
    for item in wire["evidence"]:
        at = item["headline"].find(name)
        item["links"] = [
            {"entity": entity, "via": "name", "span": [at, at + len(name)], "relevance": 0.9}
        ]
    return wire


def fill_desk(source: MemoryDashboardSource, clock_ms: int = CLOCK_MS, seed: int = 7) -> None:
    """Entities with 4 h of calm buckets (a busy few, many quiet), their headlines, and
    two alerts that already fired and resolved."""
    rng = random.Random(seed)
    g = WindowGeometry.of(WINDOW)
    last = g.bucket(clock_ms)
    entities = [(f"ticker:{sym}", name) for sym, name in TICKERS]
    entities += [(f"topic:{t}", t.replace("-", " ")) for t in TOPICS] + [("market", "market")]
    for i, (entity, name) in enumerate(entities):
        rate = 6.0 if entity == "market" else rng.choice([0.3, 0.5, 1.0, 2.0])
        p_neg = rng.uniform(0.08, 0.3)
        buckets = _buckets(rng, last, g.baseline_buckets, rate, p_neg)
        for b, c in buckets.items():
            source.put_bucket(entity, b, c)
        window, baseline = _sums(buckets, g, clock_ms)
        own_clock = clock_ms - rng.randrange(0, 40_000)
        source.put_state(
            EntityState(
                entity,
                own_clock,
                window,
                baseline,
                "idle",
                None,
                (last - g.baseline_buckets + 1) * g.bucket_ms,
            )
        )
        for j in range(6):
            text = TEMPLATES[(i + j) % len(TEMPLATES)].format(
                name=name.title() if entity.startswith("topic") else name
            )
            neg = "cut" in text or "probe" in text or "slip" in text
            source.add_headline(
                entity,
                Headline(
                    id=f"{entity}-{j}",
                    headline=text,
                    event_time_ms=own_clock - (6 - j) * 240_000,
                    sentiment="negative" if neg else "neutral",
                    negative_prob=0.88 if neg else 0.07,
                    links=linked(text, name, entity) if entity.startswith("ticker") else (),
                ),
            )
    for entity, name, minutes_ago in (("ticker:BA", "Boeing", 150), ("topic:macro", "macro", 95)):
        t = clock_ms - minutes_ago * 60_000
        wire = burst_alert(
            entity, name, Counts(9, 10, 3, 8_000_000), Counts(20, 150, 60, 30_000_000), t
        )
        source.publish_alert(wire)
        resolved = {**wire, "state": "resolved", "alert_id": alert_id(entity, 1, t, "resolved")}
        resolved["fired_at"] = ms_to_datetime(t + 25 * 60_000).isoformat()
        resolved["peak_severity"] = "high"
        source.publish_alert(resolved)


def v2_alert(base: dict[str, Any], kind: str, **fields: Any) -> dict[str, Any]:
    """``base`` (``burst_alert``) as schema v2 publishes it: ``kind``, the kind's ``count``,
    ``share``, ``expected_count``, ``repeats``, and evidence with a ``span`` naming the
    entity instead of ``links``."""
    wire = {**base, "schema_version": 2, "kind": kind, **fields}
    wire["alert_id"] = f"{base['alert_id'][:24]}{kind[:8]:0<8}"
    wire["evidence"] = [
        {k: v for k, v in {**e, "span": e["links"][0]["span"], "positive_prob": 0.9}.items()
         if k != "links"}
        for e in base["evidence"]
    ]  # fmt: skip
    return wire
