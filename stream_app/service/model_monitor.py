"""Watching the model in production: prediction and input series, and drift alerts.

The worker hangs one ``ModelMonitor`` on its predictor (``Predictor.observer``): after
every scoring call, in the model thread, it gets the predictions and what the tokenizer
saw, and updates (all label sets bounded: the model's own labels, two heads, nothing
per entity or per text):

=====================================  =====================================================
``finpulse_model_predictions{head,label}``  predictions by label (3 sentiment + 20 topics)
``finpulse_model_confidence{head}``         histogram of the top-label probability
``finpulse_model_input_tokens``             histogram of tokens per text (both heads read
                                            the same input, so one series, not one per head)
``finpulse_model_texts``                    texts scored
``finpulse_model_truncated``                texts cut at ``max_length`` tokens / ``max_chars``
``finpulse_model_tokens``                   tokens scored ...
``finpulse_model_unknown_tokens``           ... of which the tokenizer's unknown token
``finpulse_model_drift_psi{head,kind}``     PSI of labels / confidence vs the reference
``finpulse_model_drift_firing``             1 while a ``model_drift`` alert is firing
``finpulse_model_info{model_version}``      1, to join the series above to a model
=====================================  =====================================================

Truncation rate = truncated / texts; unknown-token rate = unknown_tokens / tokens (as
PromQL ``rate()`` ratios). Cost per call: one counter increment per distinct label, one
histogram observation per text and head, and the drift window's O(1) update; the PSI is
computed every ``check_every`` predictions (``stream_app/core/drift.py``). Measured on
the worker's 64-text batches it is well under 1 % of the forward pass (BENCHMARKS.md).

Drift changes are queued here; a Faust timer (``install_drift_alerts``) drains them on
the event loop every second and publishes each as an ``Alert`` of kind ``model_drift``
(entity ``model``) on the alerts topic, keeping what the broker did not acknowledge for
the next tick (``DriftAlertPublisher``). Nothing in the score stage changes: the predictor
observer and the timer are the whole hook. Drift is processing-time monitoring, not
part of the exactly-once record path: a worker that dies between a change and its
publication loses that alert, and a restarted worker starts an empty window. With
several workers each watches its own partitions and publishes its own episodes.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter as Tally
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stream_app.core.drift import DriftChange, DriftMonitor, LivePrediction
from stream_app.schemas import Alert, Severity, alert_id

if TYPE_CHECKING:
    from models.predictor import BatchStats, Prediction
    from models.reference import ReferenceDistribution
    from stream_app.config import Settings
    from stream_app.service.batches import Publisher

__all__ = [
    "DRIFT_ENTITY",
    "DriftAlertPublisher",
    "ModelMonitor",
    "drift_alert",
    "install_drift_alerts",
    "watch_model",
]

log = logging.getLogger(__name__)
DRIFT_ENTITY = "model"

_CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
_TOKEN_BUCKETS = (4, 8, 16, 24, 32, 48, 64, 96, 128, 256, 512)


class ModelMonitor:
    """Prometheus series for one predictor, plus the drift monitor (when a reference exists)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        model_version: str,
        sentiment_labels: Sequence[str],
        topic_labels: Sequence[str],
        reference: ReferenceDistribution | None,
        drift_psi: float = 0.2,
        drift_window: int = 1000,
        drift_check_every: int = 100,
    ) -> None:
        r = registry
        predictions = Counter(
            "finpulse_model_predictions", "Predictions by head and label", ["head", "label"],
            registry=r,
        )  # fmt: skip
        # Children resolved once: .labels() takes a lock and a dict lookup per call.
        self._by_label = {
            "sentiment": {
                x: predictions.labels(head="sentiment", label=x) for x in sentiment_labels
            },
            "topic": {x: predictions.labels(head="topic", label=x) for x in topic_labels},
        }
        confidence = Histogram(
            "finpulse_model_confidence", "Top-label probability (after temperature), by head",
            ["head"], buckets=_CONFIDENCE_BUCKETS, registry=r,
        )  # fmt: skip
        self._confidence = {h: confidence.labels(head=h) for h in ("sentiment", "topic")}
        self._tokens_hist = Histogram(
            "finpulse_model_input_tokens", "Tokens per scored text ([CLS]/[SEP] included)",
            buckets=_TOKEN_BUCKETS, registry=r,
        )  # fmt: skip
        self._texts = Counter("finpulse_model_texts", "Texts scored", registry=r)
        self._truncated = Counter(
            "finpulse_model_truncated", "Texts cut at max_length tokens or max_chars", registry=r
        )
        self._tokens = Counter("finpulse_model_tokens", "Tokens scored", registry=r)
        self._unknown = Counter(
            "finpulse_model_unknown_tokens", "Scored tokens that were the unknown token", registry=r
        )
        psi = Gauge(
            "finpulse_model_drift_psi", "PSI of the live window vs the model's reference",
            ["head", "kind"], registry=r,
        )  # fmt: skip
        self._psi = {
            f"{h}.{k}": psi.labels(head=h, kind=k)
            for h in ("sentiment", "topic")
            for k in ("labels", "confidence")
        }
        self._firing = Gauge(
            "finpulse_model_drift_firing", "1 while a model_drift alert is firing", registry=r
        )
        info = Gauge("finpulse_model_info", "The model this worker scores with", ["model_version"],
                     registry=r)  # fmt: skip
        info.labels(model_version=model_version).set(1)
        self.drift = (
            DriftMonitor(
                reference, threshold=drift_psi, window=drift_window, check_every=drift_check_every
            )
            if reference is not None
            else None
        )
        self.model_version = model_version
        self._pending: list[tuple[DriftChange, datetime, float, float]] = []
        self._batches: deque[tuple[datetime, int]] = deque()  # (seen at, predictions)
        self._in_window = 0
        self._lock = threading.Lock()
        self._episode = 0  # drift episodes of this process, as alerts count them
        self._episode_start: datetime | None = None
        self._peak: Severity = "medium"

    def observe(self, predictions: Sequence[Prediction], stats: BatchStats) -> None:
        """``Predictor.observer``: runs in the model thread after each scoring call."""
        for head, tally in (
            ("sentiment", Tally(p.sentiment for p in predictions)),
            ("topic", Tally(p.topic for p in predictions)),
        ):
            children = self._by_label[head]
            for label, count in tally.items():
                child = children.get(label)
                if child is not None:
                    child.inc(count)
        live = [
            LivePrediction(p.sentiment, p.sentiment_probs[p.sentiment], p.topic, p.topic_prob)
            for p in predictions
        ]
        for p in live:
            self._confidence["sentiment"].observe(p.sentiment_confidence)
            self._confidence["topic"].observe(p.topic_confidence)
        for n in stats.tokens:
            self._tokens_hist.observe(n)
        self._texts.inc(len(stats.tokens))
        self._truncated.inc(sum(stats.truncated))
        self._tokens.inc(sum(stats.tokens))
        self._unknown.inc(sum(stats.unknown))
        if self.drift is None:
            return
        with self._lock:
            self._remember_batch(len(live))
            self.drift.observe(live)
            change = self.drift.check()
            if self.drift.last_psi:
                for key, value in self.drift.last_psi.items():
                    self._psi[key].set(value)
            if change is not None:
                self._firing.set(1 if change.state == "firing" else 0)
                window_start = self._batches[0][0]
                live_negative = self.drift.share("sentiment", "negative")
                ref_negative = self.drift.reference_share("sentiment", "negative")
                self._pending.append((change, window_start, live_negative, ref_negative))
                log.warning(
                    "model drift %s: PSI %.3f (%s) threshold %.3f; all: %s",
                    change.state, change.score, change.worst, change.threshold,
                    {k: round(v, 3) for k, v in change.psi.items()},
                )  # fmt: skip

    def _remember_batch(self, n: int) -> None:
        """When the predictions now in the window were seen (for the alert's window_start)."""
        self._batches.append((datetime.now(UTC), n))
        self._in_window += n
        while self._batches and self._in_window - self._batches[0][1] >= self.drift_window:
            self._in_window -= self._batches.popleft()[1]

    @property
    def drift_window(self) -> int:
        return self.drift.window if self.drift is not None else 0

    def drain(self) -> list[Alert]:
        """The drift changes since the last call, as ``model_drift`` alerts, oldest first."""
        with self._lock:
            pending, self._pending = self._pending, []
        alerts = []
        for change, window_start, live_negative, ref_negative in pending:
            if change.state == "firing":
                self._episode += 1
                self._episode_start = datetime.now(UTC)
                self._peak = _severity(change)
            alerts.append(
                drift_alert(
                    change,
                    model_version=self.model_version,
                    episode=max(1, self._episode),
                    episode_start=self._episode_start or datetime.now(UTC),
                    window_start=window_start,
                    now=datetime.now(UTC),
                    negative_share=live_negative,
                    baseline_share=ref_negative,
                    peak=self._peak,
                )
            )
        return alerts


