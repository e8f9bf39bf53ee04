"""``--assert``: parsing, reasons, and what happens when a metric has no source."""

from __future__ import annotations

from typing import Any

import pytest

from stream_app.offline.gate import (
    GateError,
    check,
    known_metrics,
    metric_values,
    parse_conditions,
)


def summary(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "alerts": {"total": 7, "firing": 4, "resolved": 3},
        "dead_lettered": {"invalid_json": 1, "late_event": 2},
        "late_events": 2,
    }
    return {**base, **extra}


TRUTH = {
    "events": 4, "detected": 3, "recall": 0.75, "precision": 0.9,
    "delay_median_seconds": 120.0, "delay_p90_seconds": 420.0,
}  # fmt: skip


def test_conditions_parse_with_spaces_units_and_repeated_flags() -> None:
    got = parse_conditions(["precision>=0.8, recall >= 0.9", "delay_p90<=300s,hit_rate_1h>55%"])
    assert [(c.metric, c.op, c.threshold) for c in got] == [
        ("precision", ">=", 0.8),
        ("recall", ">=", 0.9),
        ("delay_p90", "<=", 300.0),
        ("hit_rate_1h", ">", 0.55),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("recall=>0.9", "expected METRIC OP NUMBER"),
        ("recall>=", "expected METRIC OP NUMBER"),
        ("recall>=0.9,", "empty condition"),
        ("recall 0.9", "expected METRIC OP NUMBER"),
        ("recall>=abc", "expected METRIC OP NUMBER"),
        ("recall>=0.9s", "only fits delay_"),
        ("delay_p90<=30%", "only fits rates"),
        ("recal>=0.9", "unknown metric 'recal' \\(did you mean recall\\?\\); known metrics: "),
    ],
)
def test_malformed_conditions_and_unknown_metrics_are_clear_errors(text: str, message: str) -> None:
    with pytest.raises(GateError, match=message):
        parse_conditions([text])


def test_unknown_metric_error_lists_every_known_metric() -> None:
    with pytest.raises(GateError) as err:
        parse_conditions(["nonsense>1"])
    for name in ("precision", "recall", "delay_p90", "hit_rate_1h", "recall_positive",
                 "mean_return_1d_negative", "alerts"):  # fmt: skip
        assert name in known_metrics()
        assert name in str(err.value)


def test_failures_give_the_value_and_the_broken_relation() -> None:
    conditions = parse_conditions(
        ["precision>=0.8,recall>=0.9,delay_p90<=300,alerts==4,dead_lettered<3"]
    )
    outcomes = check(conditions, summary(truth=TRUTH))
    assert [o.ok for o in outcomes] == [True, False, False, True, False]
    assert [o.reason() for o in outcomes if not o.ok] == [
        "recall 0.75 < 0.9",
        "delay_p90 420 > 300",
        "dead_lettered 3 >= 3",
    ]


def test_a_metric_the_run_could_not_compute_fails() -> None:
    truth = {**TRUTH, "precision": None}
    (outcome,) = check(parse_conditions(["precision>=0.8"]), summary(truth=truth))
    assert not outcome.ok
    assert outcome.reason().startswith("precision n/a")


def test_a_metric_without_its_source_is_an_error_not_a_failure() -> None:
    with pytest.raises(GateError, match="needs ground truth"):
        check(parse_conditions(["recall>=0.9"]), summary())
    with pytest.raises(GateError, match="needs a price file"):
        check(parse_conditions(["hit_rate_1h>=0.5"]), summary(truth=TRUTH))


def test_per_kind_truth_and_price_metrics_are_read_from_their_blocks() -> None:
    by_kind = {
        "kinds": {
            "negative": {**TRUTH, "recall": 1.0},
            "positive": {**TRUTH, "recall": 0.5, "precision": 0.6},
        },
        "storm_alerts": 0,
    }
    group = {
        "alerts": 3, "priced": 2, "hit_rate": 0.5, "mean_return": -0.01,
        "median_return": -0.02, "mean_abs_return": 0.02,
        "baseline": {"hit_rate": 0.45}, "edge": {"hit_rate": 0.05},
    }  # fmt: skip
    prices = {
        "groups": {
            "negative": {"1h": group},
            "directional": {"1h": {**group, "hit_rate": 0.6}},
        }
    }
    values = metric_values(summary(truth=TRUTH, truth_by_kind=by_kind, prices=prices))
    assert values["recall"] == 0.75  # summary.truth
    assert values["recall_negative"] == 1.0
    assert values["recall_positive"] == 0.5
    assert values["precision_positive"] == 0.6
    assert values["recall_volume"] is None
    assert values["storm_alerts"] == 0
    assert values["hit_rate_1h"] == 0.6
    assert values["hit_rate_1h_negative"] == 0.5
    assert values["mean_return_1h_negative"] == -0.01
    assert values["hit_rate_edge_1h"] == 0.05
    assert values["baseline_hit_rate_1h"] == 0.45
    assert values["priced_alerts_1h"] == 2
    assert values["hit_rate_5m"] is None  # horizon not measured
