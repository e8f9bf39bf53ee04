"""Multi-task fine-tuning of the two-head model on both Twitter Financial News datasets.

The recipe, and why:

* Task batches (see ``training.batching``): each batch is from one dataset and trains the
  one head it has labels for; batches of both tasks are shuffled together each epoch.
* AdamW with two parameter groups (encoder at ``lr``, fresh heads at ``head_lr``; no weight
  decay on biases and LayerNorm), linear warm-up then linear decay to zero.
* Class imbalance: class-weighted cross-entropy per head (``class_weighting``).
* Early stopping on the mean of the two heads' validation macro-F1, evaluated
  ``evals_per_epoch`` times per epoch; the best weights are kept in memory (a copy on the
  CPU, ~90 MB for MiniLM) and restored before saving.
* Seeds fixed for Python and torch; dynamic padding over length-grouped batches; gradient
  accumulation; bf16 autocast on CUDA.
* ``lora``: the encoder is wrapped with peft LoRA adapters (heads stay fully trained); the
  adapters are merged back before saving, so the saved dir is a plain ``MultiTaskModel``.
"""

from __future__ import annotations

import logging
import math
import platform
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from models.base_model import DEFAULT_ALIASES, DEFAULT_BASE_MODEL, resolve_base_model
from models.errors import FinpulseError
from training.batching import class_weights, linear_warmup_decay, plan_epoch, steps_per_epoch
from training.config import TrainConfig
from training.data import Head, LabelledTexts, data_checksums, head_labels, load_split
from training.early_stopping import BestTracker, EvalPoint
from training.inference import autocast_for, encode, pad_batch, pick_device, predict_head
from training.metrics import ClassificationReport, classification_report

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from models.architecture import MultiTaskModel
    from models.checkpoint import Manifest

__all__ = ["TrainResult", "train"]

log = logging.getLogger(__name__)
HEADS: tuple[Head, Head] = ("sentiment", "topic")


@dataclass
class TrainResult:
    output_dir: Path
    manifest: Manifest
    model: MultiTaskModel  # the saved weights, in eval mode (LoRA already merged)
    metrics: dict[str, Any]
    best: EvalPoint
    history: list[EvalPoint] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)
    task_losses: dict[str, list[float]] = field(default_factory=dict)  # per micro-batch
    wall_seconds: float = 0.0


@dataclass(frozen=True)
class _Encoded:
    ids: list[list[int]]
    labels: list[int]


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def _subset(data: LabelledTexts, limit: int | None, rng: random.Random) -> LabelledTexts:
    """A seeded random subset (the vendored files are sorted by label, so never a prefix)."""
    if limit is None or limit >= len(data):
        return data
    keep = sorted(rng.sample(range(len(data)), limit))
    return LabelledTexts(
        data.head,
        tuple(data.texts[i] for i in keep),
        tuple(data.labels[i] for i in keep),
        data.source,
    )


def _build(cfg: TrainConfig, base_path: str, device: torch.device) -> tuple[MultiTaskModel, Any]:
    from models.architecture import build_model

    try:
        model, tokenizer = build_model(base_path, dropout=cfg.dropout)
    except (OSError, ValueError) as exc:
        raise FinpulseError(f"cannot load base model {cfg.base_model!r}: {exc}") from None
    if cfg.lora:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout)
        try:
            model.encoder = get_peft_model(model.encoder, lora)
        except ValueError as exc:
            raise FinpulseError(f"LoRA cannot wrap this base model: {exc}") from None
    return model.to(device), tokenizer


def _merge_lora(model: MultiTaskModel) -> None:
    from peft import PeftModel

    if isinstance(model.encoder, PeftModel):
        model.encoder = model.encoder.merge_and_unload()


def _optimizer(model: MultiTaskModel, cfg: TrainConfig) -> torch.optim.AdamW:
    decay, no_decay, heads = [], [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if not name.startswith("encoder."):
            heads.append(param)
        elif param.ndim < 2:  # biases and LayerNorm weights
            no_decay.append(param)
        else:
            decay.append(param)
    groups = [
        {"params": decay, "lr": cfg.lr, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "lr": cfg.lr, "weight_decay": 0.0},
        {"params": heads, "lr": cfg.head_lr, "weight_decay": cfg.weight_decay},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]])


