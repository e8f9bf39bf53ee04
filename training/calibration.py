"""Temperature scaling and calibration error: is a 0.9 from the model right 90 % of the time?

Alerts weigh evidence by probability (``negative_prob``), so the probabilities should mean
what they say. Temperature scaling (Guo et al. 2017) divides a head's logits by one scalar
``T`` fitted to minimise the negative log-likelihood; it never changes the arg-max, so
accuracy and F1 are untouched.

Where ``T`` is fitted and how that is kept honest: ``T`` is fitted on the validation split
(the only labelled data the model has not trained on), which makes validation no longer
unseen *for calibration*. The guard is a 2-fold cross-fit on the same split: ``T`` is fitted
on one half and the ECE measured on the other, and vice versa (``ece_crossfit``). A single
scalar barely overfits, so the cross-fitted ECE should sit close to the in-sample one
(``ece_after``); a large gap would say the fit does not transfer. Accuracy and F1 do not
depend on ``T``, and early stopping never sees it.

ECE here is the top-label expected calibration error with 15 equal-width confidence bins.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict

__all__ = [
    "BINS",
    "HeadCalibration",
    "ReliabilityBin",
    "calibrate_head",
    "expected_calibration_error",
    "fit_temperature",
    "reliability_bins",
]

BINS = 15
_LOG_T_RANGE = (math.log(0.05), math.log(20.0))


class ReliabilityBin(BaseModel):
    model_config = ConfigDict(frozen=True)

    lower: float
    upper: float
    count: int
    confidence: float  # mean top-label probability in the bin (0 when empty)
    accuracy: float  # share of the bin whose top label is right (0 when empty)


class HeadCalibration(BaseModel):
    """What the manifest and the evaluation report say about one head's calibration."""

    model_config = ConfigDict(frozen=True)

    temperature: float
    n: int
    ece_before: float
    ece_after: float
    ece_crossfit: float
    fold_temperatures: tuple[float, float]


def _nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> float:
    return float(F.cross_entropy(logits / temperature, labels))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The ``T`` in [0.05, 20] minimising the NLL of ``softmax(logits / T)``.

    Golden-section search over log T: the NLL is unimodal in T for fixed logits, and a
    bracketing search is deterministic and needs no learning rate.
    """
    if len(labels) == 0:
        raise ValueError("no examples to fit a temperature on")
    logits = logits.float()
    lo, hi = _LOG_T_RANGE
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = _nll(logits, labels, math.exp(a)), _nll(logits, labels, math.exp(b))
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = _nll(logits, labels, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = _nll(logits, labels, math.exp(b))
    return round(math.exp((lo + hi) / 2), 4)


def reliability_bins(
    probs: torch.Tensor, labels: torch.Tensor, bins: int = BINS
) -> list[ReliabilityBin]:
    """Top-label confidence vs accuracy in ``bins`` equal-width bins over [0, 1]."""
    confidence, predicted = probs.float().max(dim=-1)
    correct = (predicted == labels).float()
    out: list[ReliabilityBin] = []
    for b in range(bins):
        lower, upper = b / bins, (b + 1) / bins
        in_bin = (confidence > lower) & (confidence <= upper)
        if b == 0:
            in_bin |= confidence == 0
        count = int(in_bin.sum())
        out.append(
            ReliabilityBin(
                lower=lower,
                upper=upper,
                count=count,
                confidence=float(confidence[in_bin].mean()) if count else 0.0,
                accuracy=float(correct[in_bin].mean()) if count else 0.0,
            )
        )
    return out


def expected_calibration_error(
    probs: torch.Tensor, labels: torch.Tensor, bins: int = BINS
) -> float:
    """Sum over bins of (bin share) * |accuracy - confidence|."""
    n = len(labels)
    if n == 0:
        raise ValueError("no examples to score")
    table = reliability_bins(probs, labels, bins)
    return sum(b.count / n * abs(b.accuracy - b.confidence) for b in table)


def calibrate_head(logits: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> HeadCalibration:
    """Fit ``T`` on all of ``logits``; ECE before, after, and cross-fitted on two halves."""
    labels = labels.long()
    temperature = fit_temperature(logits, labels)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    halves = (order[: len(order) // 2], order[len(order) // 2 :])
    out_of_fold = torch.empty_like(logits, dtype=torch.float32)
    fold_ts: list[float] = []
    for fit_on, score_on in (halves, halves[::-1]):
        t = fit_temperature(logits[fit_on], labels[fit_on])
        fold_ts.append(t)
        out_of_fold[score_on] = torch.softmax(logits[score_on].float() / t, dim=-1)
    raw = torch.softmax(logits.float(), dim=-1)
    scaled = torch.softmax(logits.float() / temperature, dim=-1)
    return HeadCalibration(
        temperature=temperature,
        n=len(labels),
        ece_before=expected_calibration_error(raw, labels),
        ece_after=expected_calibration_error(scaled, labels),
        ece_crossfit=expected_calibration_error(out_of_fold, labels),
        fold_temperatures=(fold_ts[0], fold_ts[1]),
    )
