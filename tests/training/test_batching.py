"""Epoch plans, LR schedule and class weights."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.batching import class_weights, linear_warmup_decay, plan_epoch, steps_per_epoch


@settings(deadline=None)
@given(
    st.lists(st.integers(1, 64), max_size=200),
    st.lists(st.integers(1, 64), max_size=200),
    st.integers(1, 17),
    st.integers(1, 5),
    st.integers(0, 2**16),
)
def test_plan_covers_every_example_once(
    a: list[int], b: list[int], batch_size: int, group: int, seed: int
) -> None:
    plan = plan_epoch({"sentiment": a, "topic": b}, batch_size, group, random.Random(seed))
    for task, lengths in (("sentiment", a), ("topic", b)):
        seen = [i for batch in plan if batch.task == task for i in batch.indices]
        assert sorted(seen) == list(range(len(lengths)))
    assert all(1 <= len(batch.indices) <= batch_size for batch in plan)
    assert len(plan) == sum(-(-len(x) // batch_size) for x in (a, b))


def test_length_grouping_reduces_padding() -> None:
    rng = random.Random(0)
    lengths = [rng.randint(5, 64) for _ in range(2000)]

    def padded(group: int) -> int:
        plan = plan_epoch({"t": lengths}, 32, group, random.Random(1))
        return sum(max(lengths[i] for i in b.indices) * len(b.indices) for b in plan)

    assert padded(50) < 0.8 * padded(1)


def test_tasks_are_interleaved_and_plan_is_seeded() -> None:
    sizes = {"sentiment": [10] * 320, "topic": [10] * 320}
    plan = plan_epoch(sizes, 32, 4, random.Random(7))
    first_half = {b.task for b in plan[: len(plan) // 2]}
    assert first_half == {"sentiment", "topic"}
    again = plan_epoch(sizes, 32, 4, random.Random(7))
    assert plan == again


def test_steps_per_epoch() -> None:
    assert steps_per_epoch([100, 50], 32, 1) == 4 + 2
    assert steps_per_epoch([100, 50], 32, 4) == 2


def test_linear_warmup_decay_shape() -> None:
    values = [linear_warmup_decay(s, 10, 100) for s in range(101)]
    assert values[0] > 0
    assert all(x < y for x, y in itertools.pairwise(values[:11]))
    assert max(values) == pytest.approx(1.0)
    assert all(x >= y for x, y in itertools.pairwise(values[10:]))
    assert values[100] == 0.0
    assert linear_warmup_decay(0, 0, 5) == 1.0


def test_class_weights() -> None:
    labels = [0] * 80 + [1] * 20
    assert class_weights(labels, 2, "none") == [1.0, 1.0]
    bal = class_weights(labels, 2, "balanced")
    assert bal[1] / bal[0] == pytest.approx(4.0)
    sq = class_weights(labels, 2, "sqrt")
    assert sq[1] / sq[0] == pytest.approx(2.0)
    for w in (bal, sq):
        assert sum(w[y] for y in labels) / len(labels) == pytest.approx(1.0)
    absent = class_weights([0, 0, 1], 3, "balanced")
    assert absent[2] == max(absent)
    with pytest.raises(ValueError, match="unknown class weighting"):
        class_weights(labels, 2, "inverse")