def _validate(
    model: MultiTaskModel,
    valid: dict[Head, _Encoded],
    pad_id: int,
    cfg: TrainConfig,
    device: torch.device,
) -> dict[Head, ClassificationReport]:
    reports: dict[Head, ClassificationReport] = {}
    for head in HEADS:
        preds = predict_head(
            model,
            valid[head].ids,
            head,
            pad_id=pad_id,
            batch_size=cfg.eval_batch_size,
            device=device,
            amp=cfg.amp,
        )
        reports[head] = classification_report(valid[head].labels, preds, head_labels(head))
    return reports


def _versions() -> dict[str, str]:
    import transformers

    from finpulse import __version__

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "finpulse": __version__,
    }
    try:
        import peft

        versions["peft"] = peft.__version__
    except ImportError:
        pass
    return versions


def _encode_split(
    tokenizer: PreTrainedTokenizerBase, data: LabelledTexts, max_length: int
) -> _Encoded:
    return _Encoded(encode(tokenizer, data.texts, max_length), list(data.labels))


def _load_data(
    cfg: TrainConfig, data_dir: Path | None, rng: random.Random
) -> tuple[dict[Head, LabelledTexts], dict[Head, LabelledTexts]]:
    limits: dict[Head, int | None] = {
        "sentiment": cfg.sentiment_train_limit,
        "topic": cfg.topic_train_limit,
    }
    train_sets = {h: _subset(load_split(h, "train", data_dir), limits[h], rng) for h in HEADS}
    valid_sets = {h: _subset(load_split(h, "valid", data_dir), cfg.valid_limit, rng) for h in HEADS}
    return train_sets, valid_sets


