"""Detector state machines: unit cases per kind plus properties over random count sequences."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from stream_app.config import DetectorSettings
from stream_app.core.detector import (
    DetectorState,
    VolumeScale,
    evaluate,
    may_change,
    severity,
    stats,
)
from stream_app.core.windows import Counts

CFG = DetectorSettings(min_negative_count=3, cooldown_seconds=60)
BASE = Counts(neg=10, neu=60, pos=30)  # 10 % negative baseline


def neg(state: DetectorState, window: Counts, now: int, cfg: DetectorSettings = CFG) -> tuple:
    return evaluate("negative", state, window, BASE, now, cfg)


def test_stats_formula() -> None:
    s = stats(Counts(neg=6, neu=4), BASE, CFG)
    p0 = (10 + 0.15 * 20) / (100 + 20)
    assert math.isclose(s.baseline, p0)
    assert math.isclose(s.z, (6 - 10 * p0) / math.sqrt(10 * p0 * (1 - p0)))
    assert s.share == 0.6
    pos = stats(Counts(pos=6, neu=4), BASE, CFG, "positive")
    p0_pos = (30 + 0.25 * 20) / (100 + 20)
    assert math.isclose(pos.baseline, p0_pos)
    assert math.isclose(pos.z, (6 - 10 * p0_pos) / math.sqrt(10 * p0_pos * (1 - p0_pos)))


def test_empty_window_and_degenerate_baseline() -> None:
    assert stats(Counts(), BASE, CFG).z == 0.0
    cfg = DetectorSettings(baseline_prior_weight=0)
    assert stats(Counts(neg=5), Counts(neg=5), cfg).z == 0.0  # p0 = 1
    assert stats(Counts(neg=5), Counts(), cfg).baseline == cfg.baseline_prior_share


def test_fire_escalate_resolve_cooldown_cycle() -> None:
    st0 = DetectorState()
    s1, t1 = neg(st0, Counts(neg=2, neu=0), 1000)
    assert t1 is None  # below min count even though the share is 100 %
    s2, t2 = neg(s1, Counts(neg=6, neu=4), 2000)
    assert t2 is not None
    assert t2.state == "firing"
    assert (t2.episode, t2.episode_start_ms) == (1, 2000)
    assert t2.severity == severity(t2.score, CFG.fire_z)
    assert s2.status == "firing"
    s3, t3 = neg(s2, Counts(neg=9, neu=4), 3000)
    assert s3.peak_score > s2.peak_score
    # a higher z in a higher severity band: the episode escalates, once per level
    assert t3 is not None
    assert (t3.state, t3.episode, t3.episode_start_ms) == ("escalated", 1, 2000)
    assert severity(t3.score, CFG.fire_z) == t3.severity != t2.severity
    s3b, t3b = neg(s3, Counts(neg=9, neu=5), 3500)
    assert t3b is None  # same band again: nothing new
    s4, t4 = neg(s3b, Counts(neg=1, neu=20), 4000)
    assert t4 is not None
    assert t4.state == "resolved"
    assert t4.episode_start_ms == 2000
    assert t4.severity == t4.peak_severity == severity(s3.peak_score, CFG.fire_z)
    assert s4.status == "cooldown"
    s5, t5 = neg(s4, Counts(neg=9, neu=1), 4000 + 59_999)
    assert t5 is None  # in cooldown
    _s6, t6 = neg(s5, Counts(neg=9, neu=1), 4000 + 60_000)
    assert t6 is not None
    assert (t6.state, t6.episode, t6.episode_start_ms) == ("firing", 2, 64_000)


def test_hysteresis_keeps_firing_between_levels() -> None:
    s, t = neg(DetectorState(), Counts(neg=8, neu=2), 0)
    assert t is not None
    # z between resolve_z and fire_z: still firing, nothing emitted
    mid = Counts(neg=3, neu=12)
    st_mid = stats(mid, BASE, CFG)
    assert CFG.resolve_z <= st_mid.z < CFG.fire_z
    s2, t2 = neg(s, mid, 10)
    assert t2 is None
    assert s2.status == "firing"


def test_positive_kind_fires_on_positive_share_only() -> None:
    positive = Counts(pos=9, neu=1)
    assert evaluate("negative", DetectorState(), positive, BASE, 0, CFG)[1] is None
    _, t = evaluate("positive", DetectorState(), positive, BASE, 0, CFG)
    assert t is not None
    assert (t.kind, t.state, t.stats.count) == ("positive", "firing", 9)


def test_volume_needs_a_baseline_and_fires_on_count_against_the_rate() -> None:
    cfg = DetectorSettings(volume_min_count=10, volume_fire_z=4.0, volume_warmup_seconds=3600)
    quiet = Counts(neu=60)  # 60 stories over the whole baseline
    surge = Counts(neu=30)
    cold = VolumeScale(window_buckets=15, baseline_buckets=10, bucket_seconds=60)
    assert evaluate("volume", DetectorState(), surge, quiet, 0, cfg, cold)[1] is None  # warm-up
    warm = VolumeScale(window_buckets=15, baseline_buckets=1365, bucket_seconds=60)
    s = stats(surge, quiet, cfg, "volume", warm)
    per_bucket_prior = cfg.volume_prior_per_hour * cfg.volume_prior_hours
    expected = 15 * (60 + per_bucket_prior) / (1365 + cfg.volume_prior_hours * 60)
    assert math.isclose(s.baseline, expected)
    assert math.isclose(s.z, (30 - expected) / math.sqrt(expected))
    state, t = evaluate("volume", DetectorState(), surge, quiet, 0, cfg, warm)
    assert t is not None
    assert (t.kind, t.state) == ("volume", "firing")
    calm = Counts(neu=1)
    _, t2 = evaluate("volume", state, calm, quiet, 60_000, cfg, warm)
    assert t2 is not None
    assert t2.state == "resolved"
    below = Counts(neu=9)  # a big z, but under the minimum count
    assert evaluate("volume", DetectorState(), below, Counts(), 0, cfg, warm)[1] is None


def test_may_change_is_exact_for_the_hot_path_shortcut() -> None:
    idle = DetectorState()
    assert not may_change("negative", idle, Counts(neg=2, pos=9), 0, CFG)
    assert may_change("negative", idle, Counts(neg=3), 0, CFG)
    assert not may_change("positive", idle, Counts(neg=9, pos=2), 0, CFG)
    cooling = DetectorState("cooldown", 1, 0, 5000, 0, 4.0, "low")
    assert not may_change("negative", cooling, Counts(neg=9), 4999, CFG)
    assert may_change("negative", cooling, Counts(neg=9), 5000, CFG)


def test_state_round_trip() -> None:
    s, _ = neg(DetectorState(), Counts(neg=8, neu=2), 5)
    assert DetectorState.from_dict(s.to_dict()) == s
    assert DetectorState.from_dict(None) == DetectorState()


def test_severity_monotone() -> None:
    order = ["low", "medium", "high", "critical"]
    levels = [order.index(severity(z / 4, CFG.fire_z)) for z in range(0, 60)]
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
    announced: list[str] = []
    for n_neg, other, dt in seq:
        now += dt
        window = Counts(neg=n_neg, neu=other)
        before = state
        state, t = evaluate("negative", state, window, base, now, cfg)
        if t is None:
            if state != before:  # a step without a transition only tracks the peak
                assert (state.status, state.peak_score) != (before.status, before.peak_score)
            continue
        if t.state == "firing":
            assert last not in ("firing", "escalated")  # no firing without a resolve between
            assert n_neg >= cfg.min_negative_count
            if resolved_at is not None:
                assert now - resolved_at >= cooldown_s * 1000
            assert t.episode == state.episode
            announced = [t.severity]
        elif t.state == "escalated":
            assert last in ("firing", "escalated")
            order = ["low", "medium", "high", "critical"]
            assert order.index(t.severity) > order.index(announced[-1])  # only upwards
            announced.append(t.severity)
        else:
            assert last in ("firing", "escalated")  # resolve only after a fire
            s = stats(window, base, cfg)
            assert s.z < cfg.resolve_z
            assert t.peak_severity == severity(state.peak_score, cfg.fire_z)
            resolved_at = now
        last = t.state
        assert state.status == ("cooldown" if t.state == "resolved" else "firing")
