"""Report series match a brute-force recomputation; the HTML names what it shows."""

from __future__ import annotations

import csv
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.config import Settings
from stream_app.core.detector import stats
from stream_app.core.windows import Counts, WindowGeometry
from stream_app.offline.report import entity_series, write_timeseries
from tests.support.oracles import baseline_range, sum_counts

SETTINGS = Settings().with_overrides(  # type: ignore[call-arg]
    **{"window.bucket_seconds": 60, "window.window_seconds": 180,
       "window.baseline_seconds": 600, "window.retention_seconds": 1200,
       "window.allowed_lateness_seconds": 60}
)  # fmt: skip

bucket_counts = st.dictionaries(
    st.integers(1000, 1040),
    st.builds(Counts, st.integers(0, 5), st.integers(0, 5), st.integers(0, 5), st.just(0)),
    max_size=20,
)


@settings(max_examples=60, deadline=None)
@given(bucket_counts)
def test_series_equals_brute_force_window_sums(buckets: dict[int, Counts]) -> None:
    geo = WindowGeometry.of(SETTINGS.window)
    points = list(entity_series(buckets, SETTINGS))
    if not buckets:
        assert points == []
        return
    assert len(points) == max(buckets) - min(buckets) + 1
    for b, p in zip(range(min(buckets), max(buckets) + 1), points, strict=True):
        clock = b * geo.bucket_ms
        window = sum_counts(buckets, geo.window_range(clock))
        baseline = sum_counts(buckets, baseline_range(geo, clock))
        expected = stats(window, baseline, SETTINGS.detector)
        assert p.window == window
        assert p.score == expected.z
        assert p.baseline_share == expected.baseline


def test_timeseries_csv_has_one_row_per_bucket(tmp_path: Path) -> None:
    buckets = {"market": {29_000_000: Counts(1, 2, 0, 0), 29_000_003: Counts(4, 0, 0, 0)}}
    path = tmp_path / "ts.csv"
    write_timeseries(path, buckets, ["market", "ticker:NONE"], SETTINGS)
    rows = list(csv.DictReader(path.open()))
    assert [r["entity"] for r in rows] == ["market"] * 4
    assert [int(r["total"]) for r in rows] == [3, 0, 0, 4]
    assert rows[-1]["window_negative"] == "4"  # the first bucket has left the 3-bucket window
