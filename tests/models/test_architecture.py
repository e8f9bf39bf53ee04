"""MultiTaskModel shapes, mask-aware pooling and config validation."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from models.architecture import MultiTaskConfig, build_model, mean_pool
from models.base_model import resolve_base_model
from models.labels import SENTIMENT_LABELS, TOPIC_LABELS
from tests.support.tiny_model import TINY_ENCODER, make_tiny_model


@settings(max_examples=50, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=4),
    pad_to=st.integers(min_value=6, max_value=9),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_mean_pool_ignores_padding_content(lengths: list[int], pad_to: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(len(lengths), pad_to, 4, generator=gen)
    mask = torch.zeros(len(lengths), pad_to, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
    garbage = hidden.clone()
    garbage[mask == 0] = 1e6
    pooled = mean_pool(garbage, mask)
    for row, n in enumerate(lengths):
        torch.testing.assert_close(pooled[row], hidden[row, :n].mean(dim=0))


def test_forward_shapes_and_padding_invariance() -> None:
    model, tokenizer = make_tiny_model(seed=1)
    texts = ["stocks rally", "the federal reserve raised rates by fifty basis points today"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        out = model(batch["input_ids"], batch["attention_mask"])
        alone = tokenizer(texts[:1], return_tensors="pt")
        single = model(alone["input_ids"], alone["attention_mask"])
    assert out.sentiment_logits.shape == (2, len(SENTIMENT_LABELS))
    assert out.topic_logits.shape == (2, len(TOPIC_LABELS))
    torch.testing.assert_close(out.sentiment_logits[0], single.sentiment_logits[0])
    torch.testing.assert_close(out.topic_logits[0], single.topic_logits[0])


def test_same_seed_same_weights_different_seed_different() -> None:
    a, _ = make_tiny_model(seed=3)
    b, _ = make_tiny_model(seed=3)
    c, _ = make_tiny_model(seed=4)
    torch.testing.assert_close(a.sentiment_head.weight, b.sentiment_head.weight)
    assert not torch.equal(a.sentiment_head.weight, c.sentiment_head.weight)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sentiment_labels": ("only",)}, "at least 2"),
        ({"topic_labels": ("a", "b", "a")}, "duplicates"),
        ({"encoder": {"hidden_size": 8}}, "model_type"),
        ({"encoder": {"model_type": "bert"}}, "hidden_size"),
        ({"pooling": "cls"}, "pooling"),
        ({"dropout": 1.5}, "dropout"),
    ],
)
def test_config_rejects_inconsistent_values(change: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {"encoder": dict(TINY_ENCODER), **change}
    with pytest.raises(ValidationError, match=message):
        MultiTaskConfig(**fields)


def test_build_model_loads_packaged_minilm_without_pooler() -> None:
    model, tokenizer = build_model(resolve_base_model(None))
    assert model.cfg.hidden_size == 384
    assert model.sentiment_head.out_features == len(SENTIMENT_LABELS)
    assert model.topic_head.out_features == len(TOPIC_LABELS)
    assert not any(k.startswith("encoder.pooler") for k in model.state_dict())
    assert len(tokenizer) == model.cfg.encoder["vocab_size"]
