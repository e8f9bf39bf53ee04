"""Fuzz the offline feed readers like the worker's validation is fuzzed.

Invariant (issue 9): every row of a hostile JSONL, CSV or Parquet file ends as exactly one
``FeedRow`` or ``BadRow`` carrying its true line, in file order, and loading completes.
The expected line numbers and outcomes are computed from what the test wrote, not read
back from the code under test; JSONL rows must also get the worker's own outcome for the
same bytes (``parse_news``).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_app.config import Settings
from stream_app.core.validation import InvalidRecord, parse_news
from stream_app.offline.feeds import BadRow, FeedError, FeedRow, load_feed, read_rows
from stream_app.schemas import DEAD_LETTER_REASONS
from tests.support.hostile import json_values

S = Settings()  # type: ignore[call-arg]
FEED_REASONS = {"bad_csv", "bad_event_id", "bad_parquet"}
FUZZ = settings(
    # CI runs 120 files per reader; FINPULSE_FUZZ_EXAMPLES=5000 digs deeper locally.
    max_examples=int(os.environ.get("FINPULSE_FUZZ_EXAMPLES", "120")),
    deadline=None,  # a shared 2-core machine: wall time is not the property
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

records = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=8) | json_values,
        "headline": st.text(max_size=30) | json_values,
        "tickers": st.lists(st.text(max_size=5), max_size=3) | json_values,
        "published_at": st.sampled_from(["2026-11-02T10:00:00Z", 1_793_000_000_000, "x"])
        | json_values,
        "event_id": st.sampled_from(["ev1", 7]) | json_values,
    },
)
jsonl_lines = st.one_of(
    records.map(lambda r: json.dumps(r).encode()),
    records.map(lambda r: json.dumps(r, ensure_ascii=False).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=60).map(lambda b: b.replace(b"\n", b" ")),
    st.integers(1, 3000).map(lambda d: b'{"id": ' + b"[" * d + b"]" * d + b"}"),
    st.sampled_from([b"", b"   ", b"\r", b"\xef\xbb\xbf{}", b'{"headline": "\\ud800"}']),
)


def _worker_outcome(raw: bytes) -> str:
    try:
        parse_news(raw, record_timestamp_ms=None, settings=S)
    except InvalidRecord as exc:
        return exc.reason
    return "ok"


def _bad_event_id(raw: bytes) -> bool:
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return False
    value = obj.get("event_id") if isinstance(obj, dict) else None
    return value is not None and (isinstance(value, bool) or not isinstance(value, str | int))


@FUZZ
@given(st.lists(jsonl_lines, max_size=12))
def test_jsonl_every_line_parsed_or_reported_like_the_worker(
    tmp_path: Path, lines: list[bytes]
) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"\n".join(lines))
    rows = list(read_rows(path))
    assert [r.line for r in rows] == [n for n, raw in enumerate(lines, 1) if _row_expected(n, raw)]

    feed = load_feed(path, S)
    assert len(feed.items) + len(feed.bad) + feed.filtered == len(rows)
    outcome = {f.line: "ok" for f in feed.items} | {b.line: b.reason for b in feed.bad}
    for row in rows:
        raw = lines[row.line - 1]
        if row.line == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        want = "bad_event_id" if _bad_event_id(raw) else _worker_outcome(raw)
        assert outcome[row.line] == want, (row.line, raw[:80])


def _row_expected(n: int, raw: bytes) -> bool:
    if n == 1:
        raw = raw.removeprefix(b"\xef\xbb\xbf")
    return bool(raw.strip())


# --- CSV ---------------------------------------------------------------------------------

COLUMNS = ["id", "headline", "published_at", "tickers", "event_id"]
_MARK = "\ue000"  # stands for an invalid UTF-8 byte until the row is encoded
cells = st.one_of(
    st.text(st.characters(blacklist_characters=_MARK, blacklist_categories=["Cs"]), max_size=12),
    st.sampled_from(["a,b", 'say "hi"', "two\nlines", "cr\ronly", "crlf\r\nend", " ", "\x00"]),
    st.sampled_from(["[" * 50_000, '["AAPL"]', "[1]", "[", "AAPL;MSFT"]),
    st.just("bad" + _MARK + "byte"),
)


@FUZZ
@given(st.lists(st.lists(cells, min_size=5, max_size=5), max_size=10))
def test_csv_every_record_parsed_or_reported_at_its_start_line(
    tmp_path: Path, table: list[list[str]]
) -> None:
    out = io.StringIO(newline="")
    csv.writer(out).writerow(COLUMNS)
    chunks = [out.getvalue().encode()]
    for row in table:
        out = io.StringIO(newline="")
        csv.writer(out).writerow(row)
        chunks.append(out.getvalue().encode().replace(_MARK.encode(), b"\xff"))
    path = tmp_path / "f.csv"
    path.write_bytes(b"".join(chunks))
    # A record starts on the line after every line break written before it (CR LF, LF, CR).
    starts = [1 + len(b"".join(chunks[: i + 1]).splitlines()) for i in range(len(table))]

    rows = list(read_rows(path))
    assert [r.line for r in rows] == starts
    for row, cells_ in zip(rows, table, strict=True):
        if any(_MARK in c for c in cells_):
            assert isinstance(row, BadRow)
            assert row.reason == "not_utf8"
        elif isinstance(row, FeedRow):
            given_ = dict(zip(COLUMNS, cells_, strict=True))
            for col in ("id", "headline", "published_at"):
                assert row.data.get(col, "") == given_[col]
            assert (row.event_id or "") == given_["event_id"]
        else:
            assert row.reason in {"too_deep", "invalid_json"}, row
            assert cells_[3].strip().startswith("[")

    feed = load_feed(path, S)
    assert len(feed.items) + len(feed.bad) + feed.filtered == len(table)
    assert {b.reason for b in feed.bad} <= set(DEAD_LETTER_REASONS) | FEED_REASONS


# --- Parquet ----------------------------------------------------------------------------


def _column(draw: Any, kind: str, n: int) -> Any:
    import datetime as dt
    import decimal

    import pyarrow as pa

    nulls = draw(st.lists(st.booleans(), min_size=n, max_size=n))

    def values(strategy: Any) -> list[Any]:
        got = draw(st.lists(strategy, min_size=n, max_size=n))
        return [None if null else v for v, null in zip(got, nulls, strict=True)]

    if kind == "string":
        return pa.array(values(st.text(max_size=10)), pa.string())
    if kind == "binary":
        return pa.array(values(st.binary(max_size=10)), pa.binary())
    if kind == "int":
        return pa.array(values(st.integers(-(2**63), 2**63 - 1)), pa.int64())
    if kind == "decimal":
        digits = st.integers(-(10**17), 10**17).map(lambda i: decimal.Decimal(i).scaleb(-2))
        return pa.array(values(digits), pa.decimal128(20, 2))
    if kind == "timestamp":
        return pa.array(values(st.integers(0, 4 * 10**12)), pa.timestamp("ms", "UTC"))
    if kind == "duration":
        return pa.array(values(st.integers(0, 10**6).map(lambda s: dt.timedelta(seconds=s))))
    if kind == "list":
        return pa.array(values(st.lists(st.text(max_size=4), max_size=3)), pa.list_(pa.string()))
    return pa.array(values(st.fixed_dictionaries({"a": st.integers(0, 9)})))


KINDS = ["string", "binary", "int", "decimal", "timestamp", "duration", "list", "struct"]


@st.composite
def parquet_files(draw: Any) -> tuple[bytes, int, bool]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = draw(st.integers(0, 40))
    names = draw(
        st.lists(
            st.sampled_from([*COLUMNS[:3], "extra", "more"]), min_size=1, max_size=4, unique=True
        )
    )
    table = pa.table({name: _column(draw, draw(st.sampled_from(KINDS)), n) for name in names})
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=draw(st.integers(1, 16)), compression="none")
    clean = sink.getvalue()
    data = bytearray(clean)
    # Overwrite a few bytes of the body (never the magic number or the footer length).
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(4, len(data) - 9))
        data[at] = draw(st.integers(0, 255))
    return bytes(data), n, bytes(data) != clean


@FUZZ
@given(parquet_files())
def test_parquet_every_row_parsed_or_reported_once(
    tmp_path: Path, made: tuple[bytes, int, bool]
) -> None:
    data, n, corrupted = made
    path = tmp_path / "f.parquet"
    path.write_bytes(data)
    try:
        rows = list(read_rows(path))
    except FeedError:
        return  # footer or schema unreadable: the file as a whole is refused, with a message
    assert [r.line for r in rows] == list(range(1, len(rows) + 1))
    if not corrupted:
        assert len(rows) == n
        assert not any(isinstance(r, BadRow) and r.reason == "bad_parquet" for r in rows)
    feed = load_feed(path, S)
    assert len(feed.items) + len(feed.bad) + feed.filtered == len(rows)
    assert {b.reason for b in feed.bad} <= set(DEAD_LETTER_REASONS) | FEED_REASONS


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_readers_complete_on_a_file_of_random_bytes(tmp_path: Path, fmt: str) -> None:
    import random

    rng = random.Random(9)
    path = tmp_path / f"f.{fmt}"
    path.write_bytes(b"id,headline\n" + bytes(rng.randrange(256) for _ in range(200_000)))
    rows = list(read_rows(path))
    assert [r.line for r in rows] == sorted({r.line for r in rows})
    load_feed(path, S)
