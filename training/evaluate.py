"""Honest evaluation of a saved model dir, next to the baselines it has to beat.

By default both heads are scored on their vendored validation splits, and the sentiment
split also scores the Loughran-McDonald and VADER lexicons; both heads get a
majority-class baseline (most frequent label of the training split). With ``data`` any
``text,label`` CSV is scored for one head. The model runs in float32 (or bf16 autocast on
CUDA) through the same code as validation during training, so the numbers agree with the
manifest's; int8 serving quantisation is not what is being measured here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from training.baselines import lm_predict, majority_label, vader_predict
from training.data import (
    Head,
    LabelledTexts,
    file_sha256,
    head_labels,
    load_split,
    read_labelled_csv,
)
from training.metrics import ClassificationReport, classification_report

__all__ = ["DEFAULT_MAX_LENGTH", "EvaluationReport", "HeadEvaluation", "evaluate_model"]

DEFAULT_MAX_LENGTH = 128


class HeadEvaluation(BaseModel):
    model_config = ConfigDict(frozen=True)

    head: str
    dataset: str
    dataset_sha256: str
    model: ClassificationReport
    baselines: dict[str, ClassificationReport]


class EvaluationReport(BaseModel):
    """Written as ``report.json``; also what ``--json`` prints."""

    model_config = ConfigDict(frozen=True)

    model_dir: str
    model_version: str
    generated_at: datetime
    max_length: int
    heads: list[HeadEvaluation]


def _baselines(
    data: LabelledTexts, train_labels: list[int], with_lexicons: bool
) -> dict[str, ClassificationReport]:
    labels = head_labels(data.head)
    majority = majority_label(train_labels)
    out = {
        f"majority ({labels[majority]})": classification_report(
            data.labels, [majority] * len(data), labels
        )
    }
    if with_lexicons:
        out["loughran-mcdonald"] = classification_report(
            data.labels, lm_predict(data.texts), labels
        )
        out["vader"] = classification_report(data.labels, vader_predict(data.texts), labels)
    return out


def _sha256_of(data: LabelledTexts) -> str:
    path = Path(data.source)
    if path.is_file():
        return file_sha256(path)
    return hashlib.sha256("\n".join(data.texts).encode()).hexdigest()


def evaluate_model(
    model_dir: Path,
    *,
    data: Path | None = None,
    label_map: Mapping[str, int] | None = None,
    head: Head = "sentiment",
    device: str = "auto",
    batch_size: int = 128,
    baselines: bool = True,
    data_dir: Path | None = None,
) -> EvaluationReport:
    """Score the model (and baselines) on the validation splits, or on ``data`` for ``head``."""
    from models.checkpoint import load_model
    from training.inference import encode, pick_device, predict_head

    if data is not None:
        datasets = [read_labelled_csv(data, head=head, label_map=label_map)]
    else:
        datasets = [
            load_split("sentiment", "valid", data_dir),
            load_split("topic", "valid", data_dir),
        ]
    dev = pick_device(device)
    loaded = load_model(model_dir, device=str(dev))
    tokenizer = loaded.tokenizer
    max_length = int(loaded.manifest.metadata.get("max_length", DEFAULT_MAX_LENGTH))
    pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
    heads: list[HeadEvaluation] = []
    for split in datasets:
        preds = predict_head(
            loaded.model,
            encode(tokenizer, split.texts, max_length),
            split.head,
            pad_id=pad_id,
            batch_size=batch_size,
            device=dev,
        )
        labels = head_labels(split.head)
        train_labels = list(load_split(split.head, "train", data_dir).labels)
        heads.append(
            HeadEvaluation(
                head=split.head,
                dataset=split.source,
                dataset_sha256=_sha256_of(split),
                model=classification_report(split.labels, preds, labels),
                baselines=(
                    _baselines(split, train_labels, split.head == "sentiment") if baselines else {}
                ),
            )
        )
    return EvaluationReport(
        model_dir=str(model_dir),
        model_version=loaded.manifest.model_version,
        generated_at=datetime.now(UTC).replace(microsecond=0),
        max_length=max_length,
        heads=heads,
    )
