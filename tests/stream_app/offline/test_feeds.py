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
    assert rows[0].line == 3
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
