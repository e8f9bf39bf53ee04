"""Tiny, real-format model dirs for tests across the project.

The encoder is a random 2-layer BERT (hidden 32) so building and running it takes
milliseconds, but the tokenizer is the real one of the packaged MiniLM and the dir is
written by ``save_model``: tests exercise the same files and code paths as production.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.base_model import resolve_base_model
from models.checkpoint import save_model

__all__ = ["TINY_ENCODER", "make_tiny_model", "make_tiny_model_dir"]

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


def make_tiny_model(seed: int = 0) -> tuple[Any, Any]:
    """(MultiTaskModel, tokenizer) in eval mode with seeded random weights, not saved."""
    import torch
    from transformers import AutoTokenizer

    from models.architecture import MultiTaskConfig, MultiTaskModel, encoder_from_config

    tokenizer = AutoTokenizer.from_pretrained(
        resolve_base_model(None), local_files_only=True, trust_remote_code=False
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = encoder_from_config(TINY_ENCODER)
        cfg = MultiTaskConfig(encoder=encoder.config.to_dict())
        model = MultiTaskModel(cfg, encoder=encoder)
    return model.eval(), tokenizer


def make_tiny_model_dir(path: Path, seed: int = 0) -> Path:
    """Save a tiny random two-head model to ``path`` and return it."""
    model, tokenizer = make_tiny_model(seed)
    save_model(
        path,
        model,
        tokenizer,
        metadata={"base_model": "tiny-random-bert", "seed": seed, "purpose": "tests"},
        metrics=None,
        base_model="tiny-random-bert",
    )
    return path
