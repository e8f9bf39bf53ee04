"""Sample feed generator: determinism, ground truth consistent with the rows, formats."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from finpulse.resources import sample_feed, sample_truth
from stream_app.config import Settings
from stream_app.core.entities import extract_cashtags
from stream_app.core.validation import parse_news
from stream_app.offline.feeds import FeedRow, read_rows
from stream_app.offline.synthetic import (
    BEARISH,
    LabelledText,
    SampleError,
    generate_feed,
    load_labelled_texts,
    parse_burst,
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


def test_truth_matches_the_burst_rows(texts: list[LabelledText]) -> None:
    burst = parse_burst("TSLA@2026-11-02T15:30:00Z/20/25")
    feed = generate_feed(texts, items=600, seed=9, hours=24, bursts=[burst])
    [event] = feed.truth["events"]
    assert event["entity"] == "ticker:TSLA"
    rows = [r for r in feed.rows if r.get("event_id") == event["event_id"]]
    assert len(rows) == 25 == event["items"]
    start = datetime.fromisoformat(event["start"])
    end = datetime.fromisoformat(event["end"])
    assert end - start == timedelta(minutes=20)
    bearish = {t.text for t in texts if t.label == BEARISH}
    for r in rows:
        when = datetime.fromisoformat(r["published_at"])
        assert start <= when < end
        assert "TSLA" in r["tickers"]
        assert "TSLA" in extract_cashtags(r["headline"])
        # The text is a Bearish corpus text with only its cashtag changed or prepended.
        assert any(r["headline"].endswith(t[-20:]) for t in bearish)


def test_daily_rhythm_busier_in_market_hours(texts: list[LabelledText]) -> None:
    start = datetime(2026, 11, 2, tzinfo=UTC)  # Monday
    feed = generate_feed(texts, items=3000, seed=5, start=start, hours=24, bursts=0)
    hours = [datetime.fromisoformat(r["published_at"]).hour for r in feed.rows]
    market = sum(1 for h in hours if 14 <= h < 20) / 6
    night = sum(1 for h in hours if 0 <= h < 6) / 6
    assert market > 3 * night


@pytest.mark.parametrize("spec", ["tsla@2026-11-02T15:30:00Z/20/25", "TSLA@nope/20/25", "X@/1/1"])
def test_bad_burst_spec_is_a_clear_error(spec: str) -> None:
    with pytest.raises(SampleError, match="burst"):
        parse_burst(spec)


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
