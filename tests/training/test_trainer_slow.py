"""Fine-tunes the REAL packaged MiniLM briefly on a small subset (about a minute on 2 CPUs)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest
import torch

from models.checkpoint import load_model
from training.config import profile_config
from training.data import DATA_FILES
from training.evaluate import evaluate_model
from training.report import write_report
from training.trainer import train

pytestmark = pytest.mark.slow

SIZES = {"train": 200, "valid": 100}


def small_data_dir(src: Path, dst: Path) -> Path:
    """Seeded random subsets of the vendored files, in the same format."""
    rng = random.Random(0)
    dst.mkdir()
    for name in DATA_FILES:
        with (src / name).open(encoding="utf-8", newline="") as fh:
            header, *rows = list(csv.reader(fh))
        keep = rng.sample(rows, SIZES[name.rsplit("_", 1)[1].removesuffix(".csv")])
        with (dst / name).open("w", encoding="utf-8", newline="") as fh:
            csv.writer(fh).writerows([header, *keep])
    return dst


def test_finetune_reload_and_evaluate(data_dir: Path, tmp_path: Path) -> None:
    small = small_data_dir(data_dir, tmp_path / "data")
    cfg = profile_config("quick").with_overrides(
        max_length=48, batch_size=16, max_steps=40, epochs=4, evals_per_epoch=1, device="cpu"
    )
    result = train(cfg, tmp_path / "model", data_dir=small, progress=False)

    for task, losses in result.task_losses.items():
        third = len(losses) // 3
        early, late = sum(losses[:third]) / third, sum(losses[-third:]) / third
        assert late < early, f"{task} loss did not fall: {early:.3f} -> {late:.3f}"

    loaded = load_model(tmp_path / "model")
    texts = [
        "$AAPL falls 5% after weak iPhone sales",
        "Fed raises rates by 25 basis points",
        "Tesla beats delivery estimates, shares jump",
    ]
    batch = loaded.tokenizer(
        texts, padding=True, truncation=True, max_length=48, return_tensors="pt"
    )
    with torch.inference_mode():
        before = result.model(batch["input_ids"], batch["attention_mask"])
        after = loaded.model(batch["input_ids"], batch["attention_mask"])
    for a, b in zip(before, after, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
        assert torch.equal(a.argmax(-1), b.argmax(-1))

    report = evaluate_model(tmp_path / "model", data_dir=small, device="cpu")
    assert [h.head for h in report.heads] == ["sentiment", "topic"]
    assert report.heads[0].model.n == SIZES["valid"]
    assert set(report.heads[0].baselines) >= {"loughran-mcdonald", "vader"}
    # the model was validated on the same split during training
    assert report.heads[0].model.macro_f1 == pytest.approx(result.metrics["sentiment"]["macro_f1"])
    written = write_report(report, tmp_path / "model" / "eval")
    assert {p.name for p in written} == {
        "report.json",
        "report.txt",
        "confusion_sentiment.png",
        "confusion_topic.png",
        "reliability_sentiment.png",
        "reliability_topic.png",
    }
    assert all(p.stat().st_size > 0 for p in written)
    # Calibration: the report applies the temperature fitted at training time, which on
    # the split it was fitted on cannot be worse than no temperature at all (NLL optimum).
    for h in report.heads:
        cal = result.metrics["calibration"][h.head]
        assert h.calibration.temperature == cal["temperature"]
        assert h.calibration.ece_before == pytest.approx(cal["ece_before"], abs=1e-6)
        assert h.calibration.ece_after == pytest.approx(cal["ece_after"], abs=1e-6)
