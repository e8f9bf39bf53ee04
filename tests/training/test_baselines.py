"""Mapping rules of the lexicon baselines (the numbers in the report depend on them)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.labels import SENTIMENT_LABELS
from training.baselines import (
    label_from_lm_polarity,
    label_from_vader_compound,
    lm_predict,
    majority_label,
    vader_predict,
)


def name(i: int) -> str:
    return SENTIMENT_LABELS[i]


@pytest.mark.parametrize(
    ("polarity", "expected"),
    [
        (0.5, "positive"),
        (1e-9, "positive"),
        (0.0, "neutral"),
        (-1e-9, "negative"),
        (-1, "negative"),
    ],
)
def test_lm_sign_rule(polarity: float, expected: str) -> None:
    assert name(label_from_lm_polarity(polarity)) == expected


@pytest.mark.parametrize(
    ("compound", "expected"),
    [
        (0.05, "positive"),
        (0.049, "neutral"),
        (0.0, "neutral"),
        (-0.049, "neutral"),
        (-0.05, "negative"),
        (-0.9, "negative"),
    ],
)
def test_vader_threshold_rule(compound: float, expected: str) -> None:
    assert name(label_from_vader_compound(compound)) == expected


@given(st.floats(min_value=-1, max_value=1))
def test_vader_rule_is_monotone(x: float) -> None:
    order = [SENTIMENT_LABELS.index(n) for n in ("negative", "neutral", "positive")]
    y = min(1.0, x + 0.1)
    assert order.index(label_from_vader_compound(x)) <= order.index(label_from_vader_compound(y))


def test_majority_label_ties_break_to_smallest_index() -> None:
    assert majority_label([2, 2, 1, 1, 0]) == 1
    assert majority_label([2, 2, 2, 0]) == 2
    with pytest.raises(ValueError, match="no training labels"):
        majority_label([])


def test_lexicons_run_offline_on_clear_cases() -> None:
    texts = [
        "Shares plunge after losses and a lawsuit; the company warns of bankruptcy",
        "Record profit, strong gains and an excellent outlook",
        "The meeting is on Tuesday",
    ]
    assert [name(i) for i in lm_predict(texts)] == ["negative", "positive", "neutral"]
    assert [name(i) for i in vader_predict(texts)] == ["negative", "positive", "neutral"]