def train(
    cfg: TrainConfig, output_dir: Path, *, data_dir: Path | None = None, progress: bool = True
) -> TrainResult:
    """Fine-tune, keep the best validation checkpoint, save it to ``output_dir``."""
    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from models.checkpoint import save_model

    started = time.perf_counter()
    _seed_everything(cfg.seed)
    rng = random.Random(cfg.seed)
    device = pick_device(cfg.device)
    base_path = resolve_base_model(cfg.base_model)
    train_sets, valid_sets = _load_data(cfg, data_dir, rng)
    model, tokenizer = _build(cfg, base_path, device)
    pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
    train_enc = {h: _encode_split(tokenizer, train_sets[h], cfg.max_length) for h in HEADS}
    valid_enc = {h: _encode_split(tokenizer, valid_sets[h], cfg.max_length) for h in HEADS}
    weights = {
        h: class_weights(train_enc[h].labels, len(head_labels(h)), cfg.class_weighting)
        for h in HEADS
    }
    weight_tensors = {h: torch.tensor(weights[h], device=device) for h in HEADS}
    loss_scale: dict[Head, float] = {"sentiment": 1.0, "topic": cfg.topic_loss_weight}

    per_epoch = steps_per_epoch(
        [len(train_enc[h].labels) for h in HEADS], cfg.batch_size, cfg.grad_accum
    )
    total_steps = math.ceil(cfg.epochs * per_epoch)
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    warmup = int(cfg.warmup_ratio * total_steps)
    eval_every = max(1, math.ceil(per_epoch / cfg.evals_per_epoch))
    optimizer = _optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: linear_warmup_decay(s, warmup, total_steps)
    )
    log.info(
        "training on %s: %d sentiment + %d topic examples, %d steps (%d/epoch), device %s%s",
        base_path,
        len(train_enc["sentiment"].labels),
        len(train_enc["topic"].labels),
        total_steps,
        per_epoch,
        device,
        " with LoRA" if cfg.lora else "",
    )

    tracker = BestTracker(patience=cfg.patience)
    step_losses: list[float] = []
    task_losses: dict[str, list[float]] = {h: [] for h in HEADS}
    step = 0
    examples = 0
    ema_loss: float | None = None
    train_started = time.perf_counter()
    model.train()

    def evaluate_now() -> bool:
        reports = _validate(model, valid_enc, pad_id, cfg, device)
        return tracker.offer(step, step / per_epoch, reports, model)

    bar = tqdm(total=total_steps, unit="step", disable=not progress, dynamic_ncols=True)
    with logging_redirect_tqdm():
        stop = False
        epoch = 0
        while not stop and step < total_steps:
            lengths: dict[str, list[int]] = {h: [len(x) for x in train_enc[h].ids] for h in HEADS}
            plan = plan_epoch(lengths, cfg.batch_size, cfg.length_group_batches, rng)
            micro: list[float] = []
            for n, batch in enumerate(plan, start=1):
                head: Head = "sentiment" if batch.task == "sentiment" else "topic"
                enc = train_enc[head]
                ids, mask = pad_batch([enc.ids[i] for i in batch.indices], pad_id, device)
                labels = torch.tensor([enc.labels[i] for i in batch.indices], device=device)
                with autocast_for(device, cfg.amp):
                    out = model(ids, mask)
                logits = out.sentiment_logits if head == "sentiment" else out.topic_logits
                loss = F.cross_entropy(logits.float(), labels, weight=weight_tensors[head])
                (loss * loss_scale[head] / cfg.grad_accum).backward()
                micro.append(float(loss.detach()))
                task_losses[head].append(micro[-1])
                examples += len(batch.indices)
                if len(micro) < cfg.grad_accum and n < len(plan):
                    continue
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                step_losses.append(sum(micro) / len(micro))
                micro = []
                ema_loss = (
                    step_losses[-1] if ema_loss is None else 0.9 * ema_loss + 0.1 * step_losses[-1]
                )
                rate = examples / max(1e-9, time.perf_counter() - train_started)
                bar.set_postfix(loss=f"{ema_loss:.4f}", ex_s=f"{rate:.1f}", epoch=epoch + 1)
                bar.update(1)
                if step % eval_every == 0 or step >= total_steps:
                    stop = evaluate_now()
                if stop or step >= total_steps:
                    break
            epoch += 1
    bar.close()
    if not tracker.history or tracker.history[-1].step != step:
        evaluate_now()
    best, best_state, best_reports = tracker.best()
    model.load_state_dict(best_state)
    _merge_lora(model)
    model.eval()

    wall = time.perf_counter() - started
    metrics = {
        "split": "validation",
        "score": best.score,
        "best_step": best.step,
        "sentiment": best_reports["sentiment"].model_dump(),
        "topic": best_reports["topic"].model_dump(),
    }
    metadata = {
        "base_model": DEFAULT_BASE_MODEL if cfg.base_model in DEFAULT_ALIASES else cfg.base_model,
        "base_model_path": base_path,
        "max_length": cfg.max_length,
        "seed": cfg.seed,
        "train_config": cfg.model_dump(),
        "data": {
            "checksums_sha256": data_checksums(data_dir),
            "train_examples": {h: len(train_enc[h].labels) for h in HEADS},
            "valid_examples": {h: len(valid_enc[h].labels) for h in HEADS},
        },
        "class_weights": weights,
        "steps": step,
        "examples_seen": examples,
        "history": [vars(p) for p in tracker.history],
        "versions": _versions(),
        "device": _device_name(device),
        "torch_threads": torch.get_num_threads(),
        "wall_seconds": round(wall, 1),
    }
    manifest = save_model(output_dir, model, tokenizer, metadata=metadata, metrics=metrics)
    log.info("saved %s to %s (%.0f s)", manifest.model_version, output_dir, wall)
    return TrainResult(
        output_dir=output_dir,
        manifest=manifest,
        model=model,
        metrics=metrics,
        best=best,
        history=tracker.history,
        step_losses=step_losses,
        task_losses=task_losses,
        wall_seconds=wall,
    )


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()}"
