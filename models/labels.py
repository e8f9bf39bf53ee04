"""Label spaces of the two heads and the mapping from the vendored datasets' ids.

Kept free of torch so that schemas, the stream app and tests can import it cheaply.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "DATASET_SENTIMENT_TO_LABEL",
    "SENTIMENT_LABELS",
    "TOPIC_LABELS",
    "sentiment_index_from_dataset",
    "topic_slug",
]

SENTIMENT_LABELS: Final[tuple[str, ...]] = ("negative", "neutral", "positive")

# Twitter Financial News sentiment ids: 0 Bearish, 1 Bullish, 2 Neutral.
DATASET_SENTIMENT_TO_LABEL: Final[dict[int, str]] = {0: "negative", 1: "positive", 2: "neutral"}

TOPIC_LABELS: Final[tuple[str, ...]] = (
    "Analyst Update",
    "Fed | Central Banks",
    "Company | Product News",
    "Treasuries | Corporate Debt",
    "Dividend",
    "Earnings",
    "Energy | Oil",
    "Financials",
    "Currencies",
    "General News | Opinion",
    "Gold | Metals | Materials",
    "IPO",
    "Legal | Regulation",
    "M&A | Investments",
    "Macro",
    "Markets",
    "Politics",
    "Personnel Change",
    "Stock Commentary",
    "Stock Movement",
)


def sentiment_index_from_dataset(dataset_id: int) -> int:
    """Index into SENTIMENT_LABELS for a dataset label id (Bearish/Bullish/Neutral order)."""
    try:
        return SENTIMENT_LABELS.index(DATASET_SENTIMENT_TO_LABEL[dataset_id])
    except KeyError:
        raise ValueError(f"sentiment label id {dataset_id!r} is not one of 0, 1, 2") from None


def topic_slug(topic: str) -> str:
    """Key-safe name of a topic label: 'M&A | Investments' -> 'm-a-investments'."""
    out: list[str] = []
    for ch in topic.lower():
        if ch.isalnum():
            out.append(ch)
        elif out and out[-1] != "-":
            out.append("-")
    return "".join(out).strip("-")
