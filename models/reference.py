"""The prediction distribution a model showed on held-out data, saved next to its weights.

Training writes ``reference.json`` into the model dir (listed and checksummed in the
manifest like every other file): per head, the share of each predicted label and of each
confidence bin on the validation splits, with the calibrated temperature applied, i.e.
what the deployed predictor would have emitted on data like the training data. The worker
compares its live predictions with it (population stability index, see
``stream_app/core/drift.py``): a live distribution far from this one means the news, or
the upstream feeding it, no longer looks like what the model was trained for.

Confidence bins are the reference's own deciles, so each holds about a tenth of the
reference and the PSI is not dominated by near-empty bins. Pure pydantic: no torch.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Sequence
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "REFERENCE_FILE",
    "HeadReference",
    "ReferenceDistribution",
    "build_head_reference",
    "confidence_bin",
]

REFERENCE_FILE: Final[str] = "reference.json"


class HeadReference(BaseModel):
    """One head: label shares and confidence-bin shares (each sums to 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n: int = Field(ge=1)
    labels: dict[str, float]
    confidence_edges: tuple[float, ...] = Field(description="inner bin edges, ascending")
    confidence: tuple[float, ...] = Field(description="share of each of len(edges)+1 bins")

    @model_validator(mode="after")
    def _check(self) -> HeadReference:
        if len(self.confidence) != len(self.confidence_edges) + 1:
            raise ValueError("confidence needs one share per bin (len(edges) + 1)")
        if list(self.confidence_edges) != sorted(self.confidence_edges):
            raise ValueError("confidence_edges must ascend")
        checks = (("labels", list(self.labels.values())), ("confidence", self.confidence))
        for name, shares in checks:
            if any(s < 0 for s in shares) or abs(sum(shares) - 1.0) > 1e-6:
                raise ValueError(f"{name} shares must be >= 0 and sum to 1")
        return self


class ReferenceDistribution(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: Literal[1] = 1
    source: str
    heads: dict[str, HeadReference]


def confidence_bin(edges: Sequence[float], confidence: float) -> int:
    """Index of the bin holding ``confidence`` (bins are (-inf, e0], (e0, e1], ..., (ek, inf))."""
    return bisect.bisect_left(edges, confidence)


def build_head_reference(
    predicted: Sequence[str],
    confidences: Sequence[float],
    label_names: Sequence[str],
    bins: int = 10,
) -> HeadReference:
    """Label shares and decile confidence bins of one head's predictions."""
    n = len(predicted)
    if n == 0 or n != len(confidences):
        raise ValueError("need one confidence per prediction, at least one prediction")
    counts = Counter(predicted)
    ordered = sorted(confidences)
    edges: list[float] = []
    for q in range(1, bins):
        edge = round(ordered[min(n - 1, q * n // bins)], 6)
        if not edges or edge > edges[-1]:  # ties at the top (e.g. many 0.99) merge bins
            edges.append(edge)
    shares = [0] * (len(edges) + 1)
    for c in confidences:
        shares[confidence_bin(edges, c)] += 1
    return HeadReference(
        n=n,
        labels={name: counts.get(name, 0) / n for name in label_names},
        confidence_edges=tuple(edges),
        confidence=tuple(s / n for s in shares),
    )
