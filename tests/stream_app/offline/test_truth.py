"""Ground-truth metrics on hand-built cases, plus invariants over random cases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream_app.offline.truth import (
    FiringAlert,
    TruthError,
    TruthEvent,
    evaluate,
    evaluate_kinds,
    events_from_marks,
    load_truth,
)

T0 = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)


def _m(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _alert(entity: str, fired: float, window: float = 15) -> FiringAlert:
    return FiringAlert(entity, _m(fired), _m(fired - window), _m(fired))


EVENTS = [
    TruthEvent("a", "ticker:AAPL", _m(0), _m(20)),
    TruthEvent("b", "ticker:TSLA", _m(100), _m(120)),
]


def test_hand_built_precision_recall_delay() -> None:
    alerts = [
        _alert("ticker:AAPL", 4),  # true, delay 4 min
        _alert("ticker:AAPL", 300),  # false: far after
        _alert("ticker:MSFT", 5),  # false: other ticker
        _alert("market", 6),  # out of scope
    ]
    m = evaluate(alerts, EVENTS, timedelta(minutes=5))
    assert (m.events, m.detected, m.recall) == (2, 1, 0.5)
    assert (m.firing_alerts_in_scope, m.true_positive_alerts) == (3, 1)
    assert m.precision == pytest.approx(1 / 3)
    assert m.alerts_out_of_scope == 1
    assert m.delay_median_seconds == m.delay_p90_seconds == 240.0
    assert [e["detected"] for e in m.per_event] == [True, False]


def test_tolerance_extends_recall_after_end_only() -> None:
    late = [_alert("ticker:TSLA", 124)]
    assert evaluate(late, EVENTS, timedelta(minutes=5)).detected == 1
    assert evaluate(late, EVENTS, timedelta(minutes=3)).detected == 0
    early = [_alert("ticker:TSLA", 99, window=1)]  # fired before the event started
    m = evaluate(early, EVENTS, timedelta(minutes=5))
    assert m.detected == 0
    assert m.true_positive_alerts == 1


def test_delays_median_and_p90() -> None:
    events = [TruthEvent(str(i), "ticker:X", _m(i * 100), _m(i * 100 + 30)) for i in range(10)]
    alerts = [_alert("ticker:X", i * 100 + (i + 1)) for i in range(10)]  # delays 1..10 min
    m = evaluate(alerts, events, timedelta(0))
    assert m.recall == 1.0
    assert m.precision == 1.0
    assert m.delay_median_seconds == 330.0
    assert m.delay_p90_seconds == pytest.approx(9.1 * 60)


def test_no_alerts_no_events() -> None:
    m = evaluate([], [], timedelta(0))
    assert m.recall is None
    assert m.precision is None
    assert m.delay_median_seconds is None


@given(
    st.lists(st.tuples(st.sampled_from(["ticker:A", "ticker:B", "market"]), st.integers(0, 500))),
    st.integers(0, 30),
)
def test_metrics_are_bounded_and_tolerance_monotone(raw: list[tuple[str, int]], tol: int) -> None:
    alerts = [_alert(e, t) for e, t in raw]
    events = [
        TruthEvent("1", "ticker:A", _m(50), _m(70)),
        TruthEvent("2", "ticker:B", _m(300), _m(310)),
    ]
    small = evaluate(alerts, events, timedelta(minutes=tol))
    big = evaluate(alerts, events, timedelta(minutes=tol + 10))
    for m in (small, big):
        assert 0 <= m.detected <= m.events
        assert 0 <= m.true_positive_alerts <= m.firing_alerts_in_scope
    assert big.detected >= small.detected
    assert big.true_positive_alerts >= small.true_positive_alerts


def test_events_from_marks_span_and_majority_entity() -> None:
    marks = [
        ("e1", _m(3), ["ticker:AAPL", "market"]),
        ("e1", _m(1), ["ticker:AAPL"]),
        ("e1", _m(9), ["ticker:MSFT"]),
    ]
    [ev] = events_from_marks(marks)
    assert (ev.entity, ev.start, ev.end, ev.kind) == ("ticker:AAPL", _m(1), _m(9), "negative")
    [storm] = events_from_marks([("storm-2-nflx", _m(1), ["ticker:NFLX"])])
    assert storm.kind == "storm"


KIND_EVENTS = [
    TruthEvent("negative-1-aapl", "ticker:AAPL", _m(0), _m(20), "negative"),
    TruthEvent("positive-2-tsla", "ticker:TSLA", _m(100), _m(120), "positive"),
    TruthEvent("volume-3-googl", "ticker:GOOGL", _m(200), _m(220), "volume"),
    TruthEvent("storm-4-nflx", "ticker:NFLX", _m(300), _m(310), "storm"),
]


def _kind_alert(entity: str, fired: float, kind: str) -> FiringAlert:
    return FiringAlert(entity, _m(fired), _m(fired - 15), _m(fired), kind)


def test_per_kind_precision_recall_and_storm_alerts() -> None:
    alerts = [
        _kind_alert("ticker:AAPL", 4, "negative"),  # right, delay 4 min
        _kind_alert("ticker:AAPL", 5, "volume"),  # right: a burst of stories is volume too
        _kind_alert("ticker:TSLA", 103, "positive"),  # right, delay 3 min
        _kind_alert("ticker:TSLA", 104, "negative"),  # wrong: that was a rally
        _kind_alert("ticker:GOOGL", 210, "volume"),  # right, delay 10 min
        _kind_alert("ticker:NFLX", 305, "negative"),  # a storm alerted: wrong, and counted
        _kind_alert("market", 306, "negative"),  # out of scope
    ]
    by_kind = evaluate_kinds(alerts, KIND_EVENTS, timedelta(minutes=5))
    neg, pos, vol = (by_kind.kinds[k] for k in ("negative", "positive", "volume"))
    assert (neg.events, neg.detected, neg.firing_alerts_in_scope, neg.true_positive_alerts) == (
        1, 1, 3, 1)  # fmt: skip
    assert neg.precision == pytest.approx(1 / 3)
    assert neg.alerts_out_of_scope == 1
    assert neg.delay_median_seconds == 240.0
    assert (pos.recall, pos.precision, pos.delay_median_seconds) == (1.0, 1.0, 180.0)
    assert (vol.events, vol.recall, vol.precision, vol.delay_median_seconds) == (1, 1.0, 1.0, 600.0)
    assert (by_kind.storms, by_kind.storm_alerts) == (1, 1)
    assert by_kind.per_storm == [
        {"event_id": "storm-4-nflx", "entity": "ticker:NFLX", "alerts": 1,
         "alert_kinds": ["negative"]}]  # fmt: skip
    assert by_kind.as_dict()["kinds"]["positive"]["kind"] == "positive"


def test_storms_are_never_a_detection_target() -> None:
    quiet = evaluate_kinds([], KIND_EVENTS, timedelta(minutes=5))
    assert quiet.kinds["negative"].events == 1  # the storm is not an event to detect
    assert quiet.storm_alerts == 0
    # without kinds every event is a negative one, as before issue 11
    assert evaluate([], EVENTS, timedelta(0)).events == 2


def test_load_truth_reads_kinds(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    event = {"entity": "ticker:A", "start": "2026-11-02T14:00:00Z", "end": "2026-11-02T14:20:00Z"}
    path.write_text(json.dumps([event, {**event, "kind": "storm"}]))
    assert [e.kind for e in load_truth(path)] == ["negative", "storm"]
    path.write_text(json.dumps([{**event, "kind": "crash"}]))
    with pytest.raises(TruthError, match="kind must be one of"):
        load_truth(path)


def test_load_truth_errors(tmp_path: Path) -> None:
    good = tmp_path / "t.json"
    good.write_text(
        json.dumps(
            {
                "events": [
                    {
                        "entity": "ticker:A",
                        "start": "2026-11-02T14:00:00Z",
                        "end": "2026-11-02T14:20:00Z",
                    }
                ]
            }
        )
    )
    [ev] = load_truth(good)
    assert ev.event_id == "event-1"
    assert ev.end - ev.start == timedelta(minutes=20)
    for bad in (
        "{",
        json.dumps({"events": [{"start": "2026-11-02T14:00:00Z"}]}),
        json.dumps([{"entity": "x", "start": "2026-11-02T14:00:00", "end": "2026-11-02T15:00Z"}]),
        json.dumps([{"entity": "x", "start": "2026-11-02T15:00Z", "end": "2026-11-02T14:00Z"}]),
    ):
        good.write_text(bad)
        with pytest.raises(TruthError):
            load_truth(good)
