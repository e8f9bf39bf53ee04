"""The opt-in predictor fault hook and how the Scorer copes with what it injects."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from stream_app.core.scoring import Scorer
from stream_app.schemas import NewsItem
from tests.support.faults import FAIL_CALLS_ENV, POISON_ENV, FaultyPredictor, wrap_from_env


class _Constant:
    model_version = "v-test"

    def predict(self, texts: Sequence[str]) -> list[Any]:
        probs = {"negative": 0.1, "neutral": 0.8, "positive": 0.1}
        return [
            SimpleNamespace(sentiment="neutral", sentiment_probs=probs, topic="Markets",
                            topic_prob=0.5, model_version=self.model_version)
            for _ in texts
        ]  # fmt: skip


def _items(headlines: list[str]) -> list[NewsItem]:
    when = datetime(2026, 11, 23, tzinfo=UTC)
    return [
        NewsItem(id=f"i{k}", headline=h, tickers=["AAA"], published_at=when)  # type: ignore[call-arg]
        for k, h in enumerate(headlines)
    ]


def test_no_variable_no_wrapper() -> None:
    inner = _Constant()
    assert wrap_from_env(inner, {}) is inner
    assert wrap_from_env(inner, {POISON_ENV: "", FAIL_CALLS_ENV: "0"}) is inner


def test_wrapper_delegates_attributes() -> None:
    wrapped = wrap_from_env(_Constant(), {POISON_ENV: "BAD"})
    assert isinstance(wrapped, FaultyPredictor)
    assert wrapped.model_version == "v-test"


@pytest.mark.parametrize("poison_at", [[0], [5], [2, 13], [15]])
def test_poison_records_alone_fail_the_rest_is_scored(poison_at: list[int]) -> None:
    headlines = [f"news {k}" + (" BAD" if k in poison_at else "") for k in range(16)]
    scorer = Scorer(FaultyPredictor(_Constant(), poison="BAD"))
    result = scorer.score(_items(headlines))
    assert sorted(int(it.id[1:]) for it, _ in result.failed) == poison_at
    assert len(result.scored) == 16 - len(poison_at)
    assert all("injected" in detail for _, detail in result.failed)


def test_transient_failures_of_a_big_batch_are_recovered_by_the_split() -> None:
    scorer = Scorer(FaultyPredictor(_Constant(), fail_calls=3))
    result = scorer.score(_items([f"news {k}" for k in range(16)]))
    assert not result.failed
    assert len(result.scored) == 16
