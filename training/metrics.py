"""Classification metrics from a confusion matrix: pure Python, no I/O, no sklearn.

Computed here (instead of calling sklearn) so the numbers in training logs, manifests and
evaluation reports come from one small, independently tested definition. A class with no
predictions has precision 0, a class with no examples has recall 0 (sklearn's
``zero_division=0``); macro averages are over all classes of the head, including absent ones,
so a head that never predicts a rare topic is penalised for it.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

__all__ = ["ClassMetrics", "ClassificationReport", "classification_report", "confusion_matrix"]


class ClassMetrics(BaseModel):
    model_config = ConfigDict(frozen=True)

    precision: float
    recall: float
    f1: float
    support: int


class ClassificationReport(BaseModel):
    """Everything the evaluation report prints for one head on one split."""

    model_config = ConfigDict(frozen=True)

    labels: list[str]
    n: int
    accuracy: float
    macro_f1: float
    weighted_f1: float
    per_class: dict[str, ClassMetrics]
    confusion: list[list[int]]  # rows = true label, columns = predicted label


def confusion_matrix(
    y_true: Sequence[int], y_pred: Sequence[int], n_classes: int
) -> list[list[int]]:
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items, y_pred {len(y_pred)}")
    matrix = [[0] * n_classes for _ in range(n_classes)]
    for t, p in zip(y_true, y_pred, strict=True):
        if not (0 <= t < n_classes and 0 <= p < n_classes):
            raise ValueError(f"label index out of range 0..{n_classes - 1}: true={t} pred={p}")
        matrix[t][p] += 1
    return matrix


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def classification_report(
    y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]
) -> ClassificationReport:
    """Accuracy, macro/weighted F1 and per-class precision/recall/F1 over ``labels``."""
    k = len(labels)
    matrix = confusion_matrix(y_true, y_pred, k)
    n = len(y_true)
    if n == 0:
        raise ValueError("no examples to score")
    per_class: dict[str, ClassMetrics] = {}
    for i, name in enumerate(labels):
        tp = matrix[i][i]
        support = sum(matrix[i])
        predicted = sum(row[i] for row in matrix)
        precision = _ratio(tp, predicted)
        recall = _ratio(tp, support)
        f1 = _ratio(2 * precision * recall, precision + recall)
        per_class[name] = ClassMetrics(precision=precision, recall=recall, f1=f1, support=support)
    correct = sum(matrix[i][i] for i in range(k))
    return ClassificationReport(
        labels=list(labels),
        n=n,
        accuracy=correct / n,
        macro_f1=sum(m.f1 for m in per_class.values()) / k,
        weighted_f1=sum(m.f1 * m.support for m in per_class.values()) / n,
        per_class=per_class,
        confusion=matrix,
    )
