"""Scorer: split-and-retry isolates poison records; entity fan-out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.config import Settings
from stream_app.core.scoring import Scorer, to_entity_events
from stream_app.model import load_linker
from stream_app.schemas import NewsItem, ScoredNews

NOW = datetime(2026, 11, 23, tzinfo=UTC)


@dataclass(frozen=True)
class FakePrediction:
    sentiment: str
    sentiment_probs: dict[str, float]
    topic: str
    topic_prob: float
    model_version: str


class FakePredictor:
    """'bad' in a headline makes the whole call fail, like a poison record would."""

    model_version = "fake-1"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, texts: Sequence[str]) -> list[FakePrediction]:
        self.calls.append(len(texts))
        if any("bad" in t for t in texts):
            raise RuntimeError("poison")
        return [
            FakePrediction(
                "negative" if "down" in t else "neutral",
                {"negative": 0.9 if "down" in t else 0.1, "neutral": 0.1, "positive": 0.0},
                "Earnings",
                0.8,
                self.model_version,
            )
            for t in texts
        ]


def _item(i: int, headline: str) -> NewsItem:
    return NewsItem(
        id=f"n{i}", headline=headline, tickers=["AAPL"], published_at=1_700_000_000_000 + i
    )


def test_scores_headlines_and_fans_out() -> None:
    items = [_item(0, "AAPL down"), _item(1, "AAPL flat")]
    res = Scorer(FakePredictor(), clock=lambda: NOW).score(items)
    assert res.failed == []
    assert [s.sentiment for s in res.scored] == ["negative", "neutral"]
    assert res.scored[0].entities == ["ticker:AAPL", "topic:earnings", "market"]
    assert res.scored[0].scored_at == NOW
    events = to_entity_events(res.scored)
    assert [(e.entity, e.id) for e in events[:3]] == [
        ("ticker:AAPL", "n0"),
        ("topic:earnings", "n0"),
        ("market", "n0"),
    ]
    assert events[0].negative_prob == 0.9
    assert events[0].event_time_ms == items[0].event_time_ms


@settings(max_examples=60)
@given(st.lists(st.booleans(), min_size=1, max_size=40))
def test_only_poison_items_fail(bad: list[bool]) -> None:
    items = [_item(i, "bad news" if b else f"fine {i}") for i, b in enumerate(bad)]
    pred = FakePredictor()
    res = Scorer(pred, clock=lambda: NOW).score(items)
    poison = [it for it, b in zip(items, bad, strict=True) if b]
    assert [f[0] for f in res.failed] == poison
    assert all(f[0] is it for f, it in zip(res.failed, poison, strict=True))  # same objects
    assert {s.id for s in res.scored} == {it.id for it, b in zip(items, bad, strict=False) if not b}
    assert all("poison" in f[1] for f in res.failed)
    # isolation is cheap: at most ~2 calls per level per poison item
    assert len(pred.calls) <= 1 + 2 * max(1, sum(bad)) * (len(items).bit_length() + 1)


def test_wrong_length_and_unusable_predictions_are_isolated() -> None:
    class Short(FakePredictor):
        def predict(self, texts: Sequence[str]) -> list[FakePrediction]:
            out = super().predict([t.replace("weird", "") for t in texts])
            return [
                FakePrediction("???", p.sentiment_probs, p.topic, p.topic_prob, p.model_version)
                if "weird" in t
                else p
                for t, p in zip(texts, out, strict=False)
            ]

    items = [_item(0, "ok"), _item(1, "weird one"), _item(2, "ok too")]
    pred = Short()
    res = Scorer(pred, clock=lambda: NOW).score(items)
    assert [f[0].id for f in res.failed] == ["n1"]
    assert "unusable" in res.failed[0][1]
    assert [s.id for s in res.scored] == ["n0", "n2"]
    # the predictions came back: no second model call (the monitor sees each one once)
    assert pred.calls == [3]


def test_empty_batch() -> None:
    pred = FakePredictor()
    res = Scorer(pred).score([])
    assert (res.scored, res.failed, pred.calls) == ([], [], [])


def test_scored_news_carries_links_and_entity_events_their_relevance() -> None:
    """Names found by the real packaged linker become entities, with provenance on the wire."""
    linker = load_linker(Settings())
    text = "$GM slides as Tesla recalls cars, hitting peers like Ford"
    item = NewsItem(id="n1", headline=text, published_at=1_700_000_000_000)
    tesla, ford = text.index("Tesla"), text.index("Ford")
    assert item.tickers == []  # a producer that sent no tickers and no parse_news cashtags
    scorer = Scorer(FakePredictor(), clock=lambda: NOW, linker=linker, max_links=32)
    (s,) = scorer.score([item.model_copy(update={"tickers": ["GM"]})]).scored
    assert [(lk.entity, lk.via, lk.span) for lk in s.links] == [
        ("ticker:GM", "cashtag", (0, 3)),
        ("ticker:TSLA", "name", (tesla, tesla + 5)),
        ("ticker:F", "name", (ford, ford + 4)),
    ]
    assert s.entities == ["ticker:GM", "ticker:TSLA", "ticker:F", "topic:earnings", "market"]
    # The wire form round-trips (spans as JSON arrays) and validates.
    assert ScoredNews.model_validate_json(s.model_dump_json()) == s
    events = {e.entity: e for e in to_entity_events([s])}
    assert events["ticker:TSLA"].span == (tesla, tesla + 5)
    assert events["ticker:F"].relevance == s.links[2].relevance < events["ticker:GM"].relevance
    assert (events["market"].relevance, events["market"].span) == (1.0, None)


def test_min_relevance_keeps_the_link_but_not_the_entity() -> None:
    linker = load_linker(Settings())
    item = NewsItem(
        id="n1",
        headline="Nvidia jumps after earnings, lifting peers such as Intel",
        published_at=1_700_000_000_000,
    )
    scorer = Scorer(FakePredictor(), clock=lambda: NOW, linker=linker, min_relevance=0.5)
    (s,) = scorer.score([item]).scored
    assert [lk.entity for lk in s.links] == ["ticker:NVDA", "ticker:INTC"]
    assert s.entities == ["ticker:NVDA", "topic:earnings", "market"]


def test_without_a_linker_only_explicit_tickers_count() -> None:
    (s,) = Scorer(FakePredictor(), clock=lambda: NOW).score([_item(0, "Tesla AAPL down")]).scored
    assert [(lk.entity, lk.via) for lk in s.links] == [("ticker:AAPL", "field")]
    assert s.entities[0] == "ticker:AAPL"
