"""Wire models: round trips, normalisation, deterministic alert ids, dead-letter encoding."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from stream_app.schemas import (
    Alert,
    DeadLetter,
    EntityEvent,
    NewsItem,
    ScoredNews,
    alert_id,
    datetime_to_ms,
    ms_to_datetime,
)

T0 = 1_700_000_000_000


def test_news_item_normalises_tickers_and_time() -> None:
    item = NewsItem(id="a", headline=" Hi ", tickers=["$aapl", "AAPL", "brk.b"], published_at=T0)
    assert item.tickers == ["AAPL", "BRK.B"]
    assert item.headline == "Hi"
    assert item.published_at == datetime.fromtimestamp(T0 / 1000, UTC)
    assert item.event_time_ms == T0
    again = NewsItem.model_validate_json(item.model_dump_json())
    assert again == item


def test_news_item_iso_naive_is_utc_and_extra_ignored() -> None:
    item = NewsItem.model_validate(
        {"id": "x", "headline": "h", "published_at": "2024-01-02T03:04:05", "extra": 1}
    )
    assert item.published_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["1 2 3", True, None, float("nan"), 5, "1899-01-01T00:00:00Z"])
def test_news_item_rejects_bad_time(bad: object) -> None:
    with pytest.raises(ValidationError):
        NewsItem.model_validate({"id": "x", "headline": "h", "published_at": bad})


@given(st.integers(min_value=946_684_800_000, max_value=4_102_444_799_999))
def test_ms_datetime_round_trip(ms: int) -> None:
    assert datetime_to_ms(ms_to_datetime(ms)) == ms


def test_scored_news_is_flat_and_keeps_item() -> None:
    item = NewsItem(id="a", headline="h", tickers=["X"], published_at=T0)
    scored = ScoredNews(
        **item.model_dump(),
        sentiment="negative",
        sentiment_probs={"negative": 0.9, "neutral": 0.05, "positive": 0.05},
        topic="Earnings",
        topic_prob=0.7,
        model_version="m1",
        entities=["ticker:X", "market"],
        scored_at=datetime.now(UTC),
    )
    wire = scored.model_dump(mode="json")
    assert wire["headline"] == "h"
    assert wire["sentiment"] == "negative"
    assert scored.item == item


def test_alert_id_deterministic_and_distinct() -> None:
    a = alert_id("market", 1, T0, "firing")
    assert a == alert_id("market", 1, T0, "firing")
    others = {
        alert_id("market", 1, T0, "resolved"),
        alert_id("market", 2, T0, "firing"),
        alert_id("market", 1, T0 + 1, "firing"),
        alert_id("ticker:A", 1, T0, "firing"),
    }
    assert a not in others
    assert len(others) == 4


def test_alert_parity_key_excludes_wall_clock() -> None:
    t = ms_to_datetime(T0)
    kw = dict(
        alert_id="x",
        state="firing",
        entity="market",
        severity="low",
        episode=1,
        episode_start=t,
        window_start=t,
        window_end=t,
        negative_count=1,
        total_count=2,
        negative_share=0.5,
        baseline_share=0.1,
        score=3.0,
        threshold=3.0,
        model_version="m",
        fired_at=t,
    )
    a = Alert(**kw, emitted_at=datetime.now(UTC))  # type: ignore[arg-type]
    b = Alert(**kw)  # type: ignore[arg-type]
    assert a.parity_key() == b.parity_key()


@given(st.binary(max_size=200))
def test_dead_letter_round_trips_any_bytes(raw: bytes) -> None:
    dl = DeadLetter.from_raw(raw, reason="invalid_json", detail="x", source_offset=3)
    back = DeadLetter.model_validate_json(dl.model_dump_json())
    assert back.original_bytes() == raw
    assert not back.original_truncated


def test_dead_letter_truncates() -> None:
    dl = DeadLetter.from_raw(b"a" * 100, reason="too_large", detail="d", max_original_bytes=10)
    assert dl.original == "a" * 10
    assert dl.original_truncated
    assert dl.encoding == "utf-8"


def test_entity_event_bounds() -> None:
    with pytest.raises(ValidationError):
        EntityEvent(
            entity="market",
            id="a",
            event_time_ms=T0,
            sentiment="negative",
            negative_prob=1.5,
            headline="h",
            model_version="m",
        )
