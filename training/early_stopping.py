"""Early stopping on the mean of the two heads' validation macro-F1.

The mean (not, say, sentiment alone) because the one saved model serves both heads; a
tie does not count as an improvement, so the earliest of equally good checkpoints wins.
The best weights are copied to the CPU (about 90 MB for MiniLM) rather than written to a
temporary dir: cheaper, and nothing to clean up after a crash.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from training.data import Head
from training.metrics import ClassificationReport

__all__ = ["BestTracker", "EvalPoint"]

log = logging.getLogger("training.trainer")


@dataclass(frozen=True)
class EvalPoint:
    step: int
    epoch: float
    sentiment_macro_f1: float
    topic_macro_f1: float
    score: float  # mean of the two macro-F1, the early-stopping criterion


@dataclass
class BestTracker:
    """Early stopping on the mean validation macro-F1; keeps a CPU copy of the best weights."""

    patience: int
    history: list[EvalPoint] = field(default_factory=list)
    _point: EvalPoint | None = None
    _state: dict[str, torch.Tensor] | None = None
    _reports: dict[Head, ClassificationReport] | None = None
    _logits: dict[Head, torch.Tensor] | None = None
    _stale: int = 0

    def offer(
        self,
        step: int,
        epoch: float,
        reports: dict[Head, ClassificationReport],
        model: torch.nn.Module,
        logits: dict[Head, torch.Tensor] | None = None,
    ) -> bool:
        """Record one evaluation (``logits``: the validation logits, kept for the best one);
        True when training should stop."""
        sent, topic = reports["sentiment"], reports["topic"]
        point = EvalPoint(
            step, epoch, sent.macro_f1, topic.macro_f1, (sent.macro_f1 + topic.macro_f1) / 2
        )
        self.history.append(point)
        log.info(
            "step %d: sentiment macro-F1 %.4f (acc %.4f), topic macro-F1 %.4f (acc %.4f)",
            step,
            sent.macro_f1,
            sent.accuracy,
            topic.macro_f1,
            topic.accuracy,
        )
        if self._point is None or point.score > self._point.score:
            self._point, self._reports, self._logits, self._stale = point, reports, logits, 0
            self._state = {
                k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
            }
            return False
        self._stale += 1
        return self._stale >= self.patience

    def best(
        self,
    ) -> tuple[
        EvalPoint,
        dict[str, torch.Tensor],
        dict[Head, ClassificationReport],
        dict[Head, torch.Tensor],
    ]:
        """The best point, its weights (CPU copy), reports and validation logits."""
        if self._point is None or self._state is None or self._reports is None:
            raise RuntimeError("no evaluation has been recorded")
        return self._point, self._state, self._reports, self._logits or {}
