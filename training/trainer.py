"""Multi-task fine-tuning of the two-head model on both Twitter Financial News datasets.

``train`` reads top to bottom as three functions: ``_setup`` (data, model, optimiser),
``_loop`` (the optimisation loop with early stopping) and ``_save`` (calibration, the
reference distribution and the model dir). The recipe, and why:

* Task batches (see ``training.batching``): each batch is from one dataset and trains the
  one head it has labels for; batches of both tasks are shuffled together each epoch.
* AdamW, encoder at ``lr`` (optionally decayed layer by layer), fresh heads at ``head_lr``;
  no weight decay on biases and LayerNorm; linear warm-up then linear decay to zero.
* Class imbalance: class-weighted cross-entropy per head (``class_weighting``).
* Optional, each measured in BENCHMARKS.md: FGM/PGD on the embeddings, an EMA of the
  weights, R-Drop, offline augmentation, pseudo-labels and distillation from teachers
  (``training.regularizers``, ``training.augment``, ``training.teachers``).
* Early stopping on the mean of the two heads' validation macro-F1, evaluated
  ``evals_per_epoch`` times per epoch; the best weights (the EMA's when on) are kept in
  memory and restored before saving.
* Seeds fixed for Python and torch; dynamic padding over length-grouped batches; gradient
  accumulation; bf16 autocast where the hardware does it natively.
* ``lora``: the encoder is wrapped with peft LoRA adapters (heads stay fully trained); the
  adapters are merged back before saving, so the saved dir is a plain ``MultiTaskModel``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import platform
import random
import time
from dataclasses import dataclass, field
from functools import partial
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F

from models.base_model import DEFAULT_ALIASES, DEFAULT_BASE_MODEL, resolve_base_model
from models.checkpoint import check_writable
from models.errors import FinpulseError
from models.runtime import autocast, encode, pad_batch, resolve_device
from training.batching import class_weights, linear_warmup_decay, plan_epoch, steps_per_epoch
from training.config import TrainConfig
from training.data import Head, LabelledTexts, data_checksums, head_labels, load_split
from training.early_stopping import BestTracker, EvalPoint
from training.examples import TaskExamples, build_examples
from training.inference import HeadLogits, predict_logits
from training.metrics import ClassificationReport, classification_report
from training.regularizers import EmbeddingAdversary, WeightEma, param_groups, symmetric_kl

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from torch import nn
    from transformers import PreTrainedModel

    from models.architecture import MultiTaskModel
    from models.checkpoint import Manifest
    from training.teachers import TeacherOutputs

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


@dataclass
class _Valid:
    ids: list[list[int]]
    labels: list[int]


@dataclass
class _Run:
    """Everything ``_setup`` prepares and ``_loop``/``_save`` use."""

    cfg: TrainConfig
    device: str
    base_path: str
    data_dir: Path | None  # None: the packaged datasets
    model: MultiTaskModel
    tokenizer: Any
    pad_id: int
    train: dict[Head, TaskExamples]
    valid: dict[Head, _Valid]
    class_weights: dict[Head, list[float]]
    weight_tensors: dict[Head, torch.Tensor]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    per_epoch: int
    total_steps: int
    eval_every: int
    rng: random.Random
    adversary: EmbeddingAdversary | None
    ema: WeightEma | None
    progress: bool = False
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _Progress:
    """What the loop leaves behind."""

    tracker: BestTracker
    step: int = 0
    examples: int = 0
    step_losses: list[float] = field(default_factory=list)
    task_losses: dict[str, list[float]] = field(default_factory=dict)


def train(
    cfg: TrainConfig,
    output_dir: Path,
    *,
    data_dir: Path | None = None,
    progress: bool = True,
    teacher_cache: Path | None = None,
    extra_metadata: dict[str, Any] | None = None,
) -> TrainResult:
    """Fine-tune, keep the best validation checkpoint, calibrate, save it to ``output_dir``.

    ``teacher_cache``: where teacher logits are cached (default: the user cache dir);
    ``extra_metadata`` is merged into the saved metadata (the recipe's step times).
    """
    started = time.perf_counter()
    check_writable(output_dir)  # fail now, not after an hour of training
    run = _setup(cfg, data_dir, progress, teacher_cache)
    loop_started = time.perf_counter()
    done = _loop(run, progress)
    run.timings["training loop"] = time.perf_counter() - loop_started
    return _save(run, done, output_dir, started, extra_metadata or {})


# --- setup ---------------------------------------------------------------------------


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


def _build(cfg: TrainConfig, base_path: str, device: str) -> tuple[MultiTaskModel, Any]:
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


def _teach(
    cfg: TrainConfig, device: str, progress: bool, cache: Path | None
) -> Callable[[Sequence[str]], TeacherOutputs]:
    from training.teachers import default_cache_dir, teacher_outputs

    def teach(texts: Sequence[str]) -> TeacherOutputs:
        return teacher_outputs(
            cfg.teachers,
            texts,
            distill_temperature=cfg.distill_temperature,
            device=device,
            batch_size=cfg.eval_batch_size,
            cache_dir=cache or default_cache_dir(),
            progress=progress,
        )

    return teach


def _optimizer(
    cfg: TrainConfig, model: MultiTaskModel, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over the (layer-wise) parameter groups; linear warm-up, then linear decay."""
    warmup = int(cfg.warmup_ratio * total_steps)
    optimizer = torch.optim.AdamW(
        param_groups(
            model,
            lr=cfg.lr,
            head_lr=cfg.head_lr,
            weight_decay=cfg.weight_decay,
            layer_lr_decay=cfg.layer_lr_decay,
            num_layers=int(model.cfg.encoder.get("num_hidden_layers", 0)),
        )
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: linear_warmup_decay(s, warmup, total_steps)
    )
    return optimizer, scheduler


def _setup(cfg: TrainConfig, data_dir: Path | None, progress: bool, cache: Path | None) -> _Run:
    started = time.perf_counter()
    # 1. Seeds, device, base model.
    _seed_everything(cfg.seed)
    rng = random.Random(cfg.seed)
    device = resolve_device(cfg.device)
    base_path = resolve_base_model(cfg.base_model)
    if cfg.uses_teachers and not cfg.teachers:
        raise FinpulseError("teacher options need trained teachers: run the recipe or --teacher")
    # 2. Data: seeded subsets of the vendored splits, then augmentation and pseudo-labels.
    limits: dict[Head, int | None] = {
        "sentiment": cfg.sentiment_train_limit,
        "topic": cfg.topic_train_limit,
    }
    train_sets = {h: _subset(load_split(h, "train", data_dir), limits[h], rng) for h in HEADS}
    valid_sets = {h: _subset(load_split(h, "valid", data_dir), cfg.valid_limit, rng) for h in HEADS}
    teach = _teach(cfg, device, progress, cache) if cfg.uses_teachers else None
    teacher_started = time.perf_counter()
    examples = build_examples(cfg, train_sets, valid_sets, rng, teach)
    teacher_seconds = time.perf_counter() - teacher_started if teach else 0.0
    # 3. Model and tokens (no padding yet: batches pad to their own longest text).
    model, tokenizer = _build(cfg, base_path, device)
    pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
    norm = cfg.text_normalization
    for h in HEADS:
        examples[h].ids = encode(tokenizer, examples[h].texts, cfg.max_length, norm)
    valid = {
        h: _Valid(
            encode(tokenizer, valid_sets[h].texts, cfg.max_length, norm),
            list(valid_sets[h].labels),
        )
        for h in HEADS
    }
    # 4. Loss weights from the gold labels only (pseudo-labels follow the teacher's bias).
    weights = {
        h: class_weights(examples[h].gold_labels, len(head_labels(h)), cfg.class_weighting)
        for h in HEADS
    }
    # 5. Schedule: optimizer steps per epoch, warm-up, evaluation cadence.
    per_epoch = steps_per_epoch(
        [len(examples[h].labels) for h in HEADS], cfg.batch_size, cfg.grad_accum
    )
    total_steps = math.ceil(cfg.epochs * per_epoch)
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    optimizer, scheduler = _optimizer(cfg, model, total_steps)
    # 6. Regularisers that hold state across steps.
    adversary = None
    if cfg.fgm_epsilon > 0:
        encoder = cast("PreTrainedModel", model.encoder)
        embeddings = cast("nn.Parameter", encoder.get_input_embeddings().weight)
        adversary = EmbeddingAdversary(model, embeddings, cfg.fgm_epsilon, cfg.pgd_steps)
    ema = WeightEma(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    log.info(
        "training on %s: %s sentiment + %s topic examples, %d steps (%d/epoch), device %s%s",
        base_path,
        examples["sentiment"].counts,
        examples["topic"].counts,
        total_steps,
        per_epoch,
        device,
        " with LoRA" if cfg.lora else "",
    )
    timings = {"setup": time.perf_counter() - started - teacher_seconds}
    if teach is not None:
        timings["teacher targets"] = teacher_seconds
    return _Run(
        cfg=cfg,
        device=device,
        base_path=base_path,
        data_dir=data_dir,
        model=model,
        tokenizer=tokenizer,
        pad_id=pad_id,
        train=examples,
        valid=valid,
        class_weights=weights,
        weight_tensors={h: torch.tensor(weights[h], device=device) for h in HEADS},
        optimizer=optimizer,
        scheduler=scheduler,
        per_epoch=per_epoch,
        total_steps=total_steps,
        eval_every=max(1, math.ceil(per_epoch / cfg.evals_per_epoch)),
        rng=rng,
        adversary=adversary,
        ema=ema,
        progress=progress,
        timings=timings,
    )


# --- loop ----------------------------------------------------------------------------


def _distill(logits: torch.Tensor, soft: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(teacher || student at temperature T), the scale Hinton et al. recommend."""
    log_student = F.log_softmax(logits / temperature, dim=-1)
    return F.kl_div(log_student, soft, reduction="batchmean") * temperature**2


def _batch_loss(run: _Run, head: Head, indices: Sequence[int]) -> torch.Tensor:
    """Loss of one task batch: weighted CE, plus distillation and R-Drop when on."""
    cfg, data = run.cfg, run.train[head]
    ids, mask = pad_batch([data.ids[i] for i in indices], run.pad_id, run.device)
    labels = torch.tensor([data.labels[i] for i in indices], device=run.device)
    passes = 2 if cfg.rdrop_alpha > 0 else 1  # R-Drop: the batch twice, other dropout masks
    with autocast(run.device, cfg.amp):
        out = run.model(ids.repeat(passes, 1), mask.repeat(passes, 1))
    logits = (out.sentiment_logits if head == "sentiment" else out.topic_logits).float()
    views = logits.chunk(passes)
    loss = torch.stack([F.cross_entropy(v, labels, weight=run.weight_tensors[head]) for v in views])
    loss = loss.mean()
    if data.soft is not None:
        soft = data.soft[torch.tensor(indices, dtype=torch.long)].to(run.device)
        kd = torch.stack([_distill(v, soft, cfg.distill_temperature) for v in views]).mean()
        loss = (1 - cfg.distill_weight) * loss + cfg.distill_weight * kd
    if passes == 2:
        loss = loss + cfg.rdrop_alpha * symmetric_kl(views[0], views[1])
    scale = cfg.topic_loss_weight if head == "topic" else 1.0
    return loss * scale / cfg.grad_accum


def _validate(run: _Run) -> tuple[dict[Head, ClassificationReport], HeadLogits]:
    reports: dict[Head, ClassificationReport] = {}
    logits: HeadLogits = {}
    for head in HEADS:
        out = predict_logits(
            run.model,
            run.valid[head].ids,
            pad_id=run.pad_id,
            batch_size=run.cfg.eval_batch_size,
            device=run.device,
            amp=run.cfg.amp,
            progress=run.progress,
            desc=f"validate {head}",
        )
        logits[head] = out[head]
        preds = out[head].argmax(dim=-1).tolist()
        reports[head] = classification_report(run.valid[head].labels, preds, head_labels(head))
    return reports, logits


def _evaluate(run: _Run, done: _Progress) -> bool:
    """Validate (the EMA weights when on); True when early stopping says stop."""
    epoch = done.step / run.per_epoch
    if run.ema is None:
        reports, logits = _validate(run)
        return done.tracker.offer(done.step, epoch, reports, run.model, logits)
    with run.ema.applied():
        reports, logits = _validate(run)
        return done.tracker.offer(done.step, epoch, reports, run.model, logits)


def _loop(run: _Run, progress: bool) -> _Progress:
    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    cfg = run.cfg
    done = _Progress(BestTracker(patience=cfg.patience), task_losses={h: [] for h in HEADS})
    ema_loss: float | None = None
    started = time.perf_counter()
    run.model.train()
    bar = tqdm(total=run.total_steps, unit="step", disable=not progress, dynamic_ncols=True)
    with logging_redirect_tqdm():
        stop, epoch = False, 0
        while not stop and done.step < run.total_steps:
            # 1. Plan the epoch: one-task batches, length-grouped, both tasks shuffled.
            lengths: dict[str, list[int]] = {h: [len(x) for x in run.train[h].ids] for h in HEADS}
            plan = plan_epoch(lengths, cfg.batch_size, cfg.length_group_batches, run.rng)
            micro: list[float] = []
            for n, batch in enumerate(plan, start=1):
                head: Head = "sentiment" if batch.task == "sentiment" else "topic"
                # 2. Forward and backward on one micro-batch (gradients accumulate).
                loss = _batch_loss(run, head, batch.indices)
                loss.backward()
                # 3. Adversarial training: the gradient at perturbed embeddings too.
                if run.adversary is not None:
                    run.adversary.attack(partial(_batch_loss, run, head, batch.indices))
                micro.append(float(loss.detach()) * cfg.grad_accum)
                done.task_losses[head].append(micro[-1])
                done.examples += len(batch.indices)
                if len(micro) < cfg.grad_accum and n < len(plan):
                    continue
                # 4. Optimizer step: clip, step, schedule, clear; then the EMA follows.
                torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.max_grad_norm)
                run.optimizer.step()
                run.scheduler.step()
                run.optimizer.zero_grad(set_to_none=True)
                if run.ema is not None:
                    run.ema.update()
                done.step += 1
                done.step_losses.append(sum(micro) / len(micro))
                micro = []
                # 5. Progress: smoothed loss and examples per second.
                last = done.step_losses[-1]
                ema_loss = last if ema_loss is None else 0.9 * ema_loss + 0.1 * last
                rate = done.examples / max(1e-9, time.perf_counter() - started)
                bar.set_postfix(loss=f"{ema_loss:.4f}", ex_s=f"{rate:.1f}", epoch=epoch + 1)
                bar.update(1)
                # 6. Validate on schedule and at the end; early stopping may end the run.
                if done.step % run.eval_every == 0 or done.step >= run.total_steps:
                    stop = _evaluate(run, done)
                if stop or done.step >= run.total_steps:
                    break
            epoch += 1
    bar.close()
    if not done.tracker.history or done.tracker.history[-1].step != done.step:
        _evaluate(run, done)
    return done


# --- save ----------------------------------------------------------------------------


def _merge_lora(model: MultiTaskModel) -> None:
    from peft import PeftModel

    if isinstance(model.encoder, PeftModel):
        model.encoder = model.encoder.merge_and_unload()


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("torch", "transformers", "finpulse", "peft"):
        with contextlib.suppress(importlib_metadata.PackageNotFoundError):
            versions[dist] = importlib_metadata.version(dist)
    return versions


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()}"


def _calibrate(run: _Run, logits: HeadLogits) -> tuple[dict[str, Any], dict[str, float], str]:
    """Temperature per head on validation, and the reference distribution it implies."""
    from models.reference import HeadReference, ReferenceDistribution, build_head_reference
    from training.calibration import calibrate_head

    calibration: dict[str, Any] = {}
    temperatures: dict[str, float] = {}
    references: dict[str, HeadReference] = {}
    for head in HEADS:
        labels = torch.tensor(run.valid[head].labels)
        fit = calibrate_head(logits[head], labels, seed=run.cfg.seed)
        calibration[head] = fit.model_dump()
        temperatures[head] = fit.temperature
        probs = torch.softmax(logits[head] / fit.temperature, dim=-1)
        confidence, predicted = probs.max(dim=-1)
        names = head_labels(head)
        references[head] = build_head_reference(
            [names[i] for i in predicted.tolist()], confidence.tolist(), names
        )
    reference = ReferenceDistribution(
        source="validation splits, best checkpoint, calibrated probabilities", heads=references
    )
    return calibration, temperatures, reference.model_dump_json(indent=2)


def _save(
    run: _Run, done: _Progress, output_dir: Path, started: float, extra: dict[str, Any]
) -> TrainResult:
    from models.checkpoint import save_model
    from models.reference import REFERENCE_FILE

    cfg, model = run.cfg, run.model
    save_started = time.perf_counter()
    # 1. Restore the best weights and make the model plain (LoRA merged, eval mode).
    best, best_state, best_reports, best_logits = done.tracker.best()
    model.load_state_dict(best_state)
    _merge_lora(model)
    model.eval()
    # 2. Calibrate on validation logits of the best checkpoint; reference distribution.
    calibration, temperatures, reference_json = _calibrate(run, best_logits)
    # 3. Metrics and provenance, then the model dir (manifest last).
    metrics = {
        "split": "validation",
        "score": best.score,
        "best_step": best.step,
        "sentiment": best_reports["sentiment"].model_dump(),
        "topic": best_reports["topic"].model_dump(),
        "calibration": calibration,
    }
    metadata = {
        "base_model": DEFAULT_BASE_MODEL if cfg.base_model in DEFAULT_ALIASES else cfg.base_model,
        "base_model_path": run.base_path,
        "max_length": cfg.max_length,
        "text_normalization": cfg.text_normalization,
        "seed": cfg.seed,
        "train_config": cfg.model_dump(mode="json"),
        "data": {
            "checksums_sha256": data_checksums(run.data_dir),
            "train_examples": {h: len(run.train[h].labels) for h in HEADS},
            "example_kinds": {h: run.train[h].counts for h in HEADS},
            "valid_examples": {h: len(run.valid[h].labels) for h in HEADS},
        },
        "teachers": [_teacher_version(t) for t in cfg.teachers],
        "class_weights": run.class_weights,
        "steps": done.step,
        "examples_seen": done.examples,
        "history": [vars(p) for p in done.tracker.history],
        "versions": _versions(),
        "device": _device_name(run.device),
        "torch_threads": torch.get_num_threads(),
        **extra,
    }
    run.timings["calibrate and save"] = time.perf_counter() - save_started
    wall = time.perf_counter() - started
    metadata["timings_seconds"] = {k: round(v, 1) for k, v in run.timings.items()}
    metadata["wall_seconds"] = round(wall, 1)
    manifest = save_model(
        output_dir,
        model,
        run.tokenizer,
        metadata=metadata,
        metrics=metrics,
        temperatures=temperatures,
        extra_files={REFERENCE_FILE: reference_json},
    )
    log.info("saved %s to %s (%.0f s)", manifest.model_version, output_dir, wall)
    return TrainResult(
        output_dir=output_dir,
        manifest=manifest,
        model=model,
        metrics=metrics,
        best=best,
        history=done.tracker.history,
        step_losses=done.step_losses,
        task_losses=done.task_losses,
        wall_seconds=wall,
    )


def _teacher_version(teacher_dir: str) -> str:
    from models.checkpoint import read_manifest

    return read_manifest(teacher_dir).model_version
