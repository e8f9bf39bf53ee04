"""Batched logits of both heads for already-encoded texts: validation, evaluation, teachers.

Validation during training, ``finpulse evaluate`` and teacher targets all go through
``predict_logits`` on the float model, so the numbers in the manifest and in the
evaluation report come from the same code. Device, autocast and padding come from
``models.runtime``, which the serving predictor uses too. Texts are batched by length
(results are put back in input order), which roughly halves padding on tweets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from models.runtime import autocast, length_sorted_chunks, pad_batch

if TYPE_CHECKING:
    from models.architecture import MultiTaskModel
    from training.data import Head

__all__ = ["HeadLogits", "predict_logits"]

HeadLogits = dict["Head", torch.Tensor]


@torch.inference_mode()
def predict_logits(
    model: MultiTaskModel,
    encoded: Sequence[Sequence[int]],
    *,
    pad_id: int,
    batch_size: int,
    device: str,
    amp: bool = True,
    progress: bool = False,
    desc: str = "predict",
) -> HeadLogits:
    """float32 logits of both heads on the CPU, one row per encoded text, in input order."""
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    n = len(encoded)
    sentiment = torch.empty((n, model.cfg.num_sentiment_labels), dtype=torch.float32)
    topic = torch.empty((n, model.cfg.num_topic_labels), dtype=torch.float32)
    bar = tqdm(total=n, desc=desc, unit="text", disable=not progress, leave=False)
    try:
        for idx in length_sorted_chunks(encoded, batch_size):
            ids, mask = pad_batch([encoded[i] for i in idx], pad_id, device)
            with autocast(device, amp):
                out = model(ids, mask)
            rows = torch.tensor(idx, dtype=torch.long)
            sentiment[rows] = out.sentiment_logits.float().cpu()
            topic[rows] = out.topic_logits.float().cpu()
            bar.update(len(idx))
    finally:
        bar.close()
        model.train(was_training)
    return {"sentiment": sentiment, "topic": topic}
