"""Price files and the forward-return rule, on hand-made series with returns worked by hand."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.offline.prices import (
    PriceError,
    PriceSeries,
    forward_return,
    forward_returns,
    load_prices,
)
from stream_app.schemas import datetime_to_ms

D = datetime(2026, 11, 2, tzinfo=UTC)


def ms(hh: int, mm: int, ss: int = 0, day: int = 0) -> int:
    return datetime_to_ms(D + timedelta(days=day, hours=hh, minutes=mm, seconds=ss))


# 10:00 100, 10:01 101, 10:04 99, 10:10 98, 11:00 110, 11:05 90, next day 10:00 120
SERIES = PriceSeries(
    np.array([ms(10, 0), ms(10, 1), ms(10, 4), ms(10, 10), ms(11, 0), ms(11, 5), ms(10, 0, day=1)]),
    np.array([100.0, 101.0, 99.0, 98.0, 110.0, 90.0, 120.0]),
)
MIN5, HOUR, DAY = 300_000, 3_600_000, 86_400_000
TOL = 120_000


def test_returns_take_the_last_price_at_or_before_entry_and_exit() -> None:
    t = ms(10, 0, 30)  # entry: 10:00 (100), 30 s old
    five = forward_return(SERIES, t, MIN5, TOL)  # exit 10:05:30 -> 10:04 (99), 90 s old
    assert (five.entry_ms, five.entry_price, five.exit_ms, five.exit_price) == (
        ms(10, 0), 100.0, ms(10, 4), 99.0,
    )  # fmt: skip
    assert five.ret == pytest.approx(99 / 100 - 1)
    assert forward_return(SERIES, t, HOUR, TOL).ret == pytest.approx(110 / 100 - 1)  # 11:00
    assert forward_return(SERIES, t, DAY, TOL).ret == pytest.approx(120 / 100 - 1)  # +1 d 10:00
    # an observation exactly at t is the entry ("at or before")
    at = forward_return(SERIES, ms(10, 1), MIN5, TOL)
    assert (at.entry_price, at.exit_price) == (101.0, 99.0)


@pytest.mark.parametrize(
    ("t", "h", "tol", "reason"),
    [
        (ms(9, 59), MIN5, TOL, "before_first_price"),
        (ms(10, 7), MIN5, TOL, "stale_entry"),  # last price 10:04, 180 s old
        (ms(11, 5, 30), MIN5, TOL, "stale_exit"),  # exit 11:10:30 -> 11:05, 330 s old
        (ms(10, 4, 10), MIN5, 600_000, "no_new_price"),  # exit falls back to the entry's 10:04
        (ms(10, 0, 30, day=1), DAY, TOL, "beyond_last_price"),
        (ms(10, 0, 30, day=1), MIN5, TOL, "beyond_last_price"),
    ],
)
def test_missing_returns_say_why_and_are_never_guessed(
    t: int, h: int, tol: int, reason: str
) -> None:
    got = forward_return(SERIES, t, h, tol)
    assert got.missing == reason
    assert got.ret is None


def test_a_ticker_without_prices_is_missing() -> None:
    assert forward_return(None, ms(10, 0), MIN5, TOL).missing == "no_prices_for_ticker"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(ms(9, 50), ms(11, 0, day=1)), min_size=1, max_size=30),
    st.sampled_from([MIN5, HOUR, DAY]),
    st.sampled_from([60_000, TOL, 600_000]),
)
def test_vectorised_returns_equal_the_scalar_rule(times: list[int], h: int, tol: int) -> None:
    got = forward_returns(SERIES, np.array(times, dtype=np.int64), h, tol)
    for t, r in zip(times, got, strict=True):
        one = forward_return(SERIES, t, h, tol)
        if one.ret is None:
            assert np.isnan(r)
        else:
            assert r == one.ret


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_notes_tickers_duplicates_and_bad_rows(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "p.csv",
        "# SYNTHETIC: made up for a test\n"
        "# second note\n"
        "Ticker,timestamp,Price,volume\n"
        "$aaa,2026-11-02T10:00:00Z,100,5\n"
        "ticker:AAA,2026-11-02T10:01:00Z,101,5\n"
        "AAA,2026-11-02T10:01:00Z,102,5\n"  # same time again: the later row wins
        "BBB,1793613600000,50,1\n"  # epoch ms
        "not a ticker!,2026-11-02T10:00:00Z,1,1\n"
        "CCC,yesterday,1,1\n"
        "CCC,2026-11-02T10:00:00Z,-3,1\n"
        "CCC,2026-11-02T10:00:00Z,abc,1\n"
        "\n",
    )
    table = load_prices(path)
    assert table.notes == ["SYNTHETIC: made up for a test", "second note"]
    assert table.synthetic
    assert sorted(table.series) == ["AAA", "BBB"]
    aaa = table.series["AAA"]
    assert aaa.times_ms.tolist() == [ms(10, 0), ms(10, 1)]
    assert aaa.prices.tolist() == [100.0, 102.0]
    assert table.series["BBB"].times_ms.tolist() == [1793613600000]
    assert table.duplicates == 1
    assert table.rows == 8
    assert dict(table.bad) == {"bad_ticker": 1, "bad_timestamp": 1, "bad_price": 2}
    assert [b.line for b in table.bad_rows] == [8, 9, 10, 11]


def test_gzip_csv_and_unsorted_rows(tmp_path: Path) -> None:
    path = tmp_path / "p.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("ticker,timestamp,price\nAAA,2026-11-02T10:01:00Z,2\nAAA,2026-11-02T10:00Z,1\n")
    table = load_prices(path)
    assert table.series["AAA"].prices.tolist() == [1.0, 2.0]
    assert not table.synthetic


def test_parquet_with_timestamp_and_string_columns(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    times = [datetime(2026, 11, 2, 10, 0, tzinfo=UTC), datetime(2026, 11, 2, 10, 5, tzinfo=UTC)]
    table = pa.table({"ticker": ["AAA", "AAA"], "timestamp": times, "price": [1.5, 3.0]})
    table = table.replace_schema_metadata({"finpulse.note": "synthetic test prices"})
    pq.write_table(table, tmp_path / "p.parquet")
    got = load_prices(tmp_path / "p.parquet")
    assert got.series["AAA"].times_ms.tolist() == [ms(10, 0), ms(10, 5)]
    assert got.synthetic
    assert got.notes == ["synthetic test prices"]

    naive = pa.table({"ticker": ["BBB"], "timestamp": ["2026-11-02T10:00:00"], "price": [2.0]})
    pq.write_table(naive, tmp_path / "q.parquet")
    assert load_prices(tmp_path / "q.parquet").series["BBB"].times_ms.tolist() == [ms(10, 0)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ticker,time,price\nAAA,2026-11-02T10:00Z,1\n", "missing column.*timestamp"),
        ("# only a note\n", "no header row"),
        ("ticker,timestamp,price\nAAA,never,1\n", "no valid price rows.*line 2: bad_timestamp"),
    ],
)
def test_unusable_price_files_are_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PriceError, match=message):
        load_prices(_write(tmp_path / "p.csv", text))


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PriceError, match="does not exist"):
        load_prices(tmp_path / "nope.csv")
