"""Soak: tens of thousands of hostile records mixed with valid ones into one running worker.

The worker must stay up, its memory must stay bounded, and every record must have an
outcome: ``in = scored + dead-lettered`` by the worker's own counters *and* by consuming
the output topics; the distinct valid ids are counted exactly once in Redis. Each hostile
record is built to be invalid (or valid: extra fields, control characters, repeated ids)
by construction, independently of the validator.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stream_app.devenv.embedded import Service
from stream_app.schemas import DeadLetter, ScoredNews
from tests.support.fault_harness import RedisView, Texts, metric, read_topic, wait_for
from tests.support.fault_report import record
from tests.support.worker_proc import produce

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(400)]

N_RECORDS = 20_000
VALID_EVERY = 10  # about one record in ten is valid and goes through the model
MAX_MESSAGE_BYTES = 100_000
T0 = (datetime.now(UTC) - timedelta(hours=6)).replace(microsecond=0)


def _hostile(rng: random.Random, i: int) -> bytes:
    kind = i % 14
    iso = T0.isoformat()
    if kind == 0:
        return json.dumps({"id": f"h{i}", "headline": 42, "published_at": iso}).encode()
    if kind == 1:
        return json.dumps({"id": f"h{i}", "tickers": "AAPL", "headline": "x"}).encode()
    if kind == 2:
        return json.dumps({"headline": "no id here", "published_at": iso}).encode()
    if kind == 3:
        return json.dumps({"id": f"h{i}", "headline": "y" * 5000, "published_at": iso}).encode()
    if kind == 4:
        return b'{"id": "h%d", "headline": "caf\xe9 \xff\xfe"}' % i
    if kind == 5:
        depth = rng.choice([2_000, 50_000])
        return b'{"id": "x", "headline": ' + b"[" * depth + b"]" * depth + b"}"
    if kind == 6:
        return json.dumps({"id": f"h{i}", "headline": "old", "published_at": "1970-01-02"}).encode()
    if kind == 7:  # far future relative to the record timestamp (now)
        when = (datetime.now(UTC) + timedelta(days=3650)).isoformat()
        return json.dumps({"id": f"h{i}", "headline": "future", "published_at": when}).encode()
    if kind == 8:
        return rng.randbytes(rng.randint(0, 300))
    if kind == 9:
        return rng.choice([b"null", b"[1, 2]", b'"text"', b"", b"{", b"\x00" * 64, b"1e999999"])
    if kind == 10:
        return json.dumps({"id": f"h{i}", "headline": "\x00\x07\x1b \t\r\n"}).encode()
    if kind == 11:
        return json.dumps({"id": f"h{i}", "headline": "bad", "tickers": ["$$$", "x y"]}).encode()
    if kind == 12:  # over the byte limit
        return json.dumps(
            {"id": f"h{i}", "headline": "z", "body": "b" * (MAX_MESSAGE_BYTES + 10)}
        ).encode()
    return json.dumps({"id": [i], "headline": {"nested": True}, "published_at": [1, 2]}).encode()


def _feed(texts: Texts) -> tuple[list[bytes], set[str], int]:
    """(values, distinct valid ids, number of valid records incl. repeats)."""
    rng = random.Random(11)
    values: list[bytes] = []
    valid_ids: set[str] = set()
    valid_values: list[bytes] = []
    n_valid = 0
    for i in range(N_RECORDS):
        if i % VALID_EVERY == 0:
            if valid_values and rng.random() < 0.1:
                values.append(rng.choice(valid_values))  # a repeated id, same bytes
            else:
                k = len(valid_values)
                row: dict[str, Any] = {
                    "id": f"v{k}",
                    "headline": rng.choice(texts.calm) + rng.choice(["", " \x07\x01", "\r\n"]),
                    "tickers": [rng.choice(["SOAK", "MIX", "NOISE"])],
                    "published_at": (T0 + timedelta(seconds=5 * k)).isoformat(),
                }
                if rng.random() < 0.3:
                    row["unexpected"] = {"extra": [1, 2, 3]}  # extra fields are ignored
                valid_values.append(json.dumps(row).encode())
                values.append(valid_values[-1])
                valid_ids.add(f"v{k}")
            n_valid += 1
        else:
            values.append(_hostile(rng, i))
    return values, valid_ids, n_valid


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_hostile_flood_worker_stays_up_bounded_and_conserves(
    pool: Any, broker: Service, redis_server: Service, texts: Texts
) -> None:
    p = pool(broker, redis_server, topic_partitions=1, max_message_bytes=MAX_MESSAGE_BYTES,
             batch_size=256, batch_max_wait=0.2)  # fmt: skip
    w = p.spawn()
    s = w.settings
    assert w.proc is not None
    values, valid_ids, n_valid = _feed(texts)
    n_hostile = len(values) - n_valid

    warm = values[:2000]
    await produce(s, warm)

    async def consumed(n: int) -> Any:
        async def check() -> bool:
            return metric(w.base_url, "finpulse_records_in_total") >= n

        return check

    await wait_for(await consumed(len(warm)), 60, "warm-up consumed")
    rss_warm = _rss_kb(w.proc.pid)
    started = time.monotonic()
    await produce(s, values[len(warm) :])
    await wait_for(await consumed(len(values)), 240, "all records consumed", every=1.0)
    elapsed = time.monotonic() - started
    rss_end = _rss_kb(w.proc.pid)

    assert w.running, w.log_tail()
    records_in = metric(w.base_url, "finpulse_records_in_total")
    scored_n = metric(w.base_url, "finpulse_scored_total")
    dead_n = metric(w.base_url, "finpulse_dead_letters_total")
    assert records_in == len(values)
    assert scored_n + dead_n == records_in
    assert scored_n == n_valid
    assert dead_n == n_hostile

    scored = [ScoredNews.model_validate_json(v) for v in await read_topic(s, s.topic_scored)]
    dead = [DeadLetter.model_validate_json(v) for v in await read_topic(s, s.topic_deadletter)]
    assert len(scored) + len(dead) == len(values)
    assert {x.id for x in scored} == valid_ids
    reasons = Counter(d.reason for d in dead)
    assert "predictor_failure" not in reasons
    assert "late_event" not in reasons

    view = RedisView(s)
    try:

        async def market_done() -> bool:
            return await view.ids("market") == valid_ids

        await wait_for(market_done, 60, "every distinct valid id counted in market")
        assert await view.bucket_total("market") == len(valid_ids)
    finally:
        await view.close()

    growth_mb = (rss_end - rss_warm) / 1024
    assert growth_mb < 150, f"RSS grew {growth_mb:.0f} MB ({rss_warm} -> {rss_end} kB)"
    record(
        f"soak: {len(values)} records, {n_hostile} hostile", None, None,
        **{"in": len(values), "scored": int(scored_n), "dead_lettered": int(dead_n),
           "distinct_valid_ids_counted": len(valid_ids), "repeated_valid": n_valid - len(valid_ids),
           "dead_by_reason": dict(reasons), "seconds_for_18k": round(elapsed, 1),
           "rss_warm_mb": round(rss_warm / 1024), "rss_end_mb": round(rss_end / 1024)},
    )  # fmt: skip
