"""Cashtags and entity names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.labels import TOPIC_LABELS
from stream_app.core.entities import entities_for, extract_cashtags, is_valid_entity
from stream_app.schemas import NewsItem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$AAPL up, $msft down", ["AAPL", "MSFT"]),
        ("Buy $BRK.B and $BF-B.", ["BRK.B", "BF-B"]),
        ("costs $5 or $$ or $ AAPL", []),
        ("US$AAPL and a$B", []),
        ("$AAPL $AAPL", ["AAPL"]),
        ("($TSLA)", ["TSLA"]),
    ],
)
def test_extract_cashtags(text: str, expected: list[str]) -> None:
    assert extract_cashtags(text) == expected


def test_extract_cashtags_limit() -> None:
    assert extract_cashtags("$A $B $C", limit=2) == ["A", "B"]


@given(st.text(max_size=200))
def test_cashtags_always_make_valid_entities(text: str) -> None:
    for sym in extract_cashtags(text):
        assert is_valid_entity(f"ticker:{sym}")


def test_entities_for_every_topic_is_valid() -> None:
    item = NewsItem(id="1", headline="h", tickers=["AAPL", "BRK.B"], published_at=1_700_000_000_000)
    for topic in TOPIC_LABELS:
        ents = entities_for(item, topic)
        assert ents[:2] == ["ticker:AAPL", "ticker:BRK.B"]
        assert ents[-1] == "market"
        assert all(is_valid_entity(e) for e in ents), ents


@pytest.mark.parametrize(
    "name",
    [
        "",
        "ticker:aapl",
        "topic:Earnings",
        "market:x",
        "ticker:AAPL}",
        "{x}",
        "topic:-a",
        "market\n",
        "ticker:TSLA\n",
    ],
)
def test_invalid_entities(name: str) -> None:
    assert not is_valid_entity(name)
