"""Which examples each head trains on: gold, augmented copies, pseudo-labels, soft targets."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
import torch

from training.config import TrainConfig, profile_config
from training.data import LabelledTexts
from training.examples import build_examples
from training.teachers import TeacherOutputs

SENT = LabelledTexts("sentiment", ("s up", "s down", "s flat"), (2, 0, 1), "s.csv")
TOPIC = LabelledTexts("topic", ("t fed", "t oil", "t ipo", "t valid twin"), (1, 6, 11, 3), "t.csv")
VALID = {
    "sentiment": LabelledTexts("sentiment", ("T VALID   twin",), (1,), "sv.csv"),
    "topic": LabelledTexts("topic", ("other",), (0,), "tv.csv"),
}


def _teacher(confidence: dict[str, float]) -> TeacherOutputs:
    """Deterministic fake ensemble: for each text, a chosen top class with a chosen probability."""
    texts = [*SENT.texts, *TOPIC.texts]

    def rows(n_classes: int) -> torch.Tensor:
        out = torch.zeros(len(texts), n_classes)
        for i, text in enumerate(texts):
            top = confidence.get(text, 0.5)
            out[i] = (1 - top) / (n_classes - 1)
            out[i, i % n_classes] = top
        return out

    return TeacherOutputs(
        confident={"sentiment": rows(3), "topic": rows(20)},
        soft={"sentiment": rows(3) * 0 + 1 / 3, "topic": rows(20)},
    )


def _cfg(**overrides: object) -> TrainConfig:
    return profile_config("quick").with_overrides(teachers=("t1",), **overrides)


def test_confident_texts_of_the_other_dataset_become_pseudo_labels() -> None:
    teacher = _teacher({"t fed": 0.95, "t oil": 0.6, "t ipo": 0.99, "t valid twin": 0.99})
    seen: list[Sequence[str]] = []

    def teach(texts: Sequence[str]) -> TeacherOutputs:
        seen.append(texts)
        return teacher

    ex = build_examples(
        _cfg(pseudo_label_threshold=0.9),
        {"sentiment": SENT, "topic": TOPIC},
        VALID,
        random.Random(0),
        teach,
    )
    sent = ex["sentiment"]
    # gold first, then "t fed" (row 3) and "t ipo" (row 5); "t oil" is not confident enough
    # and "t valid twin" is a validation text (after case/space folding): never trained on.
    assert sent.texts == ["s up", "s down", "s flat", "t fed", "t ipo"]
    assert sent.labels == [2, 0, 1, 3 % 3, 5 % 3]
    assert sent.counts == {"gold": 3, "augmented": 0, "pseudo": 2}
    assert sent.gold_labels == [2, 0, 1]
    assert sent.soft is None  # no distillation asked
    assert seen == [[*SENT.texts, *TOPIC.texts]]


def test_limit_and_soft_targets_stay_row_aligned() -> None:
    teacher = _teacher({"s up": 0.97, "s down": 0.97, "s flat": 0.97})
    ex = build_examples(
        _cfg(pseudo_label_threshold=0.9, pseudo_label_limit=2, distill_weight=0.5),
        {"sentiment": SENT, "topic": TOPIC},
        VALID,
        random.Random(1),
        lambda texts: teacher,
    )
    topic = ex["topic"]
    assert topic.counts == {"gold": 4, "augmented": 0, "pseudo": 2}
    assert topic.soft is not None
    assert topic.soft.shape == (6, 20)
    everything = [*SENT.texts, *TOPIC.texts]
    for text, row in zip(topic.texts, topic.soft, strict=True):
        assert torch.equal(row, teacher.soft["topic"][everything.index(text)])


def test_augmented_copies_take_their_originals_label() -> None:
    sent = LabelledTexts(
        "sentiment",
        ("$TSLA falls 5% https://t.co/a", "$KO rises 3% https://t.co/b"),
        (0, 2),
        "s.csv",
    )
    ex = build_examples(
        profile_config("quick").with_overrides(augment_ratio=1.0),
        {"sentiment": sent, "topic": TOPIC},
        VALID,
        random.Random(0),
    )
    s = ex["sentiment"]
    assert s.counts["augmented"] == 2
    assert [("falls" in t, y) for t, y in zip(s.texts[2:], s.labels[2:], strict=True)] == [
        (True, 0),
        (False, 2),
    ]


def test_teacher_options_need_teachers() -> None:
    with pytest.raises(Exception, match="need teachers"):
        profile_config("quick").with_overrides(distill_weight=0.5)
