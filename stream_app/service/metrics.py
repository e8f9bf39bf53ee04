"""The Prometheus metrics the worker exposes on ``/metrics``.

Each ``Metrics`` owns its own ``CollectorRegistry`` instead of the process-global one,
so several apps (tests, the demo) can live in one process without duplicate-name errors,
and ``/metrics`` shows exactly this worker's series. Label values are bounded sets
(dead-letter reasons, alert states, agent names, topic partitions): no ids, no entities.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

# Micro-batches are 1..Settings.batch_size (<= 4096) records.
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
# CPU inference of a batch: milliseconds (GPU) to seconds (a cold int8 CPU batch).
_INFERENCE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# End-to-end: dominated by batch_max_wait and inference; replays of old data are huge.
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600)

LagReader = Callable[[], Mapping[tuple[str, int], int]]


class Metrics:
    """All series of one worker; ``render()`` is the ``/metrics`` body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.records_in = Counter(
            "finpulse_records_in", "News records consumed from the input topic", registry=r
        )
        self.scored = Counter(
            "finpulse_scored", "News records scored and published to news.scored", registry=r
        )
        self.dead_letters = Counter(
            "finpulse_dead_letters",
            "Records sent to the dead-letter topic, by reason",
            ["reason"],
            registry=r,
        )
        self.entity_events = Counter(
            "finpulse_entity_events", "Entity events aggregated into windows", registry=r
        )
        self.late_events = Counter(
            "finpulse_late_events",
            "Entity events older than the allowed lateness (each copy counted once)",
            registry=r,
        )
        self.duplicate_events = Counter(
            "finpulse_duplicate_events",
            "Entity events whose id was already counted (another copy upstream), dropped",
            registry=r,
        )
        self.repeats = Counter(
            "finpulse_story_repeats",
            "Entity events whose headline repeats a recent story of the entity (not counted "
            "by the detectors)",
            registry=r,
        )
        self.alerts = Counter(
            "finpulse_alerts", "Alerts published, by state and kind", ["state", "kind"], registry=r
        )
        self.events_held = Gauge(
            "finpulse_events_held",
            "Entity events waiting for the event-time watermark (not yet counted)",
            registry=r,
        )
        self.out_of_order = Counter(
            "finpulse_events_out_of_order",
            "Entity events that arrived below the released watermark (their partition had "
            "been skipped as idle): applied at once, not in event-time order",
            registry=r,
        )
        self.watermark_lag = Gauge(
            "finpulse_watermark_lag_seconds",
            "Wall clock minus the event-time watermark, per entity-topic partition",
            ["partition"],
            registry=r,
        )
        self.batch_size = Histogram(
            "finpulse_batch_size",
            "Records per micro-batch, by agent",
            ["agent"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "finpulse_inference_seconds",
            "Wall time of one scoring call (model forward over a micro-batch)",
            buckets=_INFERENCE_BUCKETS,
            registry=r,
        )
        self.publish_to_scored_seconds = Histogram(
            "finpulse_publish_to_scored_seconds",
            "Scored-record publish time minus the input record's Kafka timestamp",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_retries = Counter(
            "finpulse_batch_retries",
            "Micro-batches retried after a broker or Redis error, by agent",
            ["agent"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "finpulse_consumer_lag",
            "High-water mark minus committed offset, per assigned partition",
            ["topic", "partition"],
            registry=r,
        )
        self._lag_reader: LagReader | None = None
        self._lag_labels: set[tuple[str, str]] = set()

    def set_lag_reader(self, reader: LagReader) -> None:
        """The consumer lag is sampled at scrape time from the live consumer."""
        self._lag_reader = reader

    def dead_lettered(self, reasons: Iterable[str]) -> None:
        for reason in reasons:
            self.dead_letters.labels(reason=reason).inc()

    def _refresh_lag(self) -> None:
        if self._lag_reader is None:
            return
        try:
            lags = self._lag_reader()
        except Exception:  # a consumer mid-rebalance must not break /metrics
            return
        labels = {(topic, str(partition)) for topic, partition in lags}
        for stale in self._lag_labels - labels:
            self.consumer_lag.remove(*stale)
        for (topic, partition), lag in lags.items():
            self.consumer_lag.labels(topic=topic, partition=str(partition)).set(lag)
        self._lag_labels = labels

    def render(self) -> bytes:
        """Prometheus text exposition of every series of this worker."""
        self._refresh_lag()
        return generate_latest(self.registry)
