"""The two-head model: one pretrained encoder shared by sentiment and topic classification.

Mean pooling over the attention mask (not the [CLS] vector) because the default base,
all-MiniLM-L6-v2, was trained as a mean-pooled sentence encoder; its [CLS] state carries
little on its own. The encoder's own pooler is dropped for the same reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from models.labels import SENTIMENT_LABELS, TOPIC_LABELS

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "MultiTaskConfig",
    "MultiTaskModel",
    "MultiTaskOutput",
    "build_model",
    "encoder_from_config",
    "mean_pool",
]

# Model types whose AutoModel class takes add_pooling_layer; others have no pooler to drop.
_HAS_OPTIONAL_POOLER = frozenset({"bert", "roberta", "xlm-roberta", "camembert"})


class MultiTaskConfig(BaseModel):
    """All that rebuilding the module's shapes needs, without weights (saved as config.json)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    encoder: dict[str, Any] = Field(description="the encoder's Hugging Face config, as to_dict()")
    pooling: Literal["mean"] = "mean"
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    sentiment_labels: tuple[str, ...] = SENTIMENT_LABELS
    topic_labels: tuple[str, ...] = TOPIC_LABELS

    @model_validator(mode="after")
    def _check(self) -> MultiTaskConfig:
        for name, labels in (("sentiment", self.sentiment_labels), ("topic", self.topic_labels)):
            if len(labels) < 2:
                raise ValueError(f"{name}_labels needs at least 2 labels, got {len(labels)}")
            if len(set(labels)) != len(labels):
                raise ValueError(f"{name}_labels has duplicates: {labels}")
        if "model_type" not in self.encoder:
            raise ValueError("encoder config has no 'model_type'")
        if not isinstance(self.encoder.get("hidden_size"), int):
            raise ValueError("encoder config has no integer 'hidden_size'")
        return self

    @property
    def num_sentiment_labels(self) -> int:
        return len(self.sentiment_labels)

    @property
    def num_topic_labels(self) -> int:
        return len(self.topic_labels)

    @property
    def hidden_size(self) -> int:
        return int(self.encoder["hidden_size"])


class MultiTaskOutput(NamedTuple):
    sentiment_logits: torch.Tensor
    topic_logits: torch.Tensor


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token states that the mask marks as real (padding excluded)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * mask).sum(dim=1)
    counts = mask.sum(dim=1).clamp(min=1.0)
    return summed / counts


def _encoder_kwargs(model_type: str) -> dict[str, Any]:
    return {"add_pooling_layer": False} if model_type in _HAS_OPTIONAL_POOLER else {}


def encoder_from_config(encoder_config: dict[str, Any]) -> PreTrainedModel:
    """A randomly initialised encoder of the given shape; loading weights is the caller's job."""
    from transformers import AutoConfig, AutoModel

    cfg_dict = dict(encoder_config)
    model_type = str(cfg_dict.pop("model_type"))
    hf_config = AutoConfig.for_model(model_type, **cfg_dict)
    return AutoModel.from_config(hf_config, **_encoder_kwargs(model_type))


class MultiTaskModel(nn.Module):
    """Encoder → mean pooling → dropout → two independent linear heads."""

    def __init__(self, cfg: MultiTaskConfig, encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder if encoder is not None else encoder_from_config(cfg.encoder)
        self.dropout = nn.Dropout(cfg.dropout)
        self.sentiment_head = nn.Linear(cfg.hidden_size, cfg.num_sentiment_labels)
        self.topic_head = nn.Linear(cfg.hidden_size, cfg.num_topic_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> MultiTaskOutput:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        pooled = self.dropout(mean_pool(out.last_hidden_state, attention_mask))
        return MultiTaskOutput(self.sentiment_head(pooled), self.topic_head(pooled))


def build_model(
    base_model: str,
    cfg: MultiTaskConfig | None = None,
    *,
    dropout: float = 0.1,
    sentiment_labels: tuple[str, ...] = SENTIMENT_LABELS,
    topic_labels: tuple[str, ...] = TOPIC_LABELS,
) -> tuple[MultiTaskModel, PreTrainedTokenizerBase]:
    """Pretrained encoder + tokenizer from ``base_model`` (a path or hub id) with fresh heads.

    ``base_model`` should already be resolved (see ``models.base_model.resolve_base_model``).
    If ``cfg`` is given its encoder entry is replaced by the base model's real config, so
    only pooling, dropout and labels are taken from it. Only safetensors weights are
    accepted and no remote code is ever run.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_config = AutoConfig.from_pretrained(base_model, trust_remote_code=False)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the dropped pooler would print a load report table
    try:
        encoder = AutoModel.from_pretrained(
            base_model,
            config=hf_config,
            trust_remote_code=False,
            use_safetensors=True,
            **_encoder_kwargs(hf_config.model_type),
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    tokenizer = AutoTokenizer.from_pretrained(base_model, trust_remote_code=False)
    encoder_dict = encoder.config.to_dict()
    if cfg is None:
        cfg = MultiTaskConfig(
            encoder=encoder_dict,
            dropout=dropout,
            sentiment_labels=sentiment_labels,
            topic_labels=topic_labels,
        )
    else:
        cfg = cfg.model_copy(update={"encoder": encoder_dict})
    model = MultiTaskModel(cfg, encoder=encoder)
    return model, tokenizer
