"""parse_news: every input has a defined outcome (NewsItem or InvalidRecord with a reason)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.config import Settings
from stream_app.core.validation import InvalidRecord, parse_news
from stream_app.schemas import DEAD_LETTER_REASONS, NewsItem
from tests.support.hostile import json_values

S = Settings()
T0 = 1_700_000_000_000


def _raw(**fields: Any) -> bytes:
    base: dict[str, Any] = {"id": "n1", "headline": "$AAPL falls", "published_at": T0}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


def _reason(raw: Any, record_ts: int | None = T0, settings: Settings = S) -> str:
    with pytest.raises(InvalidRecord) as info:
        parse_news(raw, record_timestamp_ms=record_ts, settings=settings)
    assert info.value.reason in DEAD_LETTER_REASONS
    return info.value.reason


def test_valid_record_with_cashtags() -> None:
    item = parse_news(_raw(body="also $MSFT"), record_timestamp_ms=T0, settings=S)
    assert item == NewsItem(
        id="n1",
        headline="$AAPL falls",
        body="also $MSFT",
        tickers=["AAPL", "MSFT"],
        published_at=T0,
    )


def test_explicit_tickers_win_and_numeric_id() -> None:
    item = parse_news(_raw(id=42, tickers=["$tsla"]), record_timestamp_ms=None, settings=S)
    assert item.id == "42"
    assert item.tickers == ["TSLA"]


def test_record_timestamp_used_when_absent() -> None:
    item = parse_news(_raw(published_at=...), record_timestamp_ms=T0 + 5, settings=S)
    assert item.event_time_ms == T0 + 5


def test_control_chars_replaced() -> None:
    item = parse_news(_raw(headline="a\x00b\r\nc\ud800"), record_timestamp_ms=T0, settings=S)
    assert item.headline == "a b  c\ufffd"
    item.model_dump_json().encode("utf-8")  # re-encodable


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not bytes", "not_bytes"),
        (b"\xff\xfe", "not_utf8"),
        (b"{", "invalid_json"),
        (b"[1]", "not_object"),
        (b"[" * 100_000 + b"]" * 100_000, "too_deep"),
        (_raw(id=...), "missing_field"),
        (_raw(headline=...), "missing_field"),
        (_raw(headline=7), "wrong_type"),
        (_raw(headline="  \x00 "), "empty_headline"),
        (_raw(id=" "), "empty_field"),
        (_raw(headline="x" * 1001), "too_long"),
        (_raw(tickers="AAPL"), "wrong_type"),
        (_raw(tickers=[1]), "wrong_type"),
        (_raw(tickers=["not a ticker"]), "invalid_ticker"),
        # non-ASCII refused before upper-casing, which would make them SS, FI, I
        (_raw(tickers=["\u00df"]), "invalid_ticker"),
        (_raw(tickers=["\ufb01"]), "invalid_ticker"),
        (_raw(tickers=["$\u0131"]), "invalid_ticker"),
        # invisible only: zero-width space/joiners, BOM, word joiner, soft hyphen, fillers
        (_raw(headline="\u200b\u200c\u200d\ufeff\u2060\u00ad"), "empty_headline"),
        (_raw(headline="\u3164\u2800 \u115f\u0301"), "empty_headline"),
        (_raw(headline="\u202e\u2066\U000e0041"), "empty_headline"),
        (_raw(tickers=[f"A{i}" for i in range(33)]), "too_many_tickers"),
        (_raw(published_at="yesterday"), "bad_timestamp"),
        (_raw(published_at="1999-12-31T23:59:59Z"), "bad_timestamp"),
        (_raw(published_at=float("nan")), "bad_timestamp"),
        (_raw(published_at=True), "wrong_type"),
        (_raw(published_at=[1]), "wrong_type"),
        (_raw(published_at=T0 + 3_600_001), "future_event"),
        (b'{"id": "a", "headline": "h", "published_at": 1' + b"0" * 5000 + b"}", "invalid_json"),
    ],
)
def test_reasons(raw: Any, reason: str) -> None:
    assert _reason(raw) == reason


def test_non_ascii_tickers_never_become_symbols() -> None:
    for text in ("\u00df", "\ufb01", "\u0131", "A\u0130"):
        with pytest.raises(ValueError, match="does not match"):
            NewsItem(id="1", headline="h", tickers=[text], published_at=T0)
    item = parse_news(_raw(tickers=[" $brk.b "]), record_timestamp_ms=T0, settings=S)
    assert item.tickers == ["BRK.B"]


def test_visible_text_around_invisible_characters_is_kept() -> None:
    item = parse_news(_raw(headline="\u200bAAPL\u200d falls"), record_timestamp_ms=T0, settings=S)
    assert item.headline == "\u200bAAPL\u200d falls"


def test_too_large_checked_before_decoding() -> None:
    small = Settings(max_message_bytes=1024)
    assert _reason(b"\xff" * 2000, settings=small) == "too_large"


def test_absent_time_without_record_timestamp() -> None:
    assert _reason(_raw(published_at=...), record_ts=None) == "missing_field"
    assert _reason(_raw(published_at=...), record_ts=-1) == "missing_field"


def test_future_check_needs_record_timestamp() -> None:
    item = parse_news(_raw(published_at=T0 + 10**9), record_timestamp_ms=None, settings=S)
    assert item.event_time_ms == T0 + 10**9


def _outcome(raw: Any) -> None:
    reason = None
    try:
        item = parse_news(raw, record_timestamp_ms=T0, settings=S)
    except InvalidRecord as e:
        reason = e.reason
    if reason is not None:
        assert reason in DEAD_LETTER_REASONS
    else:
        assert item.headline
        assert item.id
        NewsItem.model_validate_json(item.model_dump_json().encode("utf-8"))


@settings(max_examples=300, deadline=None)  # a shared 2-core machine: time is no property
@given(st.binary(max_size=300))
def test_fuzz_bytes(raw: bytes) -> None:
    _outcome(raw)


fields = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values | st.text(max_size=10),
        "headline": json_values | st.text(max_size=40),
        "body": json_values,
        "source": json_values,
        "url": json_values,
        "tickers": json_values | st.lists(st.text(max_size=6), max_size=4),
        "published_at": json_values
        | st.integers(min_value=0, max_value=5 * 10**12)
        | st.datetimes().map(lambda d: d.isoformat()),
    },
)


@settings(max_examples=300, deadline=None)  # a shared 2-core machine: time is no property
@given(fields)
def test_fuzz_json_objects(obj: dict[str, Any]) -> None:
    _outcome(json.dumps(obj).encode())
