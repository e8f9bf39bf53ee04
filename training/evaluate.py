"""Honest evaluation of a saved model dir, next to the baselines it has to beat.

By default both heads are scored on their vendored validation splits, and the sentiment
split also scores the Loughran-McDonald and VADER lexicons; both heads get a
majority-class baseline (most frequent label of the training split). With ``data`` any
``text,label`` CSV is scored for one head. The model runs in float32 (or bf16 autocast on
CUDA) through the same code as validation during training, so the numbers agree with the
manifest's.

Calibration: each head also gets the expected calibration error and reliability bins of
its probabilities before and after the model's fitted temperature (see
``training.calibration``; ``report.py`` draws the reliability diagram). On the validation
splits "after" is in-sample for the temperature (it was fitted there); the training-time
cross-fit in the manifest (``metrics.calibration.*.ece_crossfit``) is the honest figure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict

from training.baselines import lm_predict, majority_label, vader_predict
from training.calibration import ReliabilityBin, expected_calibration_error, reliability_bins
from training.data import (
    Head,
    LabelledTexts,
    file_sha256,
    head_labels,
    load_split,
    read_labelled_csv,
)
from training.metrics import ClassificationReport, classification_report

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "CalibrationReport",
    "EvaluationReport",
    "HeadEvaluation",
    "evaluate_model",
]

DEFAULT_MAX_LENGTH = 128


class CalibrationReport(BaseModel):
    """Top-label calibration of one head before and after its temperature."""

    model_config = ConfigDict(frozen=True)

    temperature: float
    ece_before: float
    ece_after: float
    bins_before: list[ReliabilityBin]
    bins_after: list[ReliabilityBin]


class HeadEvaluation(BaseModel):
    model_config = ConfigDict(frozen=True)

    head: str
    dataset: str
    dataset_sha256: str
    model: ClassificationReport
    calibration: CalibrationReport
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


def _calibration(logits: torch.Tensor, labels: list[int], temperature: float) -> CalibrationReport:
    target = torch.tensor(labels)
    before = torch.softmax(logits, dim=-1)
    after = torch.softmax(logits / temperature, dim=-1)
    return CalibrationReport(
        temperature=temperature,
        ece_before=expected_calibration_error(before, target),
        ece_after=expected_calibration_error(after, target),
        bins_before=reliability_bins(before, target),
        bins_after=reliability_bins(after, target),
    )


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
    progress: bool = False,
) -> EvaluationReport:
    """Score the model (and baselines) on the validation splits, or on ``data`` for ``head``."""
    from models.checkpoint import load_model
    from models.runtime import encode, resolve_device
    from training.inference import predict_logits

    if data is not None:
        datasets = [read_labelled_csv(data, head=head, label_map=label_map)]
    else:
        datasets = [
            load_split("sentiment", "valid", data_dir),
            load_split("topic", "valid", data_dir),
        ]
    dev = resolve_device(device)
    loaded = load_model(model_dir, device=dev)
    tokenizer = loaded.tokenizer
    meta = loaded.manifest.metadata
    max_length = int(meta.get("max_length", DEFAULT_MAX_LENGTH))
    normalization = str(meta.get("text_normalization", "none"))
    pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
    heads: list[HeadEvaluation] = []
    for split in datasets:
        logits = predict_logits(
            loaded.model,
            encode(tokenizer, split.texts, max_length, normalization),
            pad_id=pad_id,
            batch_size=batch_size,
            device=dev,
            progress=progress,
            desc=f"evaluate {split.head}",
        )[split.head]
        preds = logits.argmax(dim=-1).tolist()
        temperature = loaded.manifest.temperatures.get(split.head, 1.0)
        labels = head_labels(split.head)
        train_labels = list(load_split(split.head, "train", data_dir).labels)
        heads.append(
            HeadEvaluation(
                head=split.head,
                dataset=split.source,
                dataset_sha256=_sha256_of(split),
                model=classification_report(split.labels, preds, labels),
                calibration=_calibration(logits, list(split.labels), temperature),
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