def _severity(change: DriftChange) -> Severity:
    """PSI against the threshold: < 2x medium, < 4x high, else critical."""
    ratio = change.score / change.threshold
    return "medium" if ratio < 2 else "high" if ratio < 4 else "critical"


def drift_alert(
    change: DriftChange,
    *,
    model_version: str,
    episode: int,
    episode_start: datetime,
    window_start: datetime,
    now: datetime,
    negative_share: float,
    baseline_share: float,
    peak: Severity,
) -> Alert:
    """The ``Alert`` of one drift change: entity ``model``, kind ``model_drift``.

    ``score`` is the largest PSI and ``threshold`` FINPULSE_DRIFT_PSI; the counts describe
    the live window (its size, its negative predictions) and ``baseline_share`` is the
    reference's negative share, so a consumer sees at a glance which way sentiment moved.
    Times are processing times (drift has no event time).
    """
    start_ms = int(episode_start.timestamp() * 1000)
    return Alert(
        alert_id=alert_id(DRIFT_ENTITY, episode, start_ms, change.state, kind="model_drift"),
        kind="model_drift",
        state=change.state,
        entity=DRIFT_ENTITY,
        severity=_severity(change) if change.state == "firing" else peak,
        peak_severity=peak,
        episode=episode,
        episode_start=episode_start,
        window_start=window_start,
        window_end=now,
        negative_count=round(negative_share * change.window),
        total_count=change.window,
        negative_share=negative_share,
        baseline_share=baseline_share,
        score=change.score,
        threshold=change.threshold,
        count=change.window,
        share=negative_share,
        repeats=0,  # drift counts predictions, not stories
        model_version=model_version,
        fired_at=now,
        emitted_at=now,
    )


