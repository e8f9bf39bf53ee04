"""Batched inference: texts in, one ``Prediction`` per text out, in input order.

Throughput comes from three things: texts are tokenised once and sorted by token length
so each batch pads only to its own longest member; the forward pass runs under
``torch.inference_mode``; and it runs in bf16 autocast where the hardware does bf16
natively (CUDA, and CPUs with AMX or AVX512-BF16).

Why ``quantize="auto"`` does not pick int8 (measured 2026-11-23 on a shared 2-core Xeon
with AMX, torch 2.13, 1000 validation headlines, batch 64, ``bench/bench_predictor.py``):
on the quick fine-tuned MiniLM, int8 dynamic quantisation of the Linear layers agrees
with fp32 on only 95.2 % of sentiment labels and costs 1.7 points of accuracy
(0.799 vs 0.816); on a weaker linear-probe model it agreed on 87.8 %. bf16 autocast
agrees on 99.9 % (accuracy 0.815) and was the fastest CPU path whenever measured
(about 2-3x fp32 on an idle machine, vs about 1.7x for int8). So bf16 is the default
where the hardware does it natively, fp32 elsewhere, and int8 is opt-in
(``quantize=True``) for CPUs without bf16 where speed matters more than fidelity.

Input contract of ``Predictor.predict``:

* the batch must be a sequence of ``str`` (not a bare ``str``/``bytes``); any other
  element raises ``TypeError`` naming its index, before any work is done;
* empty and whitespace-only texts are scored as the empty input (``[CLS] [SEP]``):
  every such text gets the same, deterministic prediction. Callers that must not score
  them (the stream app dead-letters empty news) filter them first;
* text is cut to ``max_chars`` characters before tokenisation (so a 10 MB string cannot
  stall the tokenizer) and to ``max_length`` tokens after; any Unicode, emoji included.

Thread-safety: ``predict`` holds a lock, so concurrent calls are serialised, never
interleaved; the stream app calls it from one executor thread at a time anyway. The
tokenizer and the torch thread pool are not designed for concurrent use.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from models.errors import FinpulseError
from models.runtime import (
    autocast,
    cpu_has_native_bf16,
    length_sorted_chunks,
    normalize_text,
    pad_batch,
    resolve_device,
)

if TYPE_CHECKING:
    import torch
    from torch import nn
    from transformers import PreTrainedTokenizerBase

    from models.reference import ReferenceDistribution

__all__ = [
    "DEFAULT_MAX_CHARS",
    "BatchStats",
    "Prediction",
    "Predictor",
    "PredictorError",
    "load_predictor",
]

DEFAULT_MAX_CHARS: Final[int] = 10_000
_log = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "bf16"]
RunPrecision = Literal["fp32", "bf16"]


class PredictorError(FinpulseError, ValueError):
    """Predictor settings that cannot work (e.g. a batch size of 0)."""


@dataclass(frozen=True, slots=True)
class Prediction:
    """The model's verdict on one text."""

    sentiment: str
    sentiment_probs: dict[str, float]
    topic: str
    topic_prob: float
    model_version: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "sentiment": self.sentiment,
            "sentiment_probs": dict(self.sentiment_probs),
            "topic": self.topic,
            "topic_prob": self.topic_prob,
            "model_version": self.model_version,
        }


@dataclass(frozen=True, slots=True)
class BatchStats:
    """What the tokenizer saw in one ``predict`` call, per text, for monitoring.

    ``tokens``: ids fed to the model ([CLS] and [SEP] included); ``truncated``: the text
    was longer than ``max_length`` tokens (or ``max_chars`` characters); ``unknown``:
    how many of its tokens were the tokenizer's unknown token.
    """

    tokens: tuple[int, ...]
    truncated: tuple[bool, ...]
    unknown: tuple[int, ...]


def _check_texts(texts: Sequence[str]) -> None:
    if isinstance(texts, str | bytes | bytearray) or not isinstance(texts, Sequence):
        raise TypeError(
            f"predict() takes a sequence of str (e.g. a list), got {type(texts).__name__}"
        )
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")


