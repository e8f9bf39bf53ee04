"""Reference implementations the product's fast paths are tested against.

(``sum_counts`` is the product's own ``windows.sum_buckets``: explain needs it too, and a
plain loop is its own reference.)

Each oracle is the plain, obviously-correct form of a rule the product implements in an
optimised way (``WindowGeometry.slide_layers``, the aggregator's inlined late rule, the
stores' pruned bucket reads). They live here, not in the product, because no product
path needs them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stream_app.core.windows import Counts, WindowGeometry, sum_buckets

sum_counts = sum_buckets  # the product's own plain loop


def baseline_range(g: WindowGeometry, clock_ms: int) -> range:
    """The baseline buckets at ``clock_ms``: the baseline span before the window."""
    b = g.bucket(clock_ms)
    return range(b - g.baseline_buckets + 1, b - g.window_buckets + 1)


def place(g: WindowGeometry, bucket: int, clock_ms: int) -> str | None:
    """Which sum a bucket belongs to at ``clock_ms``: 'window', 'baseline' or None."""
    b = g.bucket(clock_ms)
    if bucket > b:
        return None
    if bucket > b - g.window_buckets:
        return "window"
    if bucket > b - g.baseline_buckets:
        return "baseline"
    return None


def is_late(g: WindowGeometry, event_ms: int, clock_ms: int | None) -> bool:
    return clock_ms is not None and event_ms < clock_ms - g.lateness_ms


def slide(
    g: WindowGeometry,
    window: Counts,
    baseline: Counts,
    b1: int,
    b2: int,
    full: Callable[[int], Counts],
) -> None:
    """Move ``window``/``baseline`` from clock bucket ``b1`` to ``b2`` reading ``full(b)``."""
    if b2 <= b1:
        return
    if b2 - b1 >= g.baseline_buckets:
        window.clear()
        baseline.clear()
        return
    to_baseline, expired = g.transition_ranges(b1, b2)
    for b in to_baseline:
        c = full(b)
        window.sub(c)
        baseline.add(c)
    for b in expired:
        baseline.sub(full(b))


async def all_buckets(store: Any, entity: str) -> dict[int, Counts]:
    """Every stored bucket of an entity, from a memory or a Redis window store."""
    entities = getattr(store, "_entities", None)
    if entities is not None:
        e = entities.get(entity)
        return {b: c.copy() for b, c in e.buckets.items()} if e else {}
    raw = await store.client.hgetall(store.keys(entity)[1])
    return {int(b): Counts.decode(v) for b, v in raw.items()}


def update_metrics(model_dir: str | os.PathLike[str], metrics: dict[str, Any]) -> None:
    """Rewrite a model dir's manifest metrics in place (files and version unchanged)."""
    from models.checkpoint import MANIFEST_FILE, read_manifest

    manifest = read_manifest(model_dir).model_copy(update={"metrics": metrics})
    path = Path(model_dir) / MANIFEST_FILE
    path.write_text(json.dumps(json.loads(manifest.model_dump_json()), indent=2))