def watch_model(
    settings: Settings, predictor: Any, registry: CollectorRegistry
) -> ModelMonitor | None:
    """Hang a ``ModelMonitor`` on ``predictor`` (None for predictors without an observer)."""
    if not hasattr(predictor, "observer"):
        return None
    reference = getattr(predictor, "reference", None)
    if reference is None:
        log.warning(
            "model %s has no reference.json: drift is not monitored", predictor.model_version
        )
    monitor = ModelMonitor(
        registry,
        model_version=str(predictor.model_version),
        sentiment_labels=predictor.sentiment_labels,
        topic_labels=predictor.topic_labels,
        reference=reference,
        drift_psi=settings.drift_psi,
        drift_window=settings.drift_window,
        drift_check_every=settings.drift_check_every,
    )
    predictor.observer = monitor.observe
    return monitor


class DriftAlertPublisher:
    """Publishes a monitor's drift alerts on the alerts topic, in order, none dropped.

    ``flush`` (the Faust timer's body) drains the monitor into a backlog and sends from its
    head; a send or acknowledgement that fails leaves that alert and the ones after it in
    the backlog for the next flush (the broker being down must not lose a drift alert, and
    a resolve must never overtake its firing). Alert ids are deterministic, so a resend
    after an acknowledgement that was lost in flight is a duplicate consumers drop.
    """

    def __init__(self, monitor: ModelMonitor, publisher: Publisher, topic: str) -> None:
        self.monitor = monitor
        self.publisher = publisher
        self.topic = topic
        self.backlog: deque[Alert] = deque()

    async def flush(self) -> int:
        """Send what is due; returns how many alerts were acknowledged."""
        self.backlog.extend(self.monitor.drain())
        sent = 0
        while self.backlog:
            alert = self.backlog[0]
            try:
                ack = await self.publisher.send(
                    self.topic, alert.entity.encode(), alert.model_dump_json().encode()
                )
                await ack
            except Exception as exc:  # retried on the next flush, in order
                log.warning(
                    "model_drift %s alert not published (%d waiting): %s",
                    alert.state, len(self.backlog), exc,
                )  # fmt: skip
                break
            self.backlog.popleft()
            sent += 1
        return sent


def install_drift_alerts(
    app: Any, monitor: ModelMonitor | None, publisher: Publisher, topic: str
) -> DriftAlertPublisher | None:
    """A 1-second Faust timer that publishes the monitor's drift alerts on ``topic``."""
    if monitor is None or monitor.drift is None:
        return None
    out = DriftAlertPublisher(monitor, publisher, topic)

    @app.timer(interval=1.0, name="finpulse.model_drift")
    async def publish_drift_alerts() -> None:
        await out.flush()

    return out
