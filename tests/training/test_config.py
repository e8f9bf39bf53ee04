"""Profiles and overrides."""

from __future__ import annotations

import pytest

from models.errors import FinpulseError
from training.config import PROFILES, profile_config


def test_profiles_meet_their_stated_shape() -> None:
    quick, full = profile_config("quick"), profile_config("full")
    assert quick.max_length <= 64
    assert quick.epochs == 1
    assert full.epochs >= 3
    assert full.sentiment_train_limit is None
    assert full.topic_train_limit is None
    assert 5e-5 <= full.lr <= 1e-4
    assert full.head_lr > full.lr
    assert set(PROFILES) == {"quick", "full"}


def test_overrides_apply_and_none_is_ignored() -> None:
    cfg = profile_config("quick").with_overrides(epochs=2, lr=None, max_steps=5)
    assert (cfg.epochs, cfg.max_steps) == (2, 5)
    assert cfg.lr == profile_config("quick").lr


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"epochs": 0}, "epochs"), ({"batch_size": 0}, "batch_size"), ({"lr": -1.0}, "lr")],
)
def test_invalid_override_is_a_clear_error(overrides: dict[str, float], field: str) -> None:
    with pytest.raises(FinpulseError, match=f"invalid training option: {field}"):
        profile_config("full").with_overrides(**overrides)


def test_unknown_profile() -> None:
    with pytest.raises(FinpulseError, match="unknown profile 'fast'"):
        profile_config("fast")
