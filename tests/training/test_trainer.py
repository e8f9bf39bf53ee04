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
        **{"device": "cpu", **overrides},
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
    best, state, best_reports, _ = tracker.best()
    assert best.step == 2
    assert torch.equal(state["weight"], torch.ones(2, 2))
    assert best_reports["sentiment"].accuracy == 1.0
    assert [p.step for p in tracker.history] == [1, 2, 3, 4]


OPTIONS = [
    {"fgm_epsilon": 1.0},
    {"fgm_epsilon": 1.0, "pgd_steps": 2},
    {"ema_decay": 0.9},
    {"rdrop_alpha": 1.0},
    {"layer_lr_decay": 0.8},
    {"augment_ratio": 0.5},
    {"text_normalization": "urls"},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "+".join(o))
def test_each_option_trains_and_saves_a_calibrated_model(
    tiny_base_model: Path, tmp_path: Path, options: dict[str, Any]
) -> None:
    result = train(
        tiny_cfg(tiny_base_model, max_steps=3, **options), tmp_path / "m", progress=False
    )
    loaded = load_model(tmp_path / "m")
    meta = loaded.manifest.metadata
    for key, value in options.items():
        assert meta["train_config"][key] == value
    assert meta["text_normalization"] == options.get("text_normalization", "none")
    assert set(loaded.manifest.temperatures) == {"sentiment", "topic"}
    cal = result.metrics["calibration"]
    assert loaded.manifest.temperatures["topic"] == cal["topic"]["temperature"]
    assert "reference.json" in loaded.manifest.files
    assert set(meta["timings_seconds"]) >= {"setup", "training loop", "calibrate and save"}


def test_teachers_give_pseudo_labels_and_soft_targets_from_a_cache(
    tiny_base_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    teachers = []
    for seed in (5, 6):
        train(
            tiny_cfg(tiny_base_model, max_steps=2, seed=seed), tmp_path / f"t{seed}", progress=False
        )
        teachers.append(str(tmp_path / f"t{seed}"))
    cfg = tiny_cfg(
        tiny_base_model,
        max_steps=3,
        teachers=tuple(teachers),
        distill_weight=0.5,
        pseudo_label_threshold=0.01,  # random tiny teachers are never confident
        pseudo_label_limit=10,
    )
    cache = tmp_path / "cache"
    first = train(cfg, tmp_path / "s1", progress=False, teacher_cache=cache)
    meta = first.manifest.metadata
    assert meta["data"]["example_kinds"]["sentiment"] == {"gold": 48, "augmented": 0, "pseudo": 10}
    assert meta["data"]["example_kinds"]["topic"]["pseudo"] == 10
    assert meta["teachers"] == [load_model(t).manifest.model_version for t in teachers]
    assert len(list(cache.glob("*.safetensors"))) == 2

    # The second student reads the teachers' logits from the cache, not the teachers.
    def no_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("teacher loaded despite the cache")

    monkeypatch.setattr("models.checkpoint.load_model", no_load)
    second = train(cfg, tmp_path / "s2", progress=False, teacher_cache=cache)
    assert second.manifest.metadata["data"] == meta["data"]


def test_unwritable_output_fails_before_any_training(
    tiny_base_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.trainer as trainer
    from models.errors import ModelDirError

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("training started")

    monkeypatch.setattr(trainer, "_setup", never)
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    with pytest.raises(ModelDirError, match="cannot write the model to"):
        train(tiny_cfg(tiny_base_model), blocker / "model", progress=False)


@pytest.mark.parametrize(("device", "message"), [("tpu", "device must be"), ("cuda:7", "CUDA")])
def test_unusable_device_is_refused_before_training(
    tiny_base_model: Path, tmp_path: Path, device: str, message: str
) -> None:
    from models.errors import DeviceError

    with pytest.raises(DeviceError, match=message):
        train(tiny_cfg(tiny_base_model, device=device), tmp_path / "m", progress=False)
