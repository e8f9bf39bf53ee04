"""Validation of labelled CSVs: every defect names the file and the line it starts on."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.labels import SENTIMENT_LABELS, TOPIC_LABELS
from training.data import (
    DATA_FILES,
    DatasetError,
    data_checksums,
    file_sha256,
    load_split,
    parse_label_map,
    read_labelled_csv,
)


def write(tmp_path: Path, content: str | bytes, name: str = "d.csv") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_sentiment_ids_map_to_label_names(tmp_path: Path) -> None:
    path = write(tmp_path, "text,label\nbear,0\nbull,1\nflat,2\n")
    data = read_labelled_csv(path, head="sentiment")
    assert [SENTIMENT_LABELS[i] for i in data.labels] == ["negative", "positive", "neutral"]
    assert data.texts == ("bear", "bull", "flat")


def test_topic_ids_are_indices(tmp_path: Path) -> None:
    path = write(tmp_path, "text,label\na,0\nb,19\n")
    data = read_labelled_csv(path, head="topic")
    assert [TOPIC_LABELS[i] for i in data.labels] == ["Analyst Update", "Stock Movement"]


def test_quoted_multiline_text_and_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, 'text,label\n"two\nlines",1\n"x, y",7\n')
    with pytest.raises(DatasetError, match=r"d\.csv:4: sentiment label id 7 is out of range"):
        read_labelled_csv(path, head="sentiment")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty file"),
        ("text,label\n", "no data rows"),
        ("text,sentiment\na,1\n", r":1: columns must be exactly 'text,label'"),
        ("label,text\n1,a\n", r":1: columns must be exactly"),
        ("text,label,extra\na,1,x\n", r":1: columns must be exactly"),
        ("text,label\na,1\nb,1,3\n", r":3: expected 2 fields"),
        ("text,label\na,1\nonlytext\n", r":3: expected 2 fields"),
        ("text,label\n   ,1\n", r":2: empty or whitespace-only text"),
        ("text,label\n,1\n", r":2: empty or whitespace-only text"),
        ("text,label\na,-1\n", r":2: sentiment label id -1 is out of range 0\.\.2"),
        ("text,label\na,3\n", r":2: sentiment label id 3 is out of range"),
        ("text,label\na,bullish\n", r":2: label 'bullish' is not an integer id"),
        ("text,label\na,\n", r":2: label '' is not an integer id"),
        ('text,label\na,1\n"unterminated,1\n', r":3: unparseable CSV record"),
        ('text,label\n"a"b,1\n', r":2: unparseable CSV record"),
    ],
)
def test_defects_are_reported_with_file_and_line(
    tmp_path: Path, content: str, message: str
) -> None:
    path = write(tmp_path, content)
    with pytest.raises(DatasetError, match=message) as info:
        read_labelled_csv(path, head="sentiment")
    assert str(path) in str(info.value)


def test_topic_range_is_checked(tmp_path: Path) -> None:
    path = write(tmp_path, "text,label\na,20\n")
    with pytest.raises(DatasetError, match=r"topic label id 20 is out of range 0\.\.19"):
        read_labelled_csv(path, head="topic")


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, b"text,label\nok,1\nbad \xff byte,1\n")
    with pytest.raises(DatasetError, match=r"d\.csv:3: not valid UTF-8"):
        read_labelled_csv(path, head="sentiment")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="file not found"):
        read_labelled_csv(tmp_path / "nope.csv", head="sentiment")


def test_bom_and_crlf_are_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufefftext,label\r\na,1\r\n\r\nb,0\r\n")
    assert read_labelled_csv(path, head="sentiment").texts == ("a", "b")


def test_label_map_with_string_labels(tmp_path: Path) -> None:
    path = write(tmp_path, "text,label\nup,bullish\ndown, bearish\n")
    mapping = parse_label_map("bullish=positive,bearish=Negative", "sentiment")
    data = read_labelled_csv(path, head="sentiment", label_map=mapping)
    assert [SENTIMENT_LABELS[i] for i in data.labels] == ["positive", "negative"]
    bad = write(tmp_path, "text,label\nx,sideways\n", "bad.csv")
    with pytest.raises(DatasetError, match=r"bad\.csv:2: label 'sideways' is not in the label map"):
        read_labelled_csv(bad, head="sentiment", label_map=mapping)


def test_parse_label_map_numeric_and_topic_slugs() -> None:
    assert parse_label_map("0=negative, 1=positive ,2=neutral", "sentiment") == {
        "0": SENTIMENT_LABELS.index("negative"),
        "1": SENTIMENT_LABELS.index("positive"),
        "2": SENTIMENT_LABELS.index("neutral"),
    }
    mapping = parse_label_map("ma=m-a-investments,fed=Fed | Central Banks", "topic")
    assert mapping == {
        "ma": TOPIC_LABELS.index("M&A | Investments"),
        "fed": TOPIC_LABELS.index("Fed | Central Banks"),
    }


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "label map is empty"),
        (" , ", "label map is empty"),
        ("0negative", "not of the form RAW=LABEL"),
        ("=negative", "not of the form RAW=LABEL"),
        ("0=", "not of the form RAW=LABEL"),
        ("0=bearish", "'bearish' is not a sentiment label"),
        ("0=negative,0=positive", "'0' is mapped twice"),
    ],
)
def test_parse_label_map_errors(spec: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        parse_label_map(spec, "sentiment")


def test_vendored_files_load_and_checksum(data_dir: Path) -> None:
    valid = load_split("sentiment", "valid", data_dir)
    assert len(valid) == 2388
    assert valid.labels.count(SENTIMENT_LABELS.index("neutral")) == 1566
    sums = data_checksums(data_dir)
    assert set(sums) == set(DATA_FILES)
    assert sums["topic_valid.csv"] == file_sha256(data_dir / "topic_valid.csv")
    assert len(set(sums.values())) == len(DATA_FILES)
