"""Training hyper-parameters and the two named profiles (``quick`` and ``full``).

A profile is a complete ``TrainConfig``; command-line overrides are applied on top with
``with_overrides`` so the saved metadata always records the exact values that were used.

Choices that matter for a 22M-parameter MiniLM on short finance tweets:

* ``head_lr`` is ~20x the encoder rate: the heads start from random weights while the
  encoder only needs to be nudged, and a single rate is either too slow for the heads or
  too destructive for the encoder.
* Class weights are the square root of inverse class frequency ("sqrt"): full inverse
  weighting buys macro-F1 on the rare topics (IPO, Gold) at a visible cost in accuracy;
  the square root recovers most of the rare-class recall and keeps accuracy.
* Tweets average ~28 word pieces; ``max_length`` 64 cuts a handful of long texts and
  128 none of note, so ``full`` uses 128 and ``quick`` 64. Dynamic padding makes the
  limit nearly free.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from models.errors import FinpulseError
from models.runtime import TextNormalization

__all__ = ["PROFILES", "ClassWeighting", "ProfileName", "TrainConfig", "profile_config"]

ProfileName = Literal["quick", "full"]
ClassWeighting = Literal["none", "sqrt", "balanced"]


class TrainConfig(BaseModel):
    """Every knob of one training run (saved verbatim in the model metadata)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: str
    base_model: str = "default"
    max_length: int = Field(ge=8, le=512)
    epochs: float = Field(gt=0)
    max_steps: int | None = Field(default=None, ge=1, description="optimizer steps; overrides")
    batch_size: int = Field(ge=1)
    eval_batch_size: int = Field(default=128, ge=1)
    grad_accum: int = Field(default=1, ge=1)
    lr: float = Field(gt=0, description="encoder learning rate")
    head_lr: float = Field(gt=0, description="learning rate of the two linear heads")
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_ratio: float = Field(default=0.06, ge=0, lt=1)
    max_grad_norm: float = Field(default=1.0, gt=0)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    class_weighting: ClassWeighting = "sqrt"
    topic_loss_weight: float = Field(default=1.0, gt=0)
    sentiment_train_limit: int | None = Field(default=None, ge=1)
    topic_train_limit: int | None = Field(default=None, ge=1)
    valid_limit: int | None = Field(default=None, ge=1, description="per head; tests only")
    evals_per_epoch: int = Field(default=1, ge=1)
    patience: int = Field(default=2, ge=1, description="evaluations without improvement")
    length_group_batches: int = Field(default=50, ge=1, description="batches per sort window")
    seed: int = 13
    device: str = "auto"
    amp: bool = Field(default=True, description="bf16 autocast on CUDA and bf16-native CPUs")
    lora: bool = False
    lora_r: int = Field(default=16, ge=1)
    lora_alpha: int = Field(default=32, ge=1)
    lora_dropout: float = Field(default=0.1, ge=0, lt=1)
    # Input: how every text is normalised before tokenising (saved; the predictor repeats it).
    text_normalization: TextNormalization = "none"
    # Regularisers, each off at its default (see training/regularizers.py).
    fgm_epsilon: float = Field(default=0.0, ge=0, description="adversarial step on embeddings")
    pgd_steps: int = Field(default=1, ge=1, description="1 = FGM, K > 1 = PGD with K steps")
    ema_decay: float = Field(default=0.0, ge=0, lt=1, description="EMA of weights; 0 = off")
    rdrop_alpha: float = Field(default=0.0, ge=0, description="R-Drop KL weight; 0 = off")
    layer_lr_decay: float = Field(default=1.0, gt=0, le=1, description="per layer; 1 = off")
    # Teachers (see training/teachers.py): model dirs whose mean probabilities are the target.
    teachers: tuple[str, ...] = ()
    teacher_seeds: tuple[int, ...] = Field(
        default=(), description="train these teachers first (recipe); ignored with teachers"
    )
    teacher_epochs: float | None = Field(default=None, gt=0, description="default: epochs")
    distill_weight: float = Field(default=0.0, ge=0, le=1, description="KL share of the loss")
    distill_temperature: float = Field(default=2.0, gt=0)
    pseudo_label_threshold: float | None = Field(
        default=None, gt=0, le=1, description="cross-task texts the teacher is this sure of"
    )
    pseudo_label_limit: int | None = Field(default=None, ge=1, description="per head")
    # Offline augmentation (see training/augment.py): one altered copy for this share.
    augment_ratio: float = Field(default=0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _needs_teachers(self) -> TrainConfig:
        wants = self.distill_weight > 0 or self.pseudo_label_threshold is not None
        if wants and not (self.teachers or self.teacher_seeds):
            raise ValueError("distill_weight and pseudo_label_threshold need teachers")
        return self

    @property
    def uses_teachers(self) -> bool:
        return self.distill_weight > 0 or self.pseudo_label_threshold is not None

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        """A copy with the non-``None`` overrides applied and validated."""
        update = {k: v for k, v in overrides.items() if v is not None}
        try:
            return TrainConfig.model_validate({**self.model_dump(), **update})
        except ValidationError as exc:
            raise FinpulseError(f"invalid training option: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}"


PROFILES: dict[str, TrainConfig] = {
    # A usable model in <= 5 minutes on a 2-core CPU: one pass over a sentiment-heavy
    # all sentiment texts plus a topic subset (~12.5k examples), one evaluation at the end.
    "quick": TrainConfig(
        profile="quick",
        max_length=64,
        epochs=1,
        batch_size=32,
        lr=1.5e-4,
        head_lr=3e-3,
        warmup_ratio=0.1,
        sentiment_train_limit=None,
        topic_train_limit=3000,
        evals_per_epoch=1,
    ),
    # Best quality: all data, three epochs (six evaluations), early stopping on mean
    # validation macro-F1. Five epochs did not fit a CPU session; measure before raising.
    "full": TrainConfig(
        profile="full",
        max_length=128,
        epochs=3,
        batch_size=32,
        lr=8e-5,
        head_lr=1.5e-3,
        warmup_ratio=0.06,
        evals_per_epoch=2,
        patience=3,
    ),
}


def profile_config(name: str) -> TrainConfig:
    try:
        return PROFILES[name]
    except KeyError:
        raise FinpulseError(
            f"unknown profile {name!r} (choose from {', '.join(PROFILES)})"
        ) from None
