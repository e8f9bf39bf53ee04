"""Model drift: live predictions against the model's reference distribution (pure, no I/O).

The deployed model saw a certain mix of labels and confidences on held-out data
(``reference.json`` in its model dir, see ``models/reference.py``). When the live mix moves
far from it, either the news changed or the upstream did (a new source, a broken
encoding, another language); in both cases the model's numbers deserve less trust and a
retrain may be due (docs/operations.md, "Retrain and roll").

``DriftMonitor`` keeps, per head, the last ``window`` predictions' label and confidence
bin in a ring buffer with running counts (O(1) per prediction), and every ``check_every``
predictions computes the population stability index of both distributions against the
reference:

    PSI = sum over bins of (live - ref) * ln(live / ref), shares floored at 1e-4.

The drift score is the largest of the four PSIs (sentiment/topic x labels/confidence).
Rule of thumb (credit-scoring practice, where PSI comes from): < 0.1 stable, 0.1-0.25
moderate, > 0.25 large. ``check`` returns a ``DriftChange`` when the score first exceeds
``threshold`` (``FINPULSE_DRIFT_PSI``, default 0.2) and again when it falls back below
``resolve_ratio`` x threshold (hysteresis, so a score hovering at the threshold does not
flap); nothing is scored before the window is full.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

from models.reference import HeadReference, ReferenceDistribution, confidence_bin

__all__ = ["HEADS", "DriftChange", "DriftMonitor", "LivePrediction", "psi"]

HEADS: Final[tuple[str, str]] = ("sentiment", "topic")
_FLOOR: Final[float] = 1e-4


def psi(live: Iterable[float], reference: Iterable[float]) -> float:
    """Population stability index of two share vectors of the same bins."""
    total = 0.0
    for a, e in zip(live, reference, strict=True):
        a, e = max(a, _FLOOR), max(e, _FLOOR)
        total += (a - e) * math.log(a / e)
    return total


@dataclass(frozen=True, slots=True)
class LivePrediction:
    """What drift needs of one prediction: per head, the label and its probability."""

    sentiment: str
    sentiment_confidence: float
    topic: str
    topic_confidence: float


@dataclass(frozen=True, slots=True)
class DriftChange:
    """The drift state changed: ``firing`` (score > threshold) or ``resolved``."""

    state: Literal["firing", "resolved"]
    score: float
    threshold: float
    psi: dict[str, float]  # "sentiment.labels", "sentiment.confidence", "topic.labels", ...
    window: int
    worst: str  # the key of ``psi`` that gave the score


@dataclass
class _HeadWindow:
    ref: HeadReference
    labels: list[str]
    window: int
    label_ring: list[int] = field(default_factory=list)
    bin_ring: list[int] = field(default_factory=list)
    label_counts: list[int] = field(default_factory=list)
    bin_counts: list[int] = field(default_factory=list)
    next_slot: int = 0

    def __post_init__(self) -> None:
        self.label_counts = [0] * (len(self.labels) + 1)  # last slot: a label not in the ref
        self.bin_counts = [0] * len(self.ref.confidence)
        self._index = {name: i for i, name in enumerate(self.labels)}

    def add(self, label: str, confidence: float) -> None:
        li = self._index.get(label, len(self.labels))
        bi = confidence_bin(self.ref.confidence_edges, confidence)
        if len(self.label_ring) < self.window:
            self.label_ring.append(li)
            self.bin_ring.append(bi)
        else:  # overwrite the oldest
            slot = self.next_slot
            self.label_counts[self.label_ring[slot]] -= 1
            self.bin_counts[self.bin_ring[slot]] -= 1
            self.label_ring[slot], self.bin_ring[slot] = li, bi
            self.next_slot = (slot + 1) % self.window
        self.label_counts[li] += 1
        self.bin_counts[bi] += 1

    @property
    def full(self) -> bool:
        return len(self.label_ring) >= self.window

    def scores(self) -> tuple[float, float]:
        n = len(self.label_ring)
        live_labels = [c / n for c in self.label_counts]
        ref_labels = [self.ref.labels.get(name, 0.0) for name in self.labels] + [0.0]
        live_bins = [c / n for c in self.bin_counts]
        return psi(live_labels, ref_labels), psi(live_bins, self.ref.confidence)


class DriftMonitor:
    """Rolling-window PSI against a reference, with a firing/resolved state machine."""

    def __init__(
        self,
        reference: ReferenceDistribution,
        *,
        threshold: float = 0.2,
        window: int = 1000,
        check_every: int = 100,
        resolve_ratio: float = 0.75,
    ) -> None:
        if threshold <= 0 or window < 1 or check_every < 1 or not 0 < resolve_ratio <= 1:
            raise ValueError("threshold > 0, window >= 1, check_every >= 1, 0 < resolve_ratio <= 1")
        missing = [h for h in HEADS if h not in reference.heads]
        if missing:
            raise ValueError(f"reference has no distribution for {', '.join(missing)}")
        self.threshold = threshold
        self.resolve_below = threshold * resolve_ratio
        self.window = window
        self.check_every = check_every
        self.heads = {
            h: _HeadWindow(reference.heads[h], list(reference.heads[h].labels), window)
            for h in HEADS
        }
        self.firing = False
        self.last_psi: dict[str, float] = {}
        self._since_check = 0

    def observe(self, predictions: Iterable[LivePrediction]) -> None:
        for p in predictions:
            self.heads["sentiment"].add(p.sentiment, p.sentiment_confidence)
            self.heads["topic"].add(p.topic, p.topic_confidence)
            self._since_check += 1

    def share(self, head: str, label: str) -> float:
        """Share of ``label`` among the ``head`` predictions now in the window."""
        w = self.heads[head]
        n = len(w.label_ring)
        index = w.labels.index(label) if label in w.labels else len(w.labels)
        return w.label_counts[index] / n if n else 0.0

    def reference_share(self, head: str, label: str) -> float:
        return self.heads[head].ref.labels.get(label, 0.0)

    def psi(self) -> dict[str, float]:
        """The four PSIs of the current window (empty until the window is full)."""
        if not all(w.full for w in self.heads.values()):
            return {}
        out: dict[str, float] = {}
        for head, w in self.heads.items():
            out[f"{head}.labels"], out[f"{head}.confidence"] = w.scores()
        return out

    def check(self) -> DriftChange | None:
        """Every ``check_every`` predictions: a ``DriftChange`` if the state flipped."""
        if self._since_check < self.check_every:
            return None
        self._since_check = 0
        scores = self.psi()
        if not scores:
            return None
        self.last_psi = scores
        worst = max(scores, key=scores.__getitem__)
        score = scores[worst]
        if not self.firing and score > self.threshold:
            self.firing = True
        elif self.firing and score < self.resolve_below:
            self.firing = False
        else:
            return None
        return DriftChange(
            state="firing" if self.firing else "resolved",
            score=score,
            threshold=self.threshold,
            psi=scores,
            window=self.window,
            worst=worst,
        )
