"""Tokenising, padding and batched arg-max prediction shared by validation and evaluation.

Validation during training and ``finpulse evaluate`` go through this one function on the
float model, so the numbers in the manifest and in the evaluation report are comparable.
Texts are sorted by length before batching (results are put back in input order), which
roughly halves padding on tweets.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import torch

from models.predictor import cpu_has_native_bf16

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from models.architecture import MultiTaskModel
    from training.data import Head

__all__ = ["autocast_for", "encode", "pad_batch", "pick_device", "predict_head"]


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def autocast_for(device: torch.device, enabled: bool) -> AbstractContextManager[Any]:
    """bf16 autocast on CUDA and on CPUs with native bf16 (AMX/AVX512-BF16); else a no-op.

    bf16 needs no loss scaling (unlike fp16). On an AMX CPU it measured ~1.3x fp32 for
    MiniLM training steps; on CPUs without native bf16 it would be slower, so it is off.
    """
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if enabled and device.type == "cpu" and cpu_has_native_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()


def encode(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int
) -> list[list[int]]:
    """Token ids without padding (padding happens per batch)."""
    out = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)
    return [list(ids) for ids in out["input_ids"]]


def pad_batch(
    sequences: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) padded to the longest sequence of this batch."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids.to(device), mask.to(device)


@torch.inference_mode()
def predict_head(
    model: MultiTaskModel,
    encoded: Sequence[Sequence[int]],
    head: Head,
    *,
    pad_id: int,
    batch_size: int,
    device: torch.device,
    amp: bool = True,
) -> list[int]:
    """Arg-max label index of ``head`` for each encoded text, in input order."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    preds = [0] * len(encoded)
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            ids, mask = pad_batch([encoded[i] for i in idx], pad_id, device)
            with autocast_for(device, amp):
                out = model(ids, mask)
            logits = out.sentiment_logits if head == "sentiment" else out.topic_logits
            for i, p in zip(idx, logits.argmax(dim=-1).tolist(), strict=True):
                preds[i] = int(p)
    finally:
        model.train(was_training)
    return preds
