"""Batch plans and learning-rate schedule: pure functions, no torch.

Multi-task strategy: every batch holds examples of ONE task (sentiment or topic), and
the batches of both tasks are shuffled together, so each epoch visits all examples of
both datasets once, in proportion to their sizes. The loss of a batch is the
cross-entropy of the one head whose labels it has. Compared with mixed batches and a
masked loss this wastes no compute on a head without labels, keeps per-task class
weights simple, and still interleaves the tasks finely (with gradient accumulation an
optimizer step usually sees both).

Length grouping: inside each task, a shuffled window of ``group_batches`` batches is
sorted by token length before being cut into batches, so dynamic padding pads little
while batch composition stays random between epochs.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "PlannedBatch",
    "class_weights",
    "linear_warmup_decay",
    "plan_epoch",
    "steps_per_epoch",
]


@dataclass(frozen=True)
class PlannedBatch:
    task: str
    indices: tuple[int, ...]


def _task_batches(
    task: str, lengths: Sequence[int], batch_size: int, group_batches: int, rng: random.Random
) -> list[PlannedBatch]:
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * group_batches
    batches: list[PlannedBatch] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        for b in range(0, len(chunk), batch_size):
            batches.append(PlannedBatch(task, tuple(chunk[b : b + batch_size])))
    return batches


def plan_epoch(
    lengths_by_task: Mapping[str, Sequence[int]],
    batch_size: int,
    group_batches: int,
    rng: random.Random,
) -> list[PlannedBatch]:
    """All batches of one epoch: every example of every task exactly once, tasks interleaved."""
    if batch_size < 1 or group_batches < 1:
        raise ValueError("batch_size and group_batches must be >= 1")
    batches: list[PlannedBatch] = []
    for task in sorted(lengths_by_task):
        batches.extend(_task_batches(task, lengths_by_task[task], batch_size, group_batches, rng))
    rng.shuffle(batches)
    return batches


def steps_per_epoch(sizes: Sequence[int], batch_size: int, grad_accum: int) -> int:
    """Optimizer steps in one epoch (a trailing partial accumulation still steps)."""
    micro = sum(math.ceil(n / batch_size) for n in sizes)
    return math.ceil(micro / grad_accum)


def linear_warmup_decay(step: int, warmup_steps: int, total_steps: int) -> float:
    """LR multiplier: 0 -> 1 linearly over warm-up, then linearly down to 0 at ``total_steps``."""
    if total_steps <= 0:
        raise ValueError("total_steps must be positive")
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    remaining = total_steps - step
    return max(0.0, remaining / max(1, total_steps - warmup_steps))


def class_weights(labels: Sequence[int], n_classes: int, mode: str) -> list[float]:
    """Per-class loss weights, normalised so the average example weight is 1.

    ``balanced`` is inverse frequency, ``sqrt`` its square root, ``none`` all ones. A class
    absent from ``labels`` gets the largest weight seen (it cannot be learned anyway, and
    an infinite weight would poison the loss).
    """
    if mode == "none":
        return [1.0] * n_classes
    if mode not in ("sqrt", "balanced"):
        raise ValueError(f"unknown class weighting {mode!r}")
    counts = Counter(labels)
    n = len(labels)
    raw: list[float | None] = []
    for c in range(n_classes):
        if counts[c] == 0:
            raw.append(None)
            continue
        w = n / (n_classes * counts[c])
        raw.append(math.sqrt(w) if mode == "sqrt" else w)
    present = [w for w in raw if w is not None]
    if not present:
        raise ValueError("no labels to weight")
    top = max(present)
    weights = [top if w is None else w for w in raw]
    mean = sum(weights[label] for label in labels) / n
    return [w / mean for w in weights]
