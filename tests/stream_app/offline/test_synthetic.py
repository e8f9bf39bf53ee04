"""Sample feed generator: determinism, ground truth consistent with the rows, formats."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from finpulse.resources import sample_feed, sample_truth
from stream_app.config import Settings
from stream_app.core import novelty
from stream_app.core.validation import parse_news
from stream_app.offline.feeds import FeedRow, read_rows
from stream_app.offline.synthetic import (
    BEARISH,
    DEFAULT_EVENTS,
    DEFAULT_START,
    GeneratedFeed,
    LabelledText,
    SampleError,
    generate_feed,
    load_labelled_texts,
    parse_burst,
    parse_event_counts,
    write_feed,
)


def _settings() -> Settings:
    return Settings()  # type: ignore[call-arg]  # mypy misreads Field(default, ...)


@pytest.fixture(scope="module")
def texts(data_dir: Path) -> list[LabelledText]:
    return load_labelled_texts(data_dir)


def test_same_seed_same_feed_other_seed_differs(texts: list[LabelledText]) -> None:
    a = generate_feed(texts, items=400, seed=3, hours=24, bursts=2)
    b = generate_feed(texts, items=400, seed=3, hours=24, bursts=2)
    c = generate_feed(texts, items=400, seed=4, hours=24, bursts=2)
    assert a.rows == b.rows
    assert a.truth == b.truth
    assert a.rows != c.rows


def test_rows_are_valid_news_in_event_time_order(texts: list[LabelledText]) -> None:
    feed = generate_feed(texts, items=500, seed=1, hours=24, bursts=2)
    settings = _settings()
    times = [parse_news(json.dumps(r).encode(), settings=settings).event_time_ms for r in feed.rows]
    assert times == sorted(times)
    assert len({r["id"] for r in feed.rows}) == len(feed.rows) == 500


def _event_rows(feed: GeneratedFeed, event: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in feed.rows if r.get("event_id") == event["event_id"]]


def test_truth_matches_the_burst_rows(texts: list[LabelledText]) -> None:
    burst = parse_burst("TSLA@2026-11-02T15:30:00Z/20/15")
    feed = generate_feed(texts, items=600, seed=9, hours=24, bursts=[burst])
    [event] = feed.truth["events"]
    assert (event["entity"], event["kind"]) == ("ticker:TSLA", "negative")
    rows = _event_rows(feed, event)
    assert len(rows) == 15 == event["items"]
    start = datetime.fromisoformat(event["start"])
    end = datetime.fromisoformat(event["end"])
    assert end - start == timedelta(minutes=20)
    bearish = {t.text for t in texts if t.label == BEARISH}
    for r in rows:
        assert start <= datetime.fromisoformat(r["published_at"]) < end
        assert r["headline"] in bearish  # a real Bearish headline, unchanged
        assert "tesla" in r["headline"].lower() or "$TSLA" in r["headline"]  # it names Tesla
    stories = novelty.StoryIndex(window_ms=86_400_000)
    firsts = [not stories.observe(s, str(i), 0)[1]
              for i, s in enumerate(novelty.signatures([r["headline"] for r in rows]))]  # fmt: skip
    assert all(firsts)  # 15 items are 15 stories, so a story-aware detector sees 15


def test_each_kind_is_built_from_its_own_headlines(texts: list[LabelledText]) -> None:
    events = [
        parse_burst("positive:AAPL@2026-11-02T14:00:00Z/30/9"),
        parse_burst("volume:GOOGL@2026-11-02T15:00:00Z/25/20"),
        parse_burst("storm:NFLX@2026-11-02T16:00:00Z/15/12"),
    ]
    feed = generate_feed(texts, items=800, seed=4, hours=24, bursts=events)
    kinds = [(e["kind"], e["entity"]) for e in feed.truth["events"]]
    assert kinds == [("positive", "ticker:AAPL"), ("volume", "ticker:GOOGL"),
                     ("storm", "ticker:NFLX")]  # fmt: skip
    positive, volume, storm = (_event_rows(feed, e) for e in feed.truth["events"])
    by_label = {label: {t.text for t in texts if t.label == label} for label in (1, 2, BEARISH)}
    assert len(positive) == 9
    assert {r["headline"] for r in positive} <= by_label[1]  # Bullish
    assert len(volume) == 20
    assert {r["headline"] for r in volume} <= by_label[2]  # Neutral
    assert len(storm) == 12
    assert storm[0]["headline"] in by_label[BEARISH]  # the original comes first
    assert len({r["source"] for r in storm}) >= 8  # copies from many outlets
    assert len({r["headline"] for r in storm}) >= 8  # rewritten, not verbatim
    stories = novelty.StoryIndex(window_ms=86_400_000)
    ids = {stories.observe(s, str(i), 0)[0]
           for i, s in enumerate(novelty.signatures([r["headline"] for r in storm]))}  # fmt: skip
    assert len(ids) <= 2  # one story (rarely a second: LSH is a soft threshold)


def test_random_events_are_spread_over_distinct_tickers(texts: list[LabelledText]) -> None:
    feed = generate_feed(texts, items=4000, seed=11, hours=48, bursts=dict(DEFAULT_EVENTS))
    events = feed.truth["events"]
    assert Counter(e["kind"] for e in events) == Counter(DEFAULT_EVENTS)
    assert len({e["entity"] for e in events}) == len(events)
    spans = sorted((datetime.fromisoformat(e["start"]), datetime.fromisoformat(e["end"]))
                   for e in events)  # fmt: skip
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in pairwise(spans))
    assert all(s >= DEFAULT_START and e <= DEFAULT_START + timedelta(hours=48) for s, e in spans)
    for e in events:
        assert len(_event_rows(feed, e)) == e["items"]
    # the background is the corpus as it is: each text once, none altered
    corpus = {t.text for t in texts}
    background = [r["headline"] for r in feed.rows if "event_id" not in r]
    assert set(background) <= corpus
    assert len(set(background)) == len(background)


def test_daily_rhythm_busier_in_market_hours(texts: list[LabelledText]) -> None:
    start = datetime(2026, 11, 2, tzinfo=UTC)  # Monday
    feed = generate_feed(texts, items=3000, seed=5, start=start, hours=24, bursts=0)
    hours = [datetime.fromisoformat(r["published_at"]).hour for r in feed.rows]
    market = sum(1 for h in hours if 14 <= h < 20) / 6
    night = sum(1 for h in hours if 0 <= h < 6) / 6
    assert market > 3 * night


@pytest.mark.parametrize(
    "spec",
    ["tsla@2026-11-02T15:30:00Z/20/25", "TSLA@nope/20/25", "X@/1/1", "crash:X@2026-11-02/1/1"],
)
def test_bad_burst_spec_is_a_clear_error(spec: str) -> None:
    with pytest.raises(SampleError, match="burst"):
        parse_burst(spec)


def test_more_items_than_distinct_stories_is_a_clear_error(texts: list[LabelledText]) -> None:
    burst = parse_burst("TSLA@2026-11-02T15:30:00Z/20/40")
    with pytest.raises(SampleError, match="distinct Bearish headlines about TSLA"):
        generate_feed(texts, items=600, seed=1, bursts=[burst])
    with pytest.raises(SampleError, match="KIND=N"):
        parse_event_counts(["storms=3"])


def test_too_many_burst_items_rejected(texts: list[LabelledText]) -> None:
    burst = parse_burst("TSLA@2026-11-02T15:30:00Z/20/50")
    with pytest.raises(SampleError, match="cannot hold"):
        generate_feed(texts, items=50, seed=1, bursts=[burst])


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_written_feed_reads_back_identically(
    texts: list[LabelledText], tmp_path: Path, suffix: str
) -> None:
    feed = generate_feed(texts, items=120, seed=2, hours=12, bursts=1)
    out = tmp_path / f"feed{suffix}"
    truth_path = write_feed(feed, out)
    assert json.loads(truth_path.read_text()) == feed.truth
    rows = list(read_rows(out))
    assert all(isinstance(r, FeedRow) for r in rows)
    settings = _settings()
    for written, read in zip(feed.rows, rows, strict=True):
        assert isinstance(read, FeedRow)
        assert read.event_id == written.get("event_id")
        expected = parse_news(json.dumps(written).encode(), settings=settings)
        assert parse_news(read.to_bytes(), settings=settings) == expected


def test_shipped_sample_is_what_the_generator_makes(texts: list[LabelledText]) -> None:
    truth = json.loads(sample_truth().read_text())
    rows = [json.loads(line) for line in sample_feed().read_text().splitlines()]
    assert len(rows) == truth["items"]
    gen = truth["generator"]
    again = generate_feed(
        texts,
        items=gen["items"],
        seed=gen["seed"],
        start=datetime.fromisoformat(gen["start"]),
        hours=gen["hours"],
        bursts=[parse_burst(b) for b in gen["bursts"]],
    )
    assert again.rows == rows
    assert {r["event_id"] for r in rows if "event_id" in r} == {
        e["event_id"] for e in truth["events"]
    }
