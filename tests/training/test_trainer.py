"""Trainer mechanics on a tiny random encoder (seconds): saving, LoRA merge, accumulation,
early stopping. The real base model is exercised in test_trainer_slow.py."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from models.checkpoint import load_model
from training.config import TrainConfig, profile_config
from training.data import Head
from training.early_stopping import BestTracker
from training.metrics import ClassificationReport, classification_report
from training.trainer import train


def tiny_cfg(base: Path, **overrides: Any) -> TrainConfig:
    return profile_config("quick").with_overrides(
        base_model=str(base),
        sentiment_train_limit=48,
        topic_train_limit=48,
        valid_limit=40,
        max_length=32,
        batch_size=8,
        device="cpu",
        **overrides,
    )


@pytest.mark.parametrize("lora", [False, True])
def test_train_saves_a_plain_loadable_model(
    tiny_base_model: Path, tmp_path: Path, lora: bool
) -> None:
    cfg = tiny_cfg(tiny_base_model, lora=lora, max_steps=5)
    result = train(cfg, tmp_path / "m", progress=False)
    loaded = load_model(tmp_path / "m")
    assert not any("lora" in k for k in loaded.model.state_dict())
    meta = loaded.manifest.metadata
    assert meta["train_config"]["lora"] is lora
    assert meta["steps"] == 5
    assert set(meta["data"]["checksums_sha256"]) == {
        "sentiment_train.csv",
        "sentiment_valid.csv",
        "topic_train.csv",
        "topic_valid.csv",
    }
    assert meta["data"]["train_examples"] == {"sentiment": 48, "topic": 48}
    assert loaded.manifest.metrics is not None
    assert loaded.manifest.metrics["score"] == pytest.approx(result.best.score)
    assert len(result.step_losses) == 5


def test_gradient_accumulation_counts_optimizer_steps(
    tiny_base_model: Path, tmp_path: Path
) -> None:
    cfg = tiny_cfg(tiny_base_model, grad_accum=4, epochs=1)
    result = train(cfg, tmp_path / "m", progress=False)
    micro_batches = 2 * math.ceil(48 / 8)
    assert len(result.step_losses) == math.ceil(micro_batches / 4)
    assert sum(len(v) for v in result.task_losses.values()) == micro_batches


def test_best_tracker_keeps_best_weights_and_stops_after_patience() -> None:
    model = torch.nn.Linear(2, 2)
    tracker = BestTracker(patience=2)

    def reports(sent_ok: int) -> dict[Head, ClassificationReport]:
        sent = classification_report(
            [0, 1, 2], [0, 1, 2][:sent_ok] + [0] * (3 - sent_ok), ["a", "b", "c"]
        )
        topic = classification_report([0, 1], [0, 1], ["x", "y"])
        return {"sentiment": sent, "topic": topic}

    assert tracker.offer(1, 0.5, reports(1), model) is False
    with torch.no_grad():
        model.weight.fill_(1.0)
    assert tracker.offer(2, 1.0, reports(3), model) is False  # new best: weights of ones
    with torch.no_grad():
        model.weight.fill_(5.0)
    assert tracker.offer(3, 1.5, reports(2), model) is False
    assert tracker.offer(4, 2.0, reports(3), model) is True  # a tie is no improvement
    best, state, best_reports = tracker.best()
    assert best.step == 2
    assert torch.equal(state["weight"], torch.ones(2, 2))
    assert best_reports["sentiment"].accuracy == 1.0
    assert [p.step for p in tracker.history] == [1, 2, 3, 4]
