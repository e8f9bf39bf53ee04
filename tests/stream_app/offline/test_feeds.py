"""Feed readers: every row is a record or a BadRow with its line number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream_app.config import Settings
from stream_app.offline.feeds import BadRow, FeedError, FeedRow, read_rows


def _settings() -> Settings:
    return Settings()  # type: ignore[call-arg]  # mypy misreads Field(default, ...)


GOOD = {"id": "a1", "headline": "$AAPL falls", "published_at": "2026-11-02T10:00:00Z"}


def test_jsonl_bad_rows_carry_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text(
        json.dumps(GOOD) + "\n"
        "{not json\n"
        "\n"
        "[1, 2]\n" + json.dumps({**GOOD, "id": "a2", "event_id": "ev1"}) + "\n"
    )
    rows = list(read_rows(path))
    assert [type(r) for r in rows] == [FeedRow, BadRow, BadRow, FeedRow]
    assert isinstance(rows[1], BadRow)
    assert (rows[1].line, rows[1].reason) == (2, "invalid_json")
    assert isinstance(rows[2], BadRow)
    assert (rows[2].line, rows[2].reason) == (4, "not_object")
    last = rows[3]
    assert isinstance(last, FeedRow)
    assert (last.line, last.event_id) == (5, "ev1")
    assert "event_id" not in last.data
    assert "line 2" in str(rows[1])


def test_csv_lists_and_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text(
        "id,headline,published_at,tickers,event_id\n"
        'a1,"multi\nline $X",2026-11-02T10:00:00Z,AAPL;MSFT,\n'
        "a2,ok,2026-11-02T10:01:00Z,,ev\n"
        "a3,too,many,fields,here,extra\n"
        'a4,json list,2026-11-02T10:02:00Z,"[""TSLA""]",\n'
    )
    rows = list(read_rows(path))
    assert isinstance(rows[0], FeedRow)
    assert rows[0].data["tickers"] == ["AAPL", "MSFT"]
    assert rows[0].line == 2  # a record spanning lines 2-3 is reported where it starts
    assert isinstance(rows[1], FeedRow)
    assert "tickers" not in rows[1].data
    assert rows[1].event_id == "ev"
    assert isinstance(rows[2], BadRow)
    assert rows[2].line == 5
    assert rows[2].reason == "bad_csv"
    assert isinstance(rows[3], FeedRow)
    assert rows[3].data["tickers"] == ["TSLA"]


def test_parquet_timestamps_become_iso(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "f.parquet"
    table = pa.table(
        {
            "id": ["a", "b"],
            "headline": ["x", "y"],
            "published_at": pa.array(
                [1_793_000_000_000, 1_793_000_060_000], pa.timestamp("ms", "UTC")
            ),
        }
    )
    pq.write_table(table, path)
    rows = list(read_rows(path))
    assert [r.line for r in rows] == [1, 2]
    assert isinstance(rows[0], FeedRow)
    assert rows[0].data["published_at"].startswith("2026-")


def test_unknown_suffix_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match="suffix"):
        read_rows(tmp_path / "f.txt")
    with pytest.raises(FeedError, match="not found"):
        read_rows(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(FeedError, match="Parquet"):
        list(read_rows(bad))


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_load_feed_validates_like_the_worker_and_sorts(tmp_path: Path) -> None:
    from stream_app.offline.feeds import load_feed

    path = _write(
        tmp_path / "f.jsonl",
        [
            {**GOOD, "id": "late", "published_at": "2026-11-02T12:00:00Z"},
            {**GOOD, "id": "early", "published_at": "2026-11-02T09:00:00Z", "event_id": "e"},
            {"id": "nohead", "published_at": "2026-11-02T09:00:00Z"},
            {**GOOD, "id": "badtime", "published_at": "yesterday"},
            "{oops",
        ],
    )
    feed = load_feed(path, _settings())
    assert [f.item.id for f in feed.items] == ["early", "late"]
    assert feed.items[0].event_id == "e"
    assert [(b.line, b.reason) for b in feed.bad] == [
        (3, "missing_field"),
        (4, "bad_timestamp"),
        (5, "invalid_json"),
    ]
    assert feed.skipped_by_reason == {"invalid_json": 1, "bad_timestamp": 1, "missing_field": 1}
    assert b"event_id" not in feed.items[0].raw


def test_load_feed_strict_names_the_line(tmp_path: Path) -> None:
    from stream_app.offline.feeds import load_feed

    path = _write(tmp_path / "f.jsonl", [GOOD, {"id": "x", "headline": "h"}])
    with pytest.raises(FeedError, match=r"line 2: missing_field"):
        load_feed(path, _settings(), strict=True)


def test_load_feed_time_filter_is_half_open(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from stream_app.offline.feeds import load_feed

    rows = [{**GOOD, "id": str(h), "published_at": f"2026-11-02T{h:02d}:00:00Z"} for h in range(6)]
    path = _write(tmp_path / "f.jsonl", list(rows))
    feed = load_feed(
        path,
        _settings(),
        time_from=datetime(2026, 11, 2, 2, tzinfo=UTC),
        time_to=datetime(2026, 11, 2, 4, tzinfo=UTC),
    )
    assert [f.item.id for f in feed.items] == ["2", "3"]
    assert feed.filtered == 4


# --- one bad row costs that row only (issue 9, items 2 and 3) ---------------------------


def _csv_feed(path: Path, rows: int, bad_row: int) -> Path:
    """``rows`` valid records; record ``bad_row`` (0-based) holds one invalid UTF-8 byte."""
    out = [b"id,headline,published_at,tickers\n"]
    for i in range(rows):
        head = b"$AAPL head\xffline" if i == bad_row else b"$AAPL headline"
        out.append(b"n%d,%s %d,2026-11-02T10:%02d:00Z,AAPL\n" % (i, head, i, i % 60))
    path.write_bytes(b"".join(out))
    return path


@pytest.mark.parametrize("bad_row", [2500, 3], ids=["mid-file", "first-8KB"])
def test_csv_invalid_utf8_costs_only_its_row_at_its_true_line(tmp_path: Path, bad_row: int) -> None:
    from stream_app.offline.feeds import load_feed

    feed = load_feed(_csv_feed(tmp_path / "f.csv", 5000, bad_row), _settings())
    assert len(feed.items) == 4999
    assert [(b.line, b.reason) for b in feed.bad] == [(bad_row + 2, "not_utf8")]
    assert f"n{bad_row}" not in {f.item.id for f in feed.items}
    assert {f.line for f in feed.items if f.item.id == f"n{bad_row + 1}"} == {bad_row + 3}


def test_csv_header_that_is_not_utf8_is_a_feed_error(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"id,head\xffline\nx,y\n")
    with pytest.raises(FeedError, match="header is not UTF-8"):
        list(read_rows(path))


def test_csv_bom_and_bare_cr_line_breaks(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b'\xef\xbb\xbfid,headline\rx1,h1\r"x2","two\rlines"\rx3,h3\r')
    rows = list(read_rows(path))
    assert [(r.line, r.data["id"]) for r in rows if isinstance(r, FeedRow)] == [
        (2, "x1"), (3, "x2"), (5, "x3"),
    ]  # fmt: skip


# Hostile record values: the feed reader must give each the dead-letter reason the worker
# gives the same bytes, never raise.
HOSTILE_JSONL = [
    b'{"id":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"id": "a", "headline": "' + b"\xff" + b'", "published_at": 1}',
    b"[1, 2]",
    b'{"id": 1' + b"0" * 5000 + b"}",
    b'"just a string"',
    b'{"id": "a", "headline": "\\u200b\\ufeff", "published_at": "2026-11-02T10:00:00Z"}',
    b'{"id": "a", "headline": "h", "tickers": ["\\u00df"], "published_at": 1793000000000}',
    b"\xef\xbb\xbf{}",
]


@pytest.mark.parametrize("raw", HOSTILE_JSONL, ids=lambda r: repr(r[:24]))
def test_jsonl_rows_get_the_workers_reason(tmp_path: Path, raw: bytes) -> None:
    from stream_app.core.validation import InvalidRecord, parse_news
    from stream_app.offline.feeds import load_feed

    path = tmp_path / "f.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + raw + b"\n" + json.dumps(GOOD).encode())
    with pytest.raises(InvalidRecord) as worker:
        parse_news(raw, record_timestamp_ms=None, settings=_settings())
    feed = load_feed(path, _settings())
    assert [(b.line, b.reason) for b in feed.bad] == [(2, worker.value.reason)]
    assert [f.line for f in feed.items] == [1, 3]


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("[" * 50_000, "too_deep"),
        ('[""AAPL""', "invalid_json"),
        ("[1]", "wrong_type"),  # a list, but not of strings: the worker's reason for it
        ('[""\u00df""]', "invalid_ticker"),
    ],
)
def test_csv_tickers_cell_gets_the_workers_reason(tmp_path: Path, cell: str, reason: str) -> None:
    from stream_app.offline.feeds import load_feed

    path = tmp_path / "f.csv"
    path.write_text(
        "id,headline,published_at,tickers\n"
        f'a,h,2026-11-02T10:00:00Z,"{cell}"\n'
        "b,h,2026-11-02T10:00:00Z,AAPL\n",
        encoding="utf-8",
    )
    feed = load_feed(path, _settings())
    assert [(b.line, b.reason) for b in feed.bad] == [(2, reason)]
    assert [f.item.id for f in feed.items] == ["b"]


def test_parquet_binary_and_decimal_columns(tmp_path: Path) -> None:
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    from stream_app.offline.feeds import load_feed

    path = tmp_path / "f.parquet"
    pq.write_table(
        pa.table(
            {
                "id": ["a", "b", "c"],
                "headline": pa.array([b"$AAPL up", b"bad \xff", b"ok"], pa.binary()),
                "published_at": pa.array(
                    [decimal.Decimal(1_793_000_000_000)] * 3, pa.decimal128(20, 0)
                ),
                "price": pa.array([decimal.Decimal("1.25")] * 3, pa.decimal128(5, 2)),
                "blob": pa.array([b"\x00\xff", None, b"x"], pa.binary()),  # unknown: ignored
            }
        ),
        path,
    )
    feed = load_feed(path, _settings())
    assert [(f.line, f.item.headline) for f in feed.items] == [(1, "$AAPL up"), (3, "ok")]
    assert feed.items[0].item.event_time_ms == 1_793_000_000_000
    assert [(b.line, b.reason) for b in feed.bad] == [(2, "not_utf8")]


def test_parquet_corrupt_page_costs_its_row_group_only(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n, group = 3000, 1000
    clean = tmp_path / "clean.parquet"
    pq.write_table(
        pa.table(
            {
                "id": [f"i{i}" for i in range(n)],
                "headline": [f"$AAPL headline {i}" for i in range(n)],
                "published_at": ["2026-11-02T10:00:00Z"] * n,
            }
        ),
        clean,
        row_group_size=group,
        compression="none",
    )
    data = bytearray(clean.read_bytes())
    chunk = pq.ParquetFile(clean).metadata.row_group(1).column(1)
    start = chunk.data_page_offset + 64
    data[start : start + 256] = b"\xab" * 256
    path = tmp_path / "corrupt.parquet"
    path.write_bytes(bytes(data))

    rows = list(read_rows(path))
    assert [r.line for r in rows] == list(range(1, n + 1))  # every row exactly once
    bad = [r.line for r in rows if isinstance(r, BadRow)]
    assert bad
    assert set(bad) <= set(range(group + 1, 2 * group + 1))
    assert {r.reason for r in rows if isinstance(r, BadRow)} == {"bad_parquet"}
    assert all(isinstance(r, FeedRow) for r in rows[2 * group :])  # the next group is read


def test_parquet_timestamp_python_cannot_hold_costs_its_row_only(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from stream_app.offline.feeds import load_feed

    path = tmp_path / "f.parquet"
    stamps = [1_793_000_000_000, 10**17, 1_793_000_060_000]  # 10**17 ms: past year 9999
    pq.write_table(
        pa.table(
            {
                "id": ["a", "b", "c"],
                "headline": ["x", "y", "z"],
                "published_at": pa.array(stamps, pa.timestamp("ms", "UTC")),
            }
        ),
        path,
    )
    feed = load_feed(path, _settings())
    assert [f.item.id for f in feed.items] == ["a", "c"]
    assert [(b.line, b.reason) for b in feed.bad] == [(2, "bad_timestamp")]
