"""Fixtures for training tests: a tiny Hugging Face encoder dir usable as --base-model."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer BERT saved like a hub checkpoint (safetensors + real tokenizer)."""
    from tests.support.tiny_model import make_tiny_model

    model, tokenizer = make_tiny_model(seed=1)
    path = tmp_path_factory.mktemp("tiny-base")
    model.encoder.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
