"""Backtest: --set parsing, batch-size independence, outputs on the tiny real model."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from models.predictor import Prediction
from stream_app.config import Settings
from stream_app.offline.backtest import BacktestError, apply_overrides, backtest, run_backtest
from stream_app.offline.feeds import LoadedFeed, load_feed
from stream_app.offline.prediction_cache import CachingPredictor, PredictionCache
from stream_app.schemas import Alert
from tests.support.stories import story

BASE = Settings()  # type: ignore[call-arg]
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_set_overrides_apply_nested_keys() -> None:
    s = apply_overrides(BASE, ["detector.fire_z=4", "window.window_seconds=600", "batch_size=8"])
    assert s.detector.fire_z == 4.0
    assert s.window.window_seconds == 600
    assert s.batch_size == 8
    assert apply_overrides(BASE, []) is BASE


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("detector.fire_z", "KEY=VALUE"),
        ("=4", "KEY=VALUE"),
        ("detector.nope=1", "unknown setting"),
        ("nope=1", "unknown setting"),
        ("detector=1", "unknown setting"),
        ("detector.fire_z=abc", "detector.fire_z"),
        ("detector.resolve_z=9", "hysteresis"),
        ("window.window_seconds=61", "multiple of bucket_seconds"),
    ],
)
def test_bad_set_is_a_clear_error(pair: str, message: str) -> None:
    with pytest.raises(BacktestError, match=message):
        apply_overrides(BASE, [pair])


class KeywordPredictor:
    """Negative exactly when the text says 'crash': alerts follow from the feed alone."""

    model_version = "keyword-v1"

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        out = []
        for t in texts:
            neg = 0.9 if "crash" in t else 0.05
            out.append(
                Prediction(
                    sentiment="negative" if neg > 0.5 else "neutral",
                    sentiment_probs={"negative": neg, "neutral": 1 - neg - 0.01, "positive": 0.01},
                    topic="Markets",
                    topic_prob=0.5,
                    model_version=self.model_version,
                )
            )
        return out


def _burst_feed(path: Path) -> Path:
    rows = []
    for i in range(180):  # three quiet hours, one item a minute, shuffled below
        rows.append({"id": f"q{i}", "headline": story(1000 + i, "$AAA steady"),
                     "published_at": (T0 + timedelta(minutes=i)).isoformat()})  # fmt: skip
    for i in range(12):  # then a burst of crash news within six minutes
        rows.append(
            {
                "id": f"b{i}",
                "headline": story(i, "$AAA crash"),
                "event_id": "crash",
                "published_at": (T0 + timedelta(minutes=180, seconds=30 * i)).isoformat(),
            }
        )
    for i in range(60):  # and a quiet hour after
        rows.append({"id": f"a{i}", "headline": story(2000 + i, "$AAA calm"),
                     "published_at": (T0 + timedelta(minutes=190 + i)).isoformat()})  # fmt: skip
    rows = rows[::2] + rows[1::2]  # out of order on purpose: the backtest sorts
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{not json\n")
    return path


def _keys(alerts: Sequence[Alert]) -> list[dict[str, object]]:
    return [a.parity_key() for a in alerts]


class ThreadRecordingPredictor(KeywordPredictor):
    """Records which thread each model call ran in."""

    def __init__(self) -> None:
        self.threads: list[str] = []

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        self.threads.append(threading.current_thread().name)
        return super().predict(texts)


def test_cold_partly_warm_and_warm_cache_runs_agree(tmp_path: Path) -> None:
    """Warm batches are scored inline, the rest in the model thread: same results."""
    feed = load_feed(_burst_feed(tmp_path / "f.jsonl"), BASE)
    reference = run_backtest(feed, BASE, KeywordPredictor(), batch_size=16)
    cache = PredictionCache.in_dir(tmp_path / "cache")
    half = LoadedFeed(feed.items[: len(feed.items) // 2], feed.bad, feed.filtered)
    inner = ThreadRecordingPredictor()
    runs = []
    for f in (half, feed, feed):  # warms the first half, then the rest, then nothing
        predictor = CachingPredictor(cache, inner.model_version, lambda: inner)
        runs.append((run_backtest(f, BASE, predictor, batch_size=16), predictor.misses))
    (_, cold_misses), (partly, partly_misses), (warm, warm_misses) = runs
    assert cold_misses > 0
    assert partly_misses > 0
    assert warm_misses == 0
    for run in (partly, warm):
        assert _keys(run.alerts) == _keys(reference.alerts)
        assert run.buckets == reference.buckets
        assert run.scored == reference.scored
    # after the first miss, the model ran in its own thread (overlapped with aggregation)
    assert any(name.startswith("backtest-model") for name in inner.threads)


def test_alerts_do_not_depend_on_batch_size(tmp_path: Path) -> None:
    feed = load_feed(_burst_feed(tmp_path / "f.jsonl"), BASE)
    runs = [run_backtest(feed, BASE, KeywordPredictor(), batch_size=n) for n in (1, 7, 500)]
    assert _keys(runs[0].alerts) == _keys(runs[1].alerts) == _keys(runs[2].alerts)
    # model batches and aggregator batches cut independently
    for n, agg in ((7, 1), (7, 13), (1, 5000)):
        other = run_backtest(feed, BASE, KeywordPredictor(), batch_size=n, aggregate_batch_size=agg)
        assert _keys(other.alerts) == _keys(runs[0].alerts)
        assert other.buckets == runs[0].buckets
    firing = [a for a in runs[0].alerts if a.state == "firing" and a.entity == "ticker:AAA"]
    assert len(firing) == 1
    burst_start = T0 + timedelta(minutes=180)
    assert burst_start <= firing[0].fired_at <= burst_start + timedelta(minutes=6)
    assert runs[0].dead_lettered == {"invalid_json": 1}
    assert runs[0].scored == 252


def _backtest(feed: Path, model: Path, out: Path, cache: Path, overrides: list[str]) -> Any:
    settings = apply_overrides(Settings(model_dir=model), overrides)  # type: ignore[call-arg]
    return backtest(feed, settings, out, overrides=overrides, cache_dir=cache, progress=False)


def test_backtest_on_tiny_model_writes_all_outputs_and_reuses_cache(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    feed = _burst_feed(tmp_path / "f.jsonl")
    out1, out2 = tmp_path / "run1", tmp_path / "run2"
    summary = _backtest(feed, tiny_model_dir, out1, tmp_path / "cache", ["detector.fire_z=2.5"])
    for name in ("alerts.jsonl", "summary.json", "timeseries.csv", "report.html"):
        assert (out1 / name).is_file(), name
    alerts = [Alert.model_validate_json(line) for line in (out1 / "alerts.jsonl").open()]
    assert summary["alerts"]["total"] == len(alerts)
    assert summary["items"] == summary["scored"] == 252
    assert summary["dead_lettered"] == {"invalid_json": 1}
    assert summary["bad_rows"][0]["line"] == 253
    assert summary["config"]["detector"]["fire_z"] == 2.5
    assert summary["model_version"].startswith("finpulse-")
    assert summary["truth"]["events"] == 1  # from the event_id column
    assert summary["prediction_cache"]["misses"] == 252
    assert list((out1 / "charts").glob("*.png"))
    assert "market" in (out1 / "report.html").read_text()

    again = _backtest(feed, tiny_model_dir, out2, tmp_path / "cache", ["detector.fire_z=2.5"])
    assert again["prediction_cache"] == {"hits": 252, "misses": 0}
    assert (out2 / "alerts.jsonl").read_text() == (out1 / "alerts.jsonl").read_text()
