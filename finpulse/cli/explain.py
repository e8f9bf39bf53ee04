"""``finpulse explain ALERT_ID``: why an alert fired, recomputed from the stored buckets.

Reads the worker's Redis (``FINPULSE_REDIS_*``, same prefix as the worker) and prints the
decision the detector made, rebuilt from the stored counts, and whether it reproduces:
the same computation as ``GET /alerts/{alert_id}/explain`` on the worker's API.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from typing import Any

from finpulse.cli.common import load_settings
from models.errors import FinpulseError

__all__ = ["register"]

_ALERT_ID = re.compile(r"[0-9a-f]{32}")


async def _explain(alert_id: str) -> dict[str, Any]:
    from stream_app.core.explain import buckets_needed, explain
    from stream_app.store.redis import RedisWindowStore

    store = RedisWindowStore.from_settings(load_settings())
    try:
        found = await store.alert_record(alert_id)
        if found is None:
            raise FinpulseError(
                f"no alert {alert_id} in Redis (unknown, or older than the kept history)"
            )
        entity, record = found
        stored = await store.buckets(entity, buckets_needed(record.data))
        return explain(entity, record.data, stored)
    finally:
        await store.close()


def _print(why: dict[str, Any]) -> None:
    d = why["decision"]
    verdict = "reproduces" if why["reproduces"] else "does NOT reproduce"
    print(f"{why['alert_id']}  {why['entity']}  {why['kind']} {why['state']} "
          f"({why['severity']}) at {why['fired_at']}: {verdict}")  # fmt: skip
    print(f"  window: {d['count']} of {d['total']} first stories, share {d['share']:.3f}; "
          f"baseline {d['baseline_share_or_expected']:.3f}; z = {d['z']:.3f}")  # fmt: skip
    print(f"  rule: fire when {why['rule']['fire']}; resolve when {why['rule']['resolve']}")
    print(f"  state before: {why['state_before']}")
    for difference in why["differences"]:
        print(f"  difference: {difference}")
    for e in why["evidence"]:
        print(f"  evidence: {e['headline'][:100]!r} (p_negative {e['negative_prob']:.2f})")


def _handler(args: argparse.Namespace) -> int:
    if not _ALERT_ID.fullmatch(args.alert_id):
        raise FinpulseError(f"alert id must be 32 hex characters, got {args.alert_id[:40]!r}")
    from stream_app.store.base import StoreUnavailable

    try:
        why = asyncio.run(_explain(args.alert_id))
    except (StoreUnavailable, OSError) as exc:
        raise FinpulseError(f"cannot read the window store: {exc}") from None
    if args.json:
        print(json.dumps(why, indent=2, default=str))
    else:
        _print(why)
    return 0 if why["reproduces"] else 1


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "explain",
        help="why an alert fired: the decision recomputed from the stored buckets",
        description="Rebuild an alert's decision (counts, baseline, z, thresholds, state) "
        "from the worker's Redis and say whether it reproduces (exit 0) or not (exit 1).",
    )
    p.add_argument("alert_id", metavar="ALERT_ID", help="the alert's alert_id (32 hex)")
    p.add_argument("--json", action="store_true", help="the full explanation as JSON")
    p.set_defaults(handler=_handler)
