"""How text becomes a forward pass: device, precision, text normalisation, encoding, padding.

The predictor (serving) and the trainer (validation, teachers, evaluation) both go through
these functions, so a model is scored exactly the way it was trained and validated:

* ``resolve_device``: ``auto`` | ``cpu`` | ``cuda[:N]``; anything else, or CUDA on a
  machine without it, is a ``DeviceError`` (one line, no traceback from torch later).
* ``autocast``: bf16 autocast on CUDA and on CPUs with native bf16 (AMX or AVX512-BF16),
  a no-op elsewhere (bf16 emulated in software is slower than fp32).
* ``normalize_text``: the model dir's ``text_normalization`` (saved in its metadata) applied
  to every input. ``"urls"`` replaces each URL by the word ``http``: a t.co link is 12-16
  random word pieces that carry no meaning, a third of a topic tweet's tokens.
* ``encode`` / ``pad_batch`` / ``length_sorted_chunks``: token ids without padding, padded
  per batch to the batch's longest member, batches cut from texts sorted by length.

Nothing here imports torch at module level: ``models.runtime`` is cheap to import.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, Final, Literal

from models.errors import DeviceError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "TEXT_NORMALIZATIONS",
    "TextNormalization",
    "autocast",
    "cpu_has_native_bf16",
    "encode",
    "length_sorted_chunks",
    "normalize_text",
    "pad_batch",
    "prefer_passive_cpu_threads",
    "resolve_device",
]

TextNormalization = Literal["none", "urls"]
TEXT_NORMALIZATIONS: Final[tuple[str, ...]] = ("none", "urls")
_URL: Final[re.Pattern[str]] = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)


def resolve_device(requested: str) -> str:
    """'auto' -> 'cuda' when a GPU is usable, else 'cpu'; an explicit CUDA device must exist."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested != "cpu" and re.fullmatch(r"cuda(:\d+)?", requested) is None:
        raise DeviceError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {requested!r}")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {requested!r} requested but CUDA is not available here")
        index = int(requested.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {requested!r} requested but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
    return requested


def cpu_has_native_bf16() -> bool:
    """True on CPUs where bf16 matmuls are faster than fp32 (AMX or AVX512-BF16)."""
    import torch

    cpu = getattr(torch, "cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def autocast(device: str, enabled: bool) -> AbstractContextManager[Any]:
    """bf16 autocast on CUDA and on CPUs with native bf16; else a no-op.

    bf16 needs no loss scaling (unlike fp16), so the same context serves training.
    """
    import torch

    if enabled and device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if enabled and device == "cpu" and cpu_has_native_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()


def normalize_text(text: str, scheme: str) -> str:
    """The model's input normalisation (``none`` or ``urls``); see the module docstring."""
    if scheme == "urls":
        return _URL.sub("http", text)
    if scheme == "none":
        return text
    raise ValueError(f"unknown text normalisation {scheme!r} (one of {TEXT_NORMALIZATIONS})")


def encode(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int,
    normalization: str = "none",
) -> list[list[int]]:
    """Token ids of each (normalised) text, truncated to ``max_length``, without padding."""
    prepared = [normalize_text(t, normalization) for t in texts]
    out = tokenizer(
        prepared,
        truncation=True,
        max_length=max_length,
        padding=False,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    return [list(ids) for ids in out["input_ids"]]


def pad_batch(
    sequences: Sequence[Sequence[int]], pad_id: int, device: str | torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) padded to the longest sequence of this batch."""
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids.to(device, non_blocking=True), mask.to(device, non_blocking=True)


def length_sorted_chunks(
    sequences: Sequence[Sequence[int]], batch_size: int
) -> Iterator[list[int]]:
    """Indices of ``sequences`` in batches of similar length (callers restore input order)."""
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def prefer_passive_cpu_threads() -> None:
    """Let idle OpenMP threads sleep instead of spin, unless the user chose otherwise.

    Must run before torch is first imported (OpenMP reads it once). On a 2-core machine
    shared with other processes, torch's spinning intra-op threads burnt ~3.5x the CPU
    time per training step and ran ~4x slower in wall time than with passive waiting
    (BENCHMARKS.md, "CPU threads"); on an idle machine the difference is small.
    """
    import os
    import sys

    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
