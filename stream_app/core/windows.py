"""Event-time bucket maths: pure functions, no I/O, shared by the aggregator and both stores.

With ``B = bucket(clock)`` (``floor(ms / bucket_ms)``), ``wb`` window buckets and ``bb``
baseline buckets:

* window   = buckets ``(B - wb, B]``
* baseline = buckets ``(B - bb, B - wb]`` -- the ``baseline_seconds`` ending at the clock,
  minus the window (so ``baseline_seconds <= retention_seconds`` suffices)
* an event is *late* when ``event_ms < clock - allowed_lateness``
* buckets below ``B - rb + 1`` (retention) may be deleted; seen ids older than
  ``clock - retention`` are forgotten.

Window and baseline sums are kept incrementally: when the clock moves from bucket ``b1``
to ``b2``, buckets ``(b1 - wb, b2 - wb]`` move from window to baseline and buckets
``(b1 - bb, b2 - bb]`` leave the baseline (``slide``). Only those *transition buckets*
need to be read from the store; ``transition_ranges`` says which (the Lua read script
mirrors it), so a batch reads O(clock advance) buckets instead of a day of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from stream_app.config import WindowSettings

__all__ = ["Counts", "WindowGeometry", "sum_buckets"]

MICROS = 1_000_000


@dataclass(slots=True)
class Counts:
    """What a set of events adds to a bucket or a window; integer sums, so always exact.

    ``neg``/``neu``/``pos`` count *first* stories by predicted label and
    ``neg_prob_micros``/``pos_prob_micros`` sum their probabilities in millionths (the net
    sentiment is their difference over ``total``). ``rep`` counts syndicated repeats, which
    the detectors do not count as news (issue 11) but the desk wants to see.
    """

    neg: int = 0
    neu: int = 0
    pos: int = 0
    neg_prob_micros: int = 0
    pos_prob_micros: int = 0
    rep: int = 0

    @classmethod
    def of_event(cls, sentiment: str, negative_prob: float, positive_prob: float = 0.0) -> Counts:
        return cls(
            int(sentiment == "negative"),
            int(sentiment == "neutral"),
            int(sentiment == "positive"),
            round(negative_prob * MICROS),
            round(positive_prob * MICROS),
        )

    @property
    def total(self) -> int:
        return self.neg + self.neu + self.pos

    @property
    def net_sentiment(self) -> float | None:
        """Mean of p_positive - p_negative over the first stories; None without any."""
        n = self.neg + self.neu + self.pos
        return (self.pos_prob_micros - self.neg_prob_micros) / MICROS / n if n else None

    def add(self, other: Counts) -> None:
        self.neg += other.neg
        self.neu += other.neu
        self.pos += other.pos
        self.neg_prob_micros += other.neg_prob_micros
        self.pos_prob_micros += other.pos_prob_micros
        self.rep += other.rep

    def sub(self, other: Counts) -> None:
        self.neg -= other.neg
        self.neu -= other.neu
        self.pos -= other.pos
        self.neg_prob_micros -= other.neg_prob_micros
        self.pos_prob_micros -= other.pos_prob_micros
        self.rep -= other.rep

    def __add__(self, other: Counts) -> Counts:
        out = self.copy()
        out.add(other)
        return out

    def __sub__(self, other: Counts) -> Counts:
        out = self.copy()
        out.sub(other)
        return out

    def copy(self) -> Counts:
        return Counts(
            self.neg, self.neu, self.pos, self.neg_prob_micros, self.pos_prob_micros, self.rep
        )

    def clear(self) -> None:
        self.neg = self.neu = self.pos = self.neg_prob_micros = self.pos_prob_micros = 0
        self.rep = 0

    def encode(self) -> str:
        return (
            f"{self.neg},{self.neu},{self.pos},{self.neg_prob_micros},"
            f"{self.pos_prob_micros},{self.rep}"
        )

    @classmethod
    def decode(cls, text: str | bytes | None) -> Counts:
        if not text:
            return cls()
        if isinstance(text, bytes):
            text = text.decode()
        return cls(*(int(v) for v in text.split(",")))


def sum_buckets(buckets: Mapping[int, Counts], indices: Iterable[int]) -> Counts:
    """The counts of ``indices`` added up (absent buckets are empty)."""
    out = Counts()
    for b in indices:
        c = buckets.get(b)
        if c is not None:
            out.add(c)
    return out


def _present(r: range, layer: Mapping[int, Counts]) -> Iterable[int]:
    """The buckets of ``r`` that ``layer`` holds, by the cheaper of the two scans."""
    if len(r) <= len(layer):
        return [b for b in r if b in layer]
    return [b for b in layer if b in r]


@dataclass(frozen=True, slots=True)
class WindowGeometry:
    """``WindowSettings`` in bucket units, with the range arithmetic on top."""

    bucket_ms: int
    window_buckets: int
    baseline_buckets: int
    retention_buckets: int
    lateness_ms: int

    @classmethod
    def of(cls, ws: WindowSettings) -> WindowGeometry:
        b = ws.bucket_seconds
        return cls(
            bucket_ms=b * 1000,
            window_buckets=ws.window_seconds // b,
            baseline_buckets=ws.baseline_seconds // b,
            retention_buckets=ws.retention_seconds // b,
            lateness_ms=ws.allowed_lateness_seconds * 1000,
        )

    def bucket(self, ms: int) -> int:
        return ms // self.bucket_ms

    def window_range(self, clock_ms: int) -> range:
        b = self.bucket(clock_ms)
        return range(b - self.window_buckets + 1, b + 1)

    def window_bounds_ms(self, clock_ms: int) -> tuple[int, int]:
        """[start, end) of the window in ms: whole buckets, so the end is after the clock."""
        r = self.window_range(clock_ms)
        return r.start * self.bucket_ms, r.stop * self.bucket_ms

    def first_kept_bucket(self, clock_ms: int) -> int:
        """Buckets below this may be pruned: nothing in retention can read them again."""
        return self.bucket(clock_ms) - self.retention_buckets + 1

    def seen_cutoff_ms(self, clock_ms: int) -> int:
        """Seen ids with an event time below this are forgotten (they would be late anyway)."""
        return clock_ms - self.retention_buckets * self.bucket_ms

    def transition_ranges(self, b1: int, b2: int) -> tuple[range, range]:
        """Buckets whose counts are needed to slide the sums from bucket ``b1`` to ``b2``.

        Capped at ``b1 + bb``: beyond that every stored bucket (all ``<= b1``) has left
        the baseline, and ``slide`` resets instead of subtracting.
        """
        top = min(b2, b1 + self.baseline_buckets)
        if top <= b1:
            return range(0), range(0)
        wb, bb = self.window_buckets, self.baseline_buckets
        return range(b1 - wb + 1, top - wb + 1), range(b1 - bb + 1, top - bb + 1)

    def slide_layers(
        self,
        window: Counts,
        baseline: Counts,
        b1: int,
        b2: int,
        layers: Sequence[Mapping[int, Counts]],
    ) -> None:
        """``slide`` where bucket ``b``'s count is the sum of ``layer.get(b)`` over ``layers``.

        The aggregator's hot path (stored counts + this batch's deltas): sums are linear,
        so each layer slides on its own, and a layer with fewer entries than a transition
        range is scanned by its keys. Absent buckets cost nothing.
        """
        if b2 <= b1:
            return
        if b2 - b1 >= self.baseline_buckets:
            window.clear()
            baseline.clear()
            return
        to_baseline, expired = self.transition_ranges(b1, b2)
        for layer in layers:
            if not layer:
                continue
            for b in _present(to_baseline, layer):
                c = layer[b]
                window.sub(c)
                baseline.add(c)
            for b in _present(expired, layer):
                baseline.sub(layer[b])
