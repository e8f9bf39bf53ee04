"""Tiny, real-format model dirs for tests across the project.

The encoder is a random 2-layer BERT (hidden 32) so building and running it takes
milliseconds, but the tokenizer is the real one of the packaged MiniLM and the dir is
written by ``save_model``: tests exercise the same files and code paths as production.

``MINILM_L6_ENCODER`` is the shape of the real base model (6 layers, hidden 384): a
random model of that shape costs exactly what the trained one costs per text, which is
what the GPU benchmark (``bench/gpu_check.sh``) needs where the trained weights (90 MB)
cannot travel. ``tokenizer_dir`` points at the tokenizer files where the packaged base
model is not installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.base_model import resolve_base_model
from models.checkpoint import save_model
from models.reference import REFERENCE_FILE

__all__ = [
    "MINILM_L6_ENCODER",
    "TINY_ENCODER",
    "make_tiny_model",
    "make_tiny_model_dir",
    "reference_json",
]

TINY_ENCODER: dict[str, Any] = {
    "model_type": "bert",
    "vocab_size": 30522,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "pad_token_id": 0,
}

MINILM_L6_ENCODER: dict[str, Any] = {
    **TINY_ENCODER,
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
}


SENTIMENT_BIAS_SHIFT = (0.25, 0.08, 0.0)  # negative, neutral, positive logits


def make_tiny_model(
    seed: int = 0, shape: dict[str, Any] | None = None, tokenizer_dir: Path | None = None
) -> tuple[Any, Any]:
    """(MultiTaskModel, tokenizer) in eval mode with seeded random weights, not saved."""
    import torch
    from transformers import AutoTokenizer

    from models.architecture import MultiTaskConfig, MultiTaskModel, encoder_from_config

    source = str(tokenizer_dir) if tokenizer_dir else resolve_base_model(None)
    tokenizer = AutoTokenizer.from_pretrained(
        source, local_files_only=True, trust_remote_code=False
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = encoder_from_config(shape or TINY_ENCODER)
        cfg = MultiTaskConfig(encoder=encoder.config.to_dict())
        model = MultiTaskModel(cfg, encoder=encoder)
        # Random heads call almost nothing negative (0.2 % of corpus texts); shift the
        # biases so about a fifth of texts are negative and three fifths neutral: tests
        # build bursts of *distinct* negative stories (one story repeated is one story).
        with torch.no_grad():
            model.sentiment_head.bias += torch.tensor(SENTIMENT_BIAS_SHIFT)
    return model.eval(), tokenizer


REFERENCE_TEXTS: tuple[str, ...] = (
    "Apple beats earnings expectations, shares jump 5% after hours",
    "Fed holds rates steady and signals patience",
    "Oil prices slide as OPEC+ signals higher output",
    "Goldman cuts price target on $NVDA",
    "$TSLA deliveries miss estimates; stock falls",
    "ECB's Lagarde says inflation is still too high",
    "Bitcoin rallies past $60,000 as ETF flows rise",
    "Boeing names new chief financial officer",
)


def reference_json(model: Any, tokenizer: Any, texts: Sequence[str] = REFERENCE_TEXTS) -> str:
    """The reference distribution of ``model``'s own predictions on ``texts`` (as training
    writes it from validation), so drift is measured against what this model does."""
    import torch

    from models.reference import ReferenceDistribution, build_head_reference

    batch = tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        out = model(batch["input_ids"], batch["attention_mask"])
    heads = {}
    for head, logits, names in (
        ("sentiment", out.sentiment_logits, model.cfg.sentiment_labels),
        ("topic", out.topic_logits, model.cfg.topic_labels),
    ):
        confidence, predicted = torch.softmax(logits.float(), -1).max(-1)
        heads[head] = build_head_reference(
            [names[i] for i in predicted.tolist()], confidence.tolist(), names
        )
    return ReferenceDistribution(source="tests", heads=heads).model_dump_json(indent=2)


def make_tiny_model_dir(
    path: Path,
    seed: int = 0,
    *,
    temperatures: dict[str, float] | None = None,
    metadata: dict[str, Any] | None = None,
    reference_texts: Sequence[str] = REFERENCE_TEXTS,
    shape: dict[str, Any] | None = None,
    tokenizer_dir: Path | None = None,
) -> Path:
    """Save a random two-head model (tiny unless ``shape`` says) to ``path``, with every
    file training writes."""
    model, tokenizer = make_tiny_model(seed, shape, tokenizer_dir)
    save_model(
        path,
        model,
        tokenizer,
        metadata={
            "base_model": "tiny-random-bert",
            "seed": seed,
            "purpose": "tests",
            "max_length": 128,
            **(metadata or {}),
        },
        metrics=None,
        base_model="tiny-random-bert",
        temperatures=temperatures or {"sentiment": 1.0, "topic": 1.0},
        extra_files={REFERENCE_FILE: reference_json(model, tokenizer, reference_texts)},
    )
    return path
