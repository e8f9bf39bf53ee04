"""Drift monitor: rolling PSI against a brute-force recomputation, and the alert states."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.reference import ReferenceDistribution, build_head_reference, confidence_bin
from stream_app.core.drift import DriftMonitor, LivePrediction, psi

SENT = ("negative", "neutral", "positive")
TOPIC = ("Earnings", "Macro", "Markets")


def _reference(seed: int = 0, n: int = 2000) -> ReferenceDistribution:
    rng = random.Random(seed)
    sent = rng.choices(SENT, weights=[2, 6, 3], k=n)
    topic = rng.choices(TOPIC, weights=[3, 3, 4], k=n)
    heads = {
        "sentiment": build_head_reference(sent, [rng.uniform(0.4, 1) for _ in sent], SENT),
        "topic": build_head_reference(topic, [rng.uniform(0.2, 1) for _ in topic], TOPIC),
    }
    return ReferenceDistribution(source="test", heads=heads)


def _like_reference(rng: random.Random, k: int) -> list[LivePrediction]:
    return [
        LivePrediction(
            rng.choices(SENT, weights=[2, 6, 3])[0],
            rng.uniform(0.4, 1),
            rng.choices(TOPIC, weights=[3, 3, 4])[0],
            rng.uniform(0.2, 1),
        )
        for _ in range(k)
    ]


def _shifted(rng: random.Random, k: int) -> list[LivePrediction]:
    """All negative, low confidence: what a broken upstream might produce."""
    return [LivePrediction("negative", rng.uniform(0.34, 0.45), "Macro", 0.25) for _ in range(k)]


def _brute_psi(ref: ReferenceDistribution, seen: list[LivePrediction], window: int) -> dict:
    last = seen[-window:]
    out = {}
    for head, labels in (("sentiment", SENT), ("topic", TOPIC)):
        r = ref.heads[head]
        got = [getattr(p, head) for p in last]
        conf = [getattr(p, f"{head}_confidence") for p in last]
        live_l = [got.count(name) / len(last) for name in labels]
        ref_l = [r.labels[name] for name in labels]
        bins = [confidence_bin(r.confidence_edges, c) for c in conf]
        live_b = [bins.count(b) / len(last) for b in range(len(r.confidence))]

        def one(a: list[float], e: list[float]) -> float:
            return sum(
                (max(x, 1e-4) - max(y, 1e-4)) * math.log(max(x, 1e-4) / max(y, 1e-4))
                for x, y in zip(a, e, strict=True)
            )

        out[f"{head}.labels"] = one(live_l, ref_l)
        out[f"{head}.confidence"] = one(live_b, list(r.confidence))
    return out


@settings(max_examples=40, deadline=None)
@given(
    window=st.integers(1, 60),
    chunks=st.lists(st.tuples(st.booleans(), st.integers(0, 40)), min_size=1, max_size=8),
    seed=st.integers(0, 1000),
)
def test_rolling_psi_equals_recomputing_the_last_window(
    window: int, chunks: list[tuple[bool, int]], seed: int
) -> None:
    ref = _reference()
    rng = random.Random(seed)
    monitor = DriftMonitor(ref, window=window, check_every=1)
    seen: list[LivePrediction] = []
    for shifted, k in chunks:
        batch = _shifted(rng, k) if shifted else _like_reference(rng, k)
        monitor.observe(batch)
        seen += batch
        got = monitor.psi()
        if len(seen) < window:
            assert got == {}
        else:
            want = _brute_psi(ref, seen, window)
            assert got == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_psi_is_zero_for_identical_and_grows_with_distance() -> None:
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0
    near = psi([0.25, 0.3, 0.45], [0.2, 0.3, 0.5])
    far = psi([0.6, 0.3, 0.1], [0.2, 0.3, 0.5])
    assert 0 < near < 0.1 < far


def test_fires_once_on_a_shift_and_resolves_once_after_it() -> None:
    rng = random.Random(1)
    monitor = DriftMonitor(_reference(), threshold=0.2, window=500, check_every=100)
    changes = []
    for phase, k in ((_like_reference, 1500), (_shifted, 1500), (_like_reference, 2000)):
        for _ in range(k // 100):
            monitor.observe(phase(rng, 100))
            if (change := monitor.check()) is not None:
                changes.append(change)
    assert [c.state for c in changes] == ["firing", "resolved"]
    fired, resolved = changes
    assert fired.score > 0.2
    assert fired.score == fired.psi[fired.worst] == max(fired.psi.values())
    assert resolved.score < 0.15  # hysteresis: 0.75 x threshold


def test_nothing_is_scored_before_the_window_is_full() -> None:
    monitor = DriftMonitor(_reference(), window=1000, check_every=10)
    monitor.observe(_shifted(random.Random(0), 999))
    assert monitor.check() is None
    assert monitor.psi() == {}


def test_a_label_the_reference_never_saw_counts_as_drift() -> None:
    monitor = DriftMonitor(_reference(), window=100, check_every=100)
    monitor.observe([LivePrediction("mixed", 0.9, "Brand New", 0.9)] * 100)
    change = monitor.check()
    assert change is not None
    assert change.state == "firing"
    assert change.psi["topic.labels"] > 1


def test_bad_settings_and_references_are_refused() -> None:
    with pytest.raises(ValueError, match="threshold"):
        DriftMonitor(_reference(), threshold=0)
    partial = ReferenceDistribution(
        source="x", heads={"sentiment": _reference().heads["sentiment"]}
    )
    with pytest.raises(ValueError, match="no distribution for topic"):
        DriftMonitor(partial)
