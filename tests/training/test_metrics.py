"""Metrics agree with hand-computed cases and with sklearn on random inputs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support
from sklearn.metrics import confusion_matrix as sk_confusion

from training.metrics import classification_report, confusion_matrix


def test_hand_computed_case() -> None:
    # true: a a a b b c ; pred: a a b b c c
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 2, 2]
    rep = classification_report(y_true, y_pred, ["a", "b", "c"])
    assert rep.confusion == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert rep.accuracy == pytest.approx(4 / 6)
    a, b, c = rep.per_class["a"], rep.per_class["b"], rep.per_class["c"]
    assert (a.precision, a.recall, a.support) == (1.0, pytest.approx(2 / 3), 3)
    assert a.f1 == pytest.approx(0.8)
    assert (b.precision, b.recall, b.f1) == (0.5, 0.5, 0.5)
    assert (c.precision, c.recall) == (0.5, 1.0)
    assert c.f1 == pytest.approx(2 / 3)
    assert rep.macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert rep.weighted_f1 == pytest.approx((0.8 * 3 + 0.5 * 2 + 2 / 3) / 6)


def test_absent_class_counts_as_zero_in_macro_average() -> None:
    rep = classification_report([0, 0, 1], [0, 0, 1], ["a", "b", "never"])
    assert rep.accuracy == 1.0
    assert rep.per_class["never"].f1 == 0.0
    assert rep.macro_f1 == pytest.approx(2 / 3)


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="out of range"):
        confusion_matrix([0, 3], [0, 0], 3)
    with pytest.raises(ValueError, match="items"):
        confusion_matrix([0], [0, 1], 3)
    with pytest.raises(ValueError, match="no examples"):
        classification_report([], [], ["a", "b"])


pairs = st.integers(min_value=2, max_value=6).flatmap(
    lambda k: st.tuples(
        st.just(k),
        st.lists(st.tuples(st.integers(0, k - 1), st.integers(0, k - 1)), min_size=1, max_size=60),
    )
)


@settings(max_examples=150, deadline=None)
@given(pairs)
def test_matches_sklearn(case: tuple[int, list[tuple[int, int]]]) -> None:
    k, items = case
    y_true = [t for t, _ in items]
    y_pred = [p for _, p in items]
    labels = list(range(k))
    rep = classification_report(y_true, y_pred, [f"c{i}" for i in labels])
    assert rep.confusion == sk_confusion(y_true, y_pred, labels=labels).tolist()
    assert rep.accuracy == pytest.approx(accuracy_score(y_true, y_pred))
    for avg, ours in (("macro", rep.macro_f1), ("weighted", rep.weighted_f1)):
        expected = f1_score(y_true, y_pred, labels=labels, average=avg, zero_division=0)
        assert ours == pytest.approx(expected)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    for i in labels:
        m = rep.per_class[f"c{i}"]
        assert (m.precision, m.recall, m.f1, m.support) == (
            pytest.approx(p[i]),
            pytest.approx(r[i]),
            pytest.approx(f[i]),
            s[i],
        )
