"""The examples each head trains on: gold labels, augmented copies and pseudo-labels.

``build_examples`` turns the loaded splits and the config into one ``TaskExamples`` per
head, in this order: the gold examples of the head's own dataset, then (``augment_ratio``)
augmented copies of a random share of them with the same labels, then
(``pseudo_label_threshold``) texts of the other dataset that the teacher ensemble labels
confidently. With teachers, every example also carries the ensemble's soft target for
distillation (an augmented copy takes its original's).

Texts of either validation split are never pseudo-labelled, even if a dataset repeats one
(the vendored splits share none today; the check keeps it that way).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from training.augment import augment_text, cashtag_pool
from training.config import TrainConfig
from training.data import Head, LabelledTexts
from training.teachers import TeacherOutputs

__all__ = ["TaskExamples", "build_examples"]

log = logging.getLogger(__name__)
HEADS: tuple[Head, Head] = ("sentiment", "topic")


@dataclass
class TaskExamples:
    """Texts, hard labels and (with teachers) soft targets of one head, row-aligned."""

    texts: list[str]
    labels: list[int]
    soft: torch.Tensor | None = None
    counts: dict[str, int] = field(default_factory=dict)  # gold / augmented / pseudo
    ids: list[list[int]] = field(default_factory=list)  # filled by the trainer

    @property
    def gold_labels(self) -> list[int]:
        return self.labels[: self.counts.get("gold", len(self.labels))]


def _other(head: Head) -> Head:
    return "topic" if head == "sentiment" else "sentiment"


def _key(text: str) -> str:
    return " ".join(text.lower().split())


def build_examples(
    cfg: TrainConfig,
    train_sets: dict[Head, LabelledTexts],
    valid_sets: dict[Head, LabelledTexts],
    rng: random.Random,
    teach: Callable[[Sequence[str]], TeacherOutputs] | None = None,
) -> dict[Head, TaskExamples]:
    """Gold + augmented + pseudo-labelled examples per head (see the module docstring)."""
    unseen = {_key(t) for h in HEADS for t in valid_sets[h].texts}
    # Texts the teachers must score: every gold text (soft targets) and every candidate.
    all_texts = [*train_sets["sentiment"].texts, *train_sets["topic"].texts]
    outputs = teach(all_texts) if teach is not None and cfg.uses_teachers else None
    offset = {"sentiment": 0, "topic": len(train_sets["sentiment"])}
    examples: dict[Head, TaskExamples] = {}
    for head in HEADS:
        gold = train_sets[head]
        rows = list(range(offset[head], offset[head] + len(gold)))
        texts, labels = list(gold.texts), list(gold.labels)
        counts = {"gold": len(gold), "augmented": 0, "pseudo": 0}
        if cfg.augment_ratio > 0:
            pool = cashtag_pool(gold.texts)
            chosen = sorted(rng.sample(range(len(gold)), round(cfg.augment_ratio * len(gold))))
            for i in chosen:
                copy = augment_text(gold.texts[i], pool, rng)
                if copy is not None:
                    texts.append(copy)
                    labels.append(gold.labels[i])
                    rows.append(offset[head] + i)
                    counts["augmented"] += 1
        if outputs is not None and cfg.pseudo_label_threshold is not None:
            other = _other(head)
            own = {_key(t) for t in gold.texts}
            probs = outputs.confident[head]
            picked = [
                offset[other] + j
                for j, text in enumerate(train_sets[other].texts)
                if _key(text) not in unseen
                and _key(text) not in own
                and float(probs[offset[other] + j].max()) >= cfg.pseudo_label_threshold
            ]
            if cfg.pseudo_label_limit is not None and len(picked) > cfg.pseudo_label_limit:
                picked = sorted(rng.sample(picked, cfg.pseudo_label_limit))
            for row in picked:
                texts.append(all_texts[row])
                labels.append(int(probs[row].argmax()))
                rows.append(row)
            counts["pseudo"] = len(picked)
        soft = None
        if outputs is not None and cfg.distill_weight > 0:
            soft = outputs.soft[head][torch.tensor(rows, dtype=torch.long)]
        examples[head] = TaskExamples(texts, labels, soft, counts)
        log.info("%s examples: %s", head, counts)
    return examples
