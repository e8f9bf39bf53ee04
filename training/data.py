"""Loading and validating the labelled CSVs (``text,label``) the model learns from and is judged on.

Every problem in a file is reported as a ``DatasetError`` naming the file and the physical line
where the offending record starts, so a broken download or a hand-edited CSV is fixed in
seconds instead of surfacing later as a shape error inside torch.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from finpulse.resources import dataset_dir
from models.errors import FinpulseError
from models.labels import SENTIMENT_LABELS, TOPIC_LABELS, sentiment_index_from_dataset, topic_slug

__all__ = [
    "DATA_FILES",
    "DatasetError",
    "Head",
    "LabelledTexts",
    "data_checksums",
    "file_sha256",
    "head_labels",
    "load_split",
    "parse_label_map",
    "read_labelled_csv",
]

Head = Literal["sentiment", "topic"]
Split = Literal["train", "valid"]

DATA_FILES: Final[tuple[str, ...]] = (
    "sentiment_train.csv",
    "sentiment_valid.csv",
    "topic_train.csv",
    "topic_valid.csv",
)
EXPECTED_HEADER: Final[list[str]] = ["text", "label"]


class DatasetError(FinpulseError):
    """A labelled CSV or a label map is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class LabelledTexts:
    """Texts with label indices into ``head_labels(head)`` (already mapped from dataset ids)."""

    head: Head
    texts: tuple[str, ...]
    labels: tuple[int, ...]
    source: str

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError("texts and labels differ in length")

    def __len__(self) -> int:
        return len(self.texts)


def head_labels(head: Head) -> tuple[str, ...]:
    """Label names of a head, in the order of its logits."""
    return SENTIMENT_LABELS if head == "sentiment" else TOPIC_LABELS


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_checksums(data_dir: Path | None = None) -> dict[str, str]:
    """sha256 of each vendored file, recorded in the model metadata for reproducibility."""
    root = data_dir or dataset_dir()
    return {name: file_sha256(root / name) for name in DATA_FILES}


def _decode(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DatasetError(f"{path}:{line}: not valid UTF-8 ({exc.reason})") from None


def read_labelled_csv(
    path: Path, *, head: Head, label_map: Mapping[str, int] | None = None
) -> LabelledTexts:
    """Read and validate a ``text,label`` CSV.

    Without ``label_map`` the labels must be the integer ids of the vendored dataset (for
    sentiment they are mapped Bearish/Bullish/Neutral -> negative/positive/neutral); with one,
    each raw label (any string, compared after stripping) must be a key of the map, whose
    values are indices into ``head_labels(head)``.
    """
    text = _decode(path)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise DatasetError(f"{path}:1: unparseable CSV header: {exc}") from None
    if header is None:
        raise DatasetError(f"{path}: empty file (expected a header line 'text,label')")
    if [h.strip() for h in header] != EXPECTED_HEADER:
        raise DatasetError(
            f"{path}:1: columns must be exactly 'text,label', got {','.join(header)!r}"
        )
    n_labels = len(head_labels(head))
    texts: list[str] = []
    labels: list[int] = []
    line = reader.line_num + 1  # physical line where the next record starts
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DatasetError(f"{path}:{line}: unparseable CSV record: {exc}") from None
        if not row:  # a blank line is not a record
            line = reader.line_num + 1
            continue
        if len(row) != 2:
            raise DatasetError(
                f"{path}:{line}: expected 2 fields (text,label), got {len(row)}: {row!r:.120}"
            )
        raw_text, raw_label = row
        if not raw_text.strip():
            raise DatasetError(f"{path}:{line}: empty or whitespace-only text")
        texts.append(raw_text)
        labels.append(_label_index(raw_label, path, line, head, n_labels, label_map))
        line = reader.line_num + 1
    if not texts:
        raise DatasetError(f"{path}: no data rows after the header")
    return LabelledTexts(head, tuple(texts), tuple(labels), str(path))


def _label_index(
    raw: str,
    path: Path,
    line: int,
    head: Head,
    n_labels: int,
    label_map: Mapping[str, int] | None,
) -> int:
    key = raw.strip()
    if label_map is not None:
        if key not in label_map:
            known = ", ".join(sorted(label_map))
            raise DatasetError(f"{path}:{line}: label {raw!r} is not in the label map ({known})")
        return label_map[key]
    try:
        value = int(key)
    except ValueError:
        raise DatasetError(
            f"{path}:{line}: label {raw!r} is not an integer id (use --label-map for named labels)"
        ) from None
    if not 0 <= value < n_labels:
        raise DatasetError(
            f"{path}:{line}: {head} label id {value} is out of range 0..{n_labels - 1}"
        )
    return sentiment_index_from_dataset(value) if head == "sentiment" else value


def load_split(head: Head, split: Split, data_dir: Path | None = None) -> LabelledTexts:
    """One of the four vendored files, validated, labels as head indices."""
    return read_labelled_csv((data_dir or dataset_dir()) / f"{head}_{split}.csv", head=head)


def _label_lookup(head: Head) -> dict[str, int]:
    names = head_labels(head)
    lookup: dict[str, int] = {}
    for i, name in enumerate(names):
        lookup[name.lower()] = i
        lookup[topic_slug(name)] = i
    return lookup


def parse_label_map(spec: str, head: Head) -> dict[str, int]:
    """Parse ``RAW=NAME,RAW=NAME`` (e.g. ``0=negative,1=positive,2=neutral``).

    ``RAW`` is the label as written in the CSV (any string without ``=`` or ``,``); ``NAME`` is
    a label of the head, case-insensitive (topic labels may also be given by their slug, e.g.
    ``m-a-investments``, because the names themselves contain ``|`` and ``&``).
    """
    lookup = _label_lookup(head)
    mapping: dict[str, int] = {}
    parts = [p for p in spec.split(",") if p.strip()]
    if not parts:
        raise DatasetError("label map is empty (expected e.g. '0=negative,1=positive,2=neutral')")
    for part in parts:
        raw, sep, name = part.partition("=")
        raw, name = raw.strip(), name.strip()
        if not sep or not raw or not name:
            raise DatasetError(f"label map entry {part.strip()!r} is not of the form RAW=LABEL")
        index = lookup.get(name.lower())
        if index is None:
            index = lookup.get(topic_slug(name))
        if index is None:
            choices = ", ".join(head_labels(head))
            raise DatasetError(f"label map: {name!r} is not a {head} label (one of: {choices})")
        if raw in mapping:
            raise DatasetError(f"label map: {raw!r} is mapped twice")
        mapping[raw] = index
    return mapping