class Predictor:
    """A loaded model ready for batched scoring; build it with ``load_predictor``."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        *,
        model_version: str,
        sentiment_labels: Sequence[str],
        topic_labels: Sequence[str],
        device: str = "cpu",
        precision: RunPrecision = "fp32",
        batch_size: int = 64,
        max_length: int = 128,
        max_chars: int = DEFAULT_MAX_CHARS,
        temperatures: Mapping[str, float] | None = None,
        text_normalization: str = "none",
        reference: ReferenceDistribution | None = None,
    ) -> None:
        if batch_size < 1:
            raise PredictorError(f"batch_size must be >= 1, got {batch_size}")
        if max_length < 2:
            raise PredictorError(
                f"max_length must be >= 2 (room for [CLS] and [SEP]), got {max_length}"
            )
        if max_chars < 1:
            raise PredictorError(f"max_chars must be >= 1, got {max_chars}")
        normalize_text("", text_normalization)  # an unknown scheme fails here, not per call
        self.model = model
        self.tokenizer = tokenizer
        self.model_version = model_version
        self.sentiment_labels = tuple(sentiment_labels)
        self.topic_labels = tuple(topic_labels)
        self.device = device
        self.precision: RunPrecision = precision
        self.batch_size = batch_size
        self.max_length = max_length
        self.max_chars = max_chars
        temps = dict(temperatures or {})
        self.temperatures = {h: float(temps.get(h, 1.0)) for h in ("sentiment", "topic")}
        self.text_normalization = text_normalization
        self.reference = reference  # what drift monitoring compares live predictions with
        pad_id = tokenizer.pad_token_id
        self._pad_id = int(pad_id) if pad_id is not None else 0
        unk_id = tokenizer.unk_token_id
        self._unk_id = int(unk_id) if unk_id is not None else -1
        self._lock = threading.Lock()
        # Called (inside the lock, in the caller's thread) with each call's predictions and
        # token statistics; the worker's model monitor hangs here. Must be cheap.
        self.observer: Callable[[Sequence[Prediction], BatchStats], None] | None = None

    def _tokenize(self, texts: Sequence[str]) -> tuple[list[list[int]], BatchStats]:
        cut = [t[: self.max_chars] for t in texts]
        prepared = [
            "" if not t.strip() else normalize_text(t, self.text_normalization) for t in cut
        ]
        enc = self.tokenizer(
            prepared,
            truncation=True,
            max_length=self.max_length,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        ids = [list(x) for x in enc["input_ids"]]
        encodings = getattr(enc, "encodings", None) or [None] * len(ids)
        stats = BatchStats(
            tokens=tuple(len(x) for x in ids),
            truncated=tuple(
                len(t) > self.max_chars or bool(e is not None and e.overflowing)
                for t, e in zip(texts, encodings, strict=True)
            ),
            unknown=tuple(x.count(self._unk_id) for x in ids),
        )
        return ids, stats

    def _forward(self, batch_ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        input_ids, mask = pad_batch(batch_ids, self._pad_id, self.device)
        with autocast(self.device, self.precision == "bf16"):
            out = self.model(input_ids, mask)
        t_sent, t_topic = self.temperatures["sentiment"], self.temperatures["topic"]
        sent = torch.softmax(out.sentiment_logits.float() / t_sent, dim=-1).cpu()
        topic = torch.softmax(out.topic_logits.float() / t_topic, dim=-1).cpu()
        return sent, topic

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """One prediction per text, in input order, whatever the batch size."""
        import torch

        _check_texts(texts)
        if len(texts) == 0:
            return []
        with self._lock, torch.inference_mode():
            ids, stats = self._tokenize(texts)
            results: list[Prediction | None] = [None] * len(ids)
            for chunk in length_sorted_chunks(ids, self.batch_size):
                sent, topic = self._forward([ids[i] for i in chunk])
                topic_prob, topic_idx = topic.max(dim=-1)
                for row, i in enumerate(chunk):
                    probs = sent[row].tolist()
                    results[i] = Prediction(
                        sentiment=self.sentiment_labels[
                            max(range(len(probs)), key=probs.__getitem__)
                        ],
                        sentiment_probs=dict(zip(self.sentiment_labels, probs, strict=True)),
                        topic=self.topic_labels[int(topic_idx[row])],
                        topic_prob=float(topic_prob[row]),
                        model_version=self.model_version,
                    )
            out = [r for r in results if r is not None]
            if self.observer is not None:
                try:
                    self.observer(out, stats)
                except Exception:  # monitoring must never fail (and dead-letter) a prediction
                    _log.exception("predictor observer failed; predictions are unaffected")
        return out


_QUANTIZE_REMOVED = (
    "int8 quantisation was removed in finpulse 0.2 (torch.ao dynamic quantisation is "
    "deprecated and lost 1-2 points of accuracy; bf16 is faster where the CPU has it, see "
    "BENCHMARKS.md); use precision 'auto', 'bf16' or 'fp32'"
)


def load_predictor(
    model_dir: str | os.PathLike[str],
    *,
    device: str = "auto",
    quantize: bool | Literal["auto"] = "auto",
    batch_size: int = 64,
    max_length: int | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    num_threads: int | None = None,
    precision: Precision = "auto",
) -> Predictor:
    """Load a model dir (verified by ``load_model``) as a ready ``Predictor``.

    ``precision``: ``"auto"`` is bf16 autocast on CUDA and on CPUs with native bf16, else
    fp32; ``"fp32"`` forces exact fp32 (reference runs, tests). ``quantize`` is kept only to
    refuse ``True`` with a clear message (int8 was removed; see ``_QUANTIZE_REMOVED``).
    ``max_length`` defaults to the one the model was trained with (its manifest).
    ``num_threads`` sets torch's process-wide intra-op thread count; ``None`` leaves it as
    torch/OMP_NUM_THREADS chose, so an app that sizes its threads itself is not overridden.
    The manifest's temperatures and text normalisation are always applied.
    """
    import torch

    from models.checkpoint import load_model

    if quantize is True:
        raise PredictorError(_QUANTIZE_REMOVED)
    if quantize not in ("auto", False):
        raise PredictorError(f"quantize must be 'auto' or False, got {quantize!r}")
    if precision not in ("auto", "fp32", "bf16"):
        raise PredictorError(f"precision must be 'auto', 'fp32' or 'bf16', got {precision!r}")
    if num_threads is not None:
        if num_threads < 1:
            raise PredictorError(f"num_threads must be >= 1, got {num_threads}")
        torch.set_num_threads(num_threads)
    resolved = resolve_device(device)
    run_precision: RunPrecision
    if precision == "auto":
        run_precision = "bf16" if resolved.startswith("cuda") or cpu_has_native_bf16() else "fp32"
    else:
        run_precision = precision
    loaded = load_model(Path(model_dir), device=resolved)
    meta = loaded.manifest.metadata
    return Predictor(
        loaded.model.eval(),
        loaded.tokenizer,
        model_version=loaded.manifest.model_version,
        sentiment_labels=loaded.manifest.sentiment_labels,
        topic_labels=loaded.manifest.topic_labels,
        device=resolved,
        precision=run_precision,
        batch_size=batch_size,
        max_length=max_length if max_length is not None else int(meta.get("max_length", 128)),
        max_chars=max_chars,
        temperatures=loaded.manifest.temperatures,
        text_normalization=str(meta.get("text_normalization", "none")),
        reference=loaded.reference,
    )
