"""The model in production, against a real ``finpulse worker`` subprocess, tansu and Redis:
monitoring series and drift alerts on a feed whose distribution shifts, and the
retrain-and-roll procedure of docs/operations.md (versioned dirs, a symlink, restart).
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from models.checkpoint import read_manifest
from stream_app.schemas import Alert, ScoredNews
from tests.support.tiny_model import make_tiny_model_dir
from tests.support.worker_proc import collect, http_get, produce
from training.data import load_split

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

T0 = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)


def _news(ids: range, texts: list[str]) -> list[bytes]:
    return [
        json.dumps(
            {"id": f"m{i}", "headline": t, "published_at": (T0 + timedelta(seconds=i)).isoformat()}
        ).encode()
        for i, t in zip(ids, texts, strict=True)
    ]


def _metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, value = line.rsplit(" ", 1)
        exact = series == name or (want and series == f"{name}{{{want}}}")
        if exact or (not want and series.startswith(f"{name}{{")):
            total += float(value)
    return total


async def test_a_shifted_feed_fires_a_drift_alert_that_resolves_when_it_returns(
    start_worker: Any, tmp_path: Path
) -> None:
    # The reference is what this model says on 400 real validation headlines; the feed
    # sends those 400, then 400 texts of one odd kind, then the 400 again.
    pool = sorted(random.Random(5).sample(list(load_split("sentiment", "valid").texts), 400))
    model = make_tiny_model_dir(tmp_path / "model", reference_texts=pool)
    odd = [f"zzqx {i % 7} zzqx zzqx" for i in range(400)]
    w = start_worker(
        model,
        topic_partitions=1,  # one partition: records are scored in the order they were sent
        drift_psi=0.2,
        drift_window=400,
        drift_check_every=50,
    )
    s = w.settings
    texts = [*pool, *odd, *pool]
    await produce(s, _news(range(len(texts)), texts))

    scored_raw = await collect(
        s, s.topic_scored, lambda v: len({json.loads(x)["id"] for x in v}) >= len(texts)
    )
    scored = {x.id: x for x in (ScoredNews.model_validate_json(v) for v in scored_raw)}
    assert len(scored) == len(texts)

    def drift(values: list[bytes]) -> list[Alert]:
        alerts = [Alert.model_validate_json(v) for v in values]
        return [a for a in alerts if a.kind == "model_drift"]

    raw = await collect(s, s.topic_alerts, lambda v: len(drift(v)) >= 2, within=60, settle=3)
    alerts = drift(raw)
    assert [(a.state, a.entity, a.episode) for a in alerts] == [
        ("firing", "model", 1),
        ("resolved", "model", 1),
    ]
    fired, resolved = alerts
    assert fired.score > 0.2
    assert resolved.score < 0.15
    assert fired.model_version == read_manifest(model).model_version
    assert fired.total_count == 400

    # /metrics counts what the worker published on news.scored, label by label.
    status, body = http_get(f"{w.base_url}/metrics")
    metrics = body.decode()
    assert status == 200
    by_sentiment = Counter(x.sentiment for x in scored.values())
    for label, n in by_sentiment.items():
        got = _metric(metrics, "finpulse_model_predictions_total", head="sentiment", label=label)
        assert got == n, label
    by_topic = Counter(x.topic for x in scored.values())
    for topic, n in by_topic.items():
        assert _metric(metrics, "finpulse_model_predictions_total", head="topic", label=topic) == n
    assert _metric(metrics, "finpulse_model_texts_total") == len(texts)
    assert _metric(metrics, "finpulse_model_input_tokens_count") == len(texts)
    assert _metric(metrics, "finpulse_model_drift_firing") == 0
    version = read_manifest(model).model_version
    assert _metric(metrics, "finpulse_model_info", model_version=version) == 1


def _point(link: Path, target: Path) -> None:
    """Atomically re-point ``link`` (ln -sfn + mv -T, as docs/operations.md does it)."""
    tmp = link.with_name(link.name + ".new")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)


async def test_roll_forward_and_back_by_symlink_and_restart(
    start_worker: Any, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    old = make_tiny_model_dir(models / "v1", seed=0)
    new = make_tiny_model_dir(models / "v2", seed=1)
    v_old, v_new = read_manifest(old).model_version, read_manifest(new).model_version
    assert v_old != v_new
    link = tmp_path / "model"
    _point(link, old)

    w = start_worker(link)
    s = w.settings
    seen: dict[str, str] = {}

    async def send(first: int, n: int) -> dict[str, str]:
        await produce(s, _news(range(first, first + n), [f"Headline {i}" for i in range(n)]))
        want = {f"m{i}" for i in range(first, first + n)}
        raw = await collect(s, s.topic_scored, lambda v: want <= {json.loads(x)["id"] for x in v})
        for x in (ScoredNews.model_validate_json(v) for v in raw):
            seen.setdefault(x.id, x.model_version)
        return {i: seen[i] for i in want}

    assert set((await send(0, 10)).values()) == {v_old}
    # Re-pointing the link does not change a running worker: no silent swap mid-stream.
    _point(link, new)
    assert set((await send(10, 10)).values()) == {v_old}
    # Roll forward: restart; the worker loads what the link points at now.
    w.stop()
    w.start()
    assert set((await send(20, 10)).values()) == {v_new}
    _, body = http_get(f"{w.base_url}/metrics")
    assert _metric(body.decode(), "finpulse_model_info", model_version=v_new) == 1
    # Roll back: the old dir was never touched, so pointing back and restarting is all.
    _point(link, old)
    w.stop()
    w.start()
    assert set((await send(30, 10)).values()) == {v_old}
    assert len(seen) == 40  # nothing lost across the restarts
