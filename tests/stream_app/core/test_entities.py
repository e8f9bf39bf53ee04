"""Cashtags and entity names."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.labels import TOPIC_LABELS
from stream_app.config import Settings
from stream_app.core.entities import (
    cashtag_spans,
    entities_for,
    extract_cashtags,
    is_valid_entity,
    item_links,
)
from stream_app.core.linking import CompanyLinker
from stream_app.model import load_linker
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
        ("$\u00df $\ufb01 $\u0131 $stra\u00dfe", []),  # no SS, FI, I: non-ASCII is not a symbol
    ],
)
def test_extract_cashtags(text: str, expected: list[str]) -> None:
    assert extract_cashtags(text) == expected


def test_extract_cashtags_limit() -> None:
    assert extract_cashtags("$A $B $C", limit=2) == ["A", "B"]


# Symbols as the cashtag pattern accepts them, and near misses: non-ASCII letters whose
# upper case is ASCII ("ß" -> "SS", "\ufb01" -> "FI", "\u0131" -> "I"), digits first, long.
_SYMBOL = st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,5}([.\-][A-Za-z]{1,2})?", fullmatch=True)
_NEAR_MISS = st.text(alphabet="aZ9.-$\u00df\ufb01\u0131\u0130\u212a_", min_size=1, max_size=9)


@given(
    st.lists(
        st.tuples(st.text(max_size=12), st.one_of(_SYMBOL, _NEAR_MISS), st.booleans()),
        min_size=1,
        max_size=8,
    )
)
def test_cashtags_always_make_valid_entities(parts: list[tuple[str, str, bool]]) -> None:
    """Texts made of cashtags on purpose: each well-formed one standing alone is found, and
    whatever is found makes a valid entity."""
    text = "".join(f"{noise} ${sym}{' ' if spaced else ''}" for noise, sym, spaced in parts)
    found = extract_cashtags(text)
    for sym in found:
        assert is_valid_entity(f"ticker:{sym}"), sym
    for i, (_noise, sym, spaced) in enumerate(parts):
        next_noise = parts[i + 1][0] if i + 1 < len(parts) else ""
        alone = spaced or i + 1 == len(parts) or next_noise[:1] in (" ", "")
        if alone and re.fullmatch(r"[A-Za-z][A-Za-z0-9]{0,5}([.\-][A-Za-z]{1,2})?", sym):
            assert sym.upper() in found, (text, sym)


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
        "topic:earnings\n",
    ],
)
def test_invalid_entities(name: str) -> None:
    assert not is_valid_entity(name)


# --- links with provenance (issue 10) ---------------------------------------------------


@pytest.fixture(scope="module")
def linker() -> CompanyLinker:
    return load_linker(Settings())


def _news(headline: str, tickers: list[str] | None = None, body: str | None = None) -> NewsItem:
    return NewsItem(
        id="1", headline=headline, body=body, tickers=tickers or [], published_at=1_700_000_000_000
    )


def test_cashtag_spans_point_at_the_cashtag() -> None:
    text = "Up: ($TSLA) and $brk.b, again $TSLA"
    spans = cashtag_spans(text)
    assert list(spans) == ["TSLA", "BRK.B"]
    assert [text[s:e] for s, e in spans.values()] == ["$TSLA", "$brk.b"]


def test_links_keep_precedence_and_say_where_each_came_from(linker: CompanyLinker) -> None:
    item = _news(
        "$AAPL slips as Tesla and Ford recall cars",
        tickers=["GM", "AAPL", "F", "NVDA"],
        body="Analysts also mention $NVDA.",
    )
    got = [(lk.ticker, lk.via, lk.span) for lk in item_links(item, linker, max_links=32)]
    assert got == [
        ("GM", "field", None),  # the producer said so, the text does not
        ("AAPL", "cashtag", (0, 5)),  # cashtagged in the headline
        ("F", "field", None),  # a field ticker named in the text stays a field one
        ("NVDA", "cashtag", None),  # cashtagged only in the body
        ("TSLA", "name", (15, 20)),  # found by name, after the explicit ones
    ]


def test_links_are_bounded_and_relevance_orders_names(linker: CompanyLinker) -> None:
    item = _news("Apple, Amazon, Tesla, Nvidia, Intel and Netflix lead the market higher")
    assert len(item_links(item, linker, max_links=3)) == 3
    assert item_links(item, linker, max_links=0) == []
    assert item_links(item, None, max_links=8) == []
    rel = [lk.relevance for lk in item_links(item, linker, max_links=32)]
    assert rel == sorted(rel, reverse=True)
    assert all(0 < r <= 1 for r in rel)


def test_min_relevance_drops_passing_name_mentions_only(linker: CompanyLinker) -> None:
    item = _news(
        "Nvidia jumps after earnings beat, lifting peers such as Intel and AMD", tickers=["QCOM"]
    )
    links = item_links(item, linker, max_links=32)
    assert [lk.ticker for lk in links] == ["QCOM", "NVDA", "INTC", "AMD"]
    assert entities_for(item, "Earnings", links)[:4] == [
        "ticker:QCOM",
        "ticker:NVDA",
        "ticker:INTC",
        "ticker:AMD",
    ]
    strict = entities_for(item, "Earnings", links, min_relevance=0.45)
    assert strict == ["ticker:QCOM", "ticker:NVDA", "topic:earnings", "market"]
