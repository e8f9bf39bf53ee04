"""Detector state machine: unit cases plus properties over random count sequences."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from stream_app.config import DetectorSettings
from stream_app.core.detector import DetectorState, evaluate, severity, stats
from stream_app.core.windows import Counts

CFG = DetectorSettings(min_negative_count=3, cooldown_seconds=60)
BASE = Counts(neg=10, neu=60, pos=30)  # 10 % negative baseline


def test_stats_formula() -> None:
    s = stats(Counts(neg=6, neu=4), BASE, CFG)
    p0 = (10 + 0.15 * 20) / (100 + 20)
    assert math.isclose(s.baseline_share, p0)
    assert math.isclose(s.z, (6 - 10 * p0) / math.sqrt(10 * p0 * (1 - p0)))
    assert s.share == 0.6


def test_empty_window_and_degenerate_baseline() -> None:
    assert stats(Counts(), BASE, CFG).z == 0.0
    cfg = DetectorSettings(baseline_prior_weight=0)
    assert stats(Counts(neg=5), Counts(neg=5), cfg).z == 0.0  # p0 = 1
    assert stats(Counts(neg=5), Counts(), cfg).baseline_share == cfg.baseline_prior_share


def test_fire_resolve_cooldown_cycle() -> None:
    st0 = DetectorState()
    s1, t1 = evaluate(st0, Counts(neg=2, neu=0), BASE, 1000, CFG)
    assert t1 is None  # below min count even though the share is 100 %
    s2, t2 = evaluate(s1, Counts(neg=6, neu=4), BASE, 2000, CFG)
    assert t2 is not None
    assert t2.state == "firing"
    assert (t2.episode, t2.episode_start_ms) == (1, 2000)
    assert s2.status == "firing"
    s3, t3 = evaluate(s2, Counts(neg=9, neu=4), BASE, 3000, CFG)
    assert t3 is None
    assert s3.peak_score > s2.peak_score
    s4, t4 = evaluate(s3, Counts(neg=1, neu=20), BASE, 4000, CFG)
    assert t4 is not None
    assert t4.state == "resolved"
    assert t4.episode_start_ms == 2000
    assert t4.severity == severity(s3.peak_score, CFG)
    assert s4.status == "cooldown"
    s5, t5 = evaluate(s4, Counts(neg=9, neu=1), BASE, 4000 + 59_999, CFG)
    assert t5 is None  # in cooldown
    _s6, t6 = evaluate(s5, Counts(neg=9, neu=1), BASE, 4000 + 60_000, CFG)
    assert t6 is not None
    assert (t6.state, t6.episode, t6.episode_start_ms) == ("firing", 2, 64_000)


def test_hysteresis_keeps_firing_between_levels() -> None:
    s, t = evaluate(DetectorState(), Counts(neg=8, neu=2), BASE, 0, CFG)
    assert t is not None
    # z between resolve_z and fire_z: still firing, nothing emitted
    mid = Counts(neg=3, neu=12)
    st_mid = stats(mid, BASE, CFG)
    assert CFG.resolve_z <= st_mid.z < CFG.fire_z
    s2, t2 = evaluate(s, mid, BASE, 10, CFG)
    assert t2 is None
    assert s2.status == "firing"


def test_state_json_round_trip() -> None:
    s, _ = evaluate(DetectorState(), Counts(neg=8, neu=2), BASE, 5, CFG)
    assert DetectorState.from_json(s.to_json()) == s
    assert DetectorState.from_json(None) == DetectorState()


def test_severity_monotone() -> None:
    order = ["low", "medium", "high", "critical"]
    levels = [order.index(severity(z / 4, CFG)) for z in range(0, 60)]
    assert levels == sorted(levels)
    assert levels[-1] == 3


steps = st.lists(
    st.tuples(st.integers(0, 15), st.integers(0, 15), st.integers(0, 30_000)),
    min_size=1,
    max_size=40,
)


@given(steps, st.integers(0, 120), st.booleans())
def test_properties(seq: list[tuple[int, int, int]], cooldown_s: int, thin: bool) -> None:
    cfg = DetectorSettings(min_negative_count=3, cooldown_seconds=cooldown_s)
    base = Counts(neg=1, neu=3) if thin else BASE
    state, now = DetectorState(), 0
    last: str | None = None
    resolved_at: int | None = None
    for neg, other, dt in seq:
        now += dt
        window = Counts(neg=neg, neu=other)
        state, t = evaluate(state, window, base, now, cfg)
        if t is None:
            continue
        if t.state == "firing":
            assert last != "firing"  # never two firings without a resolve between
            assert neg >= cfg.min_negative_count
            if resolved_at is not None:
                assert now - resolved_at >= cooldown_s * 1000
            assert t.episode == (state.episode)
        else:
            assert last == "firing"  # resolve only after a fire
            s = stats(window, base, cfg)
            assert s.z < cfg.resolve_z
            resolved_at = now
        last = t.state
        assert state.status == ("firing" if t.state == "firing" else "cooldown")
