"""Bucket maths against brute force; incremental sliding equals recomputation."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stream_app.config import WindowSettings
from stream_app.core.windows import Counts, WindowGeometry
from tests.support.oracles import baseline_range, is_late, place, slide, sum_counts

WS = WindowSettings(
    bucket_seconds=60,
    window_seconds=300,
    baseline_seconds=1200,
    retention_seconds=2400,
    allowed_lateness_seconds=120,
)
G = WindowGeometry.of(WS)
T0 = 1_700_000_000_000
times = st.integers(min_value=T0, max_value=T0 + 3_600_000)
counts = st.builds(
    Counts,
    st.integers(0, 5),
    st.integers(0, 5),
    st.integers(0, 5),
    st.integers(0, 5_000_000),
)


@given(times)
def test_bucket_contains_time(ms: int) -> None:
    b = G.bucket(ms)
    assert b * G.bucket_ms <= ms < (b + 1) * G.bucket_ms


@given(times)
def test_ranges_partition_the_baseline_period(clock: int) -> None:
    w, base = G.window_range(clock), baseline_range(G, clock)
    assert len(w) == 5
    assert len(base) == 15
    assert base.stop == w.start
    assert G.bucket(clock) in w
    start, end = G.window_bounds_ms(clock)
    assert start <= clock < end
    assert end - start == WS.window_seconds * 1000
    for b in range(base.start - 2, w.stop + 2):
        expected = "window" if b in w else "baseline" if b in base else None
        assert place(G, b, clock) == expected


@given(times, times, times)
def test_late_rule_monotone(ev: int, c1: int, c2: int) -> None:
    lo, hi = sorted((c1, c2))
    assert not is_late(G, ev, None)
    if is_late(G, ev, lo):
        assert is_late(G, ev, hi)  # a larger clock never makes an event un-late
    assert is_late(G, ev, ev + G.lateness_ms + 1)
    assert not is_late(G, ev, ev + G.lateness_ms)


@given(times)
def test_retention_keeps_everything_readable(clock: int) -> None:
    keep = G.first_kept_bucket(clock)
    assert keep <= baseline_range(G, clock).start
    assert keep <= G.bucket(clock - G.lateness_ms)


@given(st.dictionaries(st.integers(0, 60), counts, max_size=30), st.lists(st.integers(0, 60)))
def test_sum_counts_is_brute_force(buckets: dict[int, Counts], idx: list[int]) -> None:
    got = sum_counts(buckets, idx)
    assert got.neg == sum(buckets[b].neg for b in idx if b in buckets)
    assert got.neg_prob_micros == sum(buckets[b].neg_prob_micros for b in idx if b in buckets)


@given(counts, counts)
def test_counts_add_sub_inverse_and_encoding(a: Counts, b: Counts) -> None:
    assert (a + b) - b == a
    assert Counts.decode(a.encode()) == a
    assert Counts.decode((a + b).encode().encode()) == a + b


@given(
    st.dictionaries(st.integers(0, 80), counts, max_size=40),
    st.lists(st.integers(0, 90), min_size=1, max_size=10).map(sorted),
)
def test_slide_equals_recompute(buckets: dict[int, Counts], clock_buckets: list[int]) -> None:
    def window_of(b: int) -> Counts:
        return sum_counts(buckets, G.window_range(b * G.bucket_ms))

    def baseline_of(b: int) -> Counts:
        return sum_counts(buckets, baseline_range(G, b * G.bucket_ms))

    # Invariant of the stores: no bucket above the clock's bucket holds counts.
    b1 = clock_buckets[0]
    buckets = {b: c for b, c in buckets.items() if b <= b1}
    window, baseline = window_of(b1), baseline_of(b1)
    for b2 in clock_buckets[1:]:
        needed = set().union(*G.transition_ranges(b1, b2))

        def full(b: int, needed: set[int] = needed, stored: dict[int, Counts] = buckets) -> Counts:
            assert b in needed  # the store only returned these
            return stored.get(b, Counts())

        slide(G, window, baseline, b1, b2, full)
        assert window == window_of(b2)
        assert baseline == baseline_of(b2)
        # then the batch may add counts at or below b2
        buckets = {b: c for b, c in buckets.items() if b <= b2}
        buckets[b2] = buckets.get(b2, Counts()) + Counts(neg=1)
        window, baseline = window_of(b2), baseline_of(b2)
        b1 = b2


WIDE = WindowGeometry(
    bucket_ms=1000, window_buckets=5, baseline_buckets=200, retention_buckets=300, lateness_ms=0
)


@given(
    st.dictionaries(st.integers(0, 600), counts, max_size=30),
    st.dictionaries(st.integers(0, 600), counts, max_size=30),
    st.lists(st.integers(0, 700), min_size=2, max_size=8).map(sorted),
)
def test_slide_layers_equals_slide_of_the_sum(
    stored: dict[int, Counts], deltas: dict[int, Counts], clocks: list[int]
) -> None:
    """Sliding stored counts and batch deltas as separate layers = sliding their sum."""
    b1 = clocks[0]
    stored = {b: c for b, c in stored.items() if b <= b1}
    deltas = {b: c for b, c in deltas.items() if b <= b1}
    total = {b: stored.get(b, Counts()) + deltas.get(b, Counts()) for b in stored | deltas}
    start_w = sum_counts(total, WIDE.window_range(b1 * 1000))
    start_b = sum_counts(total, baseline_range(WIDE, b1 * 1000))
    summed = (start_w.copy(), start_b.copy())
    layered = (start_w.copy(), start_b.copy())
    for b2 in clocks[1:]:
        slide(WIDE, *summed, b1, b2, lambda b: total.get(b, Counts()))
        WIDE.slide_layers(*layered, b1, b2, (stored, deltas))
        assert summed == layered
        b1 = b2
