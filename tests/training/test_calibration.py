"""Temperature scaling and ECE against synthetic data whose true calibration is known."""

from __future__ import annotations

import pytest
import torch

from training.calibration import (
    calibrate_head,
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
)


def _sampled(n: int, true_t: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits whose labels are drawn from softmax(logits / true_t): T = true_t is right."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 4, generator=g) * 3
    labels = torch.multinomial(torch.softmax(logits / true_t, -1), 1, generator=g).squeeze(1)
    return logits, labels


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_fit_recovers_the_temperature_that_generated_the_labels(true_t: float) -> None:
    logits, labels = _sampled(20_000, true_t)
    assert fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.08)


def test_ece_by_hand() -> None:
    # 2 bins: (0, .5] holds one text at 0.4 (wrong), (.5, 1] holds 0.9 (right) and 0.8 (wrong)
    probs = torch.tensor([[0.4, 0.3, 0.3], [0.9, 0.05, 0.05], [0.8, 0.1, 0.1]])
    labels = torch.tensor([1, 0, 2])
    expected = 1 / 3 * abs(0 - 0.4) + 2 / 3 * abs(0.5 - 0.85)
    assert expected_calibration_error(probs, labels, bins=2) == pytest.approx(expected)
    bins = reliability_bins(probs, labels, bins=2)
    assert [b.count for b in bins] == [1, 2]
    assert bins[1].accuracy == 0.5
    assert bins[1].confidence == pytest.approx(0.85)


def test_scaling_an_overconfident_head_lowers_ece_and_keeps_every_argmax() -> None:
    logits, labels = _sampled(6_000, true_t=3.0)  # raw softmax(logits) is overconfident
    fit = calibrate_head(logits, labels)
    assert fit.temperature > 2.0
    assert fit.ece_after < fit.ece_before / 2
    assert fit.ece_crossfit < fit.ece_before / 2  # the fit transfers to the unseen half
    assert all(t > 2.0 for t in fit.fold_temperatures)
    scaled = logits / fit.temperature
    assert torch.equal(scaled.argmax(-1), logits.argmax(-1))


def test_no_examples_is_an_error() -> None:
    with pytest.raises(ValueError, match="no examples"):
        fit_temperature(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
