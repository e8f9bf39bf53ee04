"""Model monitor: its Prometheus series against counts made by hand from the same calls,
and drift changes turned into model_drift alerts."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
from prometheus_client import CollectorRegistry

from models.labels import SENTIMENT_LABELS, TOPIC_LABELS
from models.predictor import BatchStats, Prediction
from models.reference import ReferenceDistribution, build_head_reference
from stream_app.schemas import Alert
from stream_app.service.model_monitor import DRIFT_ENTITY, DriftAlertPublisher, ModelMonitor


def _pred(rng: random.Random, sentiment: str | None = None, topic: str | None = None) -> Prediction:
    s = sentiment or rng.choice(SENTIMENT_LABELS)
    conf = rng.uniform(0.34, 1.0)
    rest = (1 - conf) / 2
    probs = {label: (conf if label == s else rest) for label in SENTIMENT_LABELS}
    return Prediction(s, probs, topic or rng.choice(TOPIC_LABELS), rng.uniform(0.05, 1.0), "v1")


def _reference(rng: random.Random, n: int = 3000) -> ReferenceDistribution:
    preds = [_pred(rng) for _ in range(n)]
    return ReferenceDistribution(
        source="test",
        heads={
            "sentiment": build_head_reference(
                [p.sentiment for p in preds],
                [p.sentiment_probs[p.sentiment] for p in preds],
                SENTIMENT_LABELS,
            ),
            "topic": build_head_reference(
                [p.topic for p in preds], [p.topic_prob for p in preds], TOPIC_LABELS
            ),
        },
    )


def _monitor(
    reference: ReferenceDistribution | None, **kw: int | float
) -> tuple[ModelMonitor, CollectorRegistry]:
    registry = CollectorRegistry()
    monitor = ModelMonitor(
        registry,
        model_version="v1",
        sentiment_labels=SENTIMENT_LABELS,
        topic_labels=TOPIC_LABELS,
        reference=reference,
        **kw,  # type: ignore[arg-type]
    )
    return monitor, registry


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_series_count_exactly_what_the_predictor_reported() -> None:
    rng = random.Random(0)
    monitor, registry = _monitor(None)
    preds: list[Prediction] = []
    tokens: list[int] = []
    truncated: list[bool] = []
    unknown: list[int] = []
    for size in (1, 7, 64, 3):
        batch = [_pred(rng) for _ in range(size)]
        stats = BatchStats(
            tokens=tuple(rng.randint(2, 128) for _ in batch),
            truncated=tuple(rng.random() < 0.1 for _ in batch),
            unknown=tuple(rng.randint(0, 2) for _ in batch),
        )
        monitor.observe(batch, stats)
        preds += batch
        tokens += stats.tokens
        truncated += stats.truncated
        unknown += stats.unknown
    for label, n in Counter(p.sentiment for p in preds).items():
        assert (
            _value(registry, "finpulse_model_predictions_total", head="sentiment", label=label) == n
        )
    for label, n in Counter(p.topic for p in preds).items():
        assert _value(registry, "finpulse_model_predictions_total", head="topic", label=label) == n
    assert _value(registry, "finpulse_model_texts_total") == len(preds)
    assert _value(registry, "finpulse_model_tokens_total") == sum(tokens)
    assert _value(registry, "finpulse_model_unknown_tokens_total") == sum(unknown)
    assert _value(registry, "finpulse_model_truncated_total") == sum(truncated)
    assert _value(registry, "finpulse_model_input_tokens_count") == len(tokens)
    assert _value(registry, "finpulse_model_input_tokens_bucket", le="32.0") == sum(
        t <= 32 for t in tokens
    )
    sent_conf = [p.sentiment_probs[p.sentiment] for p in preds]
    assert _value(registry, "finpulse_model_confidence_sum", head="sentiment") == pytest.approx(
        sum(sent_conf)
    )
    assert _value(registry, "finpulse_model_confidence_bucket", head="topic", le="0.5") == sum(
        p.topic_prob <= 0.5 for p in preds
    )
    assert _value(registry, "finpulse_model_info", model_version="v1") == 1
    assert monitor.drain() == []  # no reference: no drift monitoring


def test_label_sets_are_bounded_by_the_model() -> None:
    monitor, registry = _monitor(None)
    odd = Prediction("mixed", {"mixed": 1.0}, "Unknown topic", 0.9, "v1")
    monitor.observe([odd], BatchStats((5,), (False,), (0,)))
    names = {
        dict(s.labels).get("label")
        for metric in registry.collect()
        if metric.name == "finpulse_model_predictions"
        for s in metric.samples
    }
    assert names <= set(SENTIMENT_LABELS) | set(TOPIC_LABELS)


def test_a_shift_becomes_one_firing_then_one_resolved_model_drift_alert() -> None:
    rng = random.Random(1)
    monitor, registry = _monitor(
        _reference(rng), drift_psi=0.2, drift_window=300, drift_check_every=50
    )
    alerts: list[Alert] = []

    def feed(make: object, n: int) -> None:
        for _ in range(n // 50):
            batch = [make() for _ in range(50)]  # type: ignore[operator]
            monitor.observe(batch, BatchStats((10,) * 50, (False,) * 50, (0,) * 50))
            alerts.extend(monitor.drain())

    feed(lambda: _pred(rng), 600)
    assert alerts == []
    feed(lambda: _pred(rng, "negative", "Macro"), 600)
    feed(lambda: _pred(rng), 900)
    assert [(a.kind, a.state, a.entity) for a in alerts] == [
        ("model_drift", "firing", DRIFT_ENTITY),
        ("model_drift", "resolved", DRIFT_ENTITY),
    ]
    fired, resolved = alerts
    assert fired.episode == resolved.episode == 1
    assert fired.alert_id != resolved.alert_id
    assert fired.score > 0.2 > 0.15 > resolved.score
    assert fired.threshold == 0.2
    assert fired.total_count == 300
    assert fired.negative_share > fired.baseline_share
    assert fired.window_start <= fired.window_end
    assert fired.model_version == "v1"
    assert _value(registry, "finpulse_model_drift_firing") == 0
    assert _value(registry, "finpulse_model_drift_psi", head="sentiment", kind="labels") < 0.15


class _FlakyBroker:
    """A publisher whose first ``failures`` sends are refused, then acknowledges."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    async def send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None = None
    ) -> Awaitable[None]:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker down")
        self.sent.append((topic, key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_alerts_the_broker_refused_are_sent_on_a_later_flush_in_order() -> None:
    rng = random.Random(2)
    monitor, _ = _monitor(_reference(rng), drift_psi=0.2, drift_window=300, drift_check_every=50)
    broker = _FlakyBroker(failures=2)
    out = DriftAlertPublisher(monitor, broker, "alerts")

    def feed(make: Callable[[], Prediction], n: int) -> None:
        for _ in range(n // 50):
            batch = [make() for _ in range(50)]
            monitor.observe(batch, BatchStats((10,) * 50, (False,) * 50, (0,) * 50))

    feed(lambda: _pred(rng), 600)
    feed(lambda: _pred(rng, "negative", "Macro"), 300)
    assert await out.flush() == 0  # refused: kept
    feed(lambda: _pred(rng), 900)  # back to normal: the resolve queues behind the firing
    assert await out.flush() == 0  # refused again
    assert await out.flush() == 2
    assert await out.flush() == 0
    alerts = [Alert.model_validate_json(v) for _, _, v in broker.sent]
    assert [(a.state, a.episode) for a in alerts] == [("firing", 1), ("resolved", 1)]
    assert {(t, k) for t, k, _ in broker.sent} == {("alerts", DRIFT_ENTITY.encode())}
