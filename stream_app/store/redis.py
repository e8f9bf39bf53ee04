"""Redis ``WindowStore``: one pipelined round trip to read a batch, one to commit it.

Keys of entity ``E`` under prefix ``P`` (``{E}`` is a Redis Cluster hash tag, so all of an
entity's keys share a slot and each script call touches one slot)::

    P:v1:{E}:s   hash   ver, tok, clock, win, base, det, alert, late, dup, blo, elo
    P:v1:{E}:b   hash   bucket index -> "neg,neu,pos,neg_prob_micros"
    P:v1:{E}:i   zset   applied event id -> event time (ms); forgotten below retention
    P:v1:{E}:e   hash   bucket index -> JSON top-k evidence [[neg_micros, id, headline]]
    P:v1:firing  set    entities whose state holds a firing alert (index for /alerts)

Reads run ``window_read.lua`` once per entity and commits ``window_commit.lua`` once per
entity, all calls of a batch in one pipeline (one round trip; a cluster client splits it
per node). The commit is a compare-and-set on ``ver`` (see ``stream_app.store.base``).

The ``firing`` index spans slots, so it is updated by plain SADD/SREM in the same pipeline,
*outside* the scripts: it is a hint, and ``firing_alerts`` re-checks every entity's own
state (which is authoritative and atomic). Keys expire after twice the retention of
inactivity (wall clock), so abandoned entities do not accumulate.

Connection and timeout errors are retried with exponential back-off for up to
``retry_max_seconds`` (a Redis restart is waited out, the batch is not dropped); then
``StoreUnavailable`` is raised. A commit retried after a lost reply is recognised by its
token. Evidence ties are ordered by Lua string comparison (``strcoll``): byte order, the
same as Python's, under the C/C.UTF-8 locale Redis normally runs with.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from finpulse.resources import lua_script
from stream_app.config import Settings
from stream_app.core.detector import DetectorState
from stream_app.core.windows import Counts, WindowGeometry
from stream_app.store.base import (
    EntityCommit,
    EntitySnapshot,
    EntityView,
    EvidenceItem,
    SnapshotRequest,
    StoreUnavailable,
)

__all__ = ["RedisWindowStore"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def _s(v: bytes | str | None) -> str | None:
    return v.decode() if isinstance(v, bytes) else v


class RedisWindowStore:
    def __init__(
        self,
        client: aioredis.Redis | RedisCluster,
        prefix: str,
        *,
        retention_seconds: int,
        retry_max_seconds: float = 30.0,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_seconds = 2 * retention_seconds
        self.retry_max_seconds = retry_max_seconds
        self._read = client.register_script(lua_script("window_read.lua"))
        self._commit = client.register_script(lua_script("window_commit.lua"))
        self._cluster = isinstance(client, RedisCluster)
        self._scripts_loaded = False

    async def _script(self, pipe: Any, script: Any, keys: list[str], args: list[str]) -> None:
        """Queue one script call. A cluster pipeline refuses ``evalsha()`` (redis-py), so the
        command is queued raw; the scripts are loaded on every primary first."""
        if self._cluster:
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        else:
            await script(keys=keys, args=args, client=pipe)

    async def _pipeline(self, queue: Callable[[Any], Awaitable[None]]) -> list[Any]:
        """Build and run one non-transactional pipeline; on a cluster, reload scripts a
        restarted or failed-over node forgot (NOSCRIPT) and run it once more."""
        for attempt in (0, 1):
            if self._cluster and not self._scripts_loaded:
                for script in (self._read, self._commit):
                    await self.client.script_load(script.script)
                self._scripts_loaded = True
            pipe = self.client.pipeline(transaction=False)
            await queue(pipe)
            try:
                return list(await pipe.execute())
            except NoScriptError:
                if not self._cluster or attempt:
                    raise
                self._scripts_loaded = False
        raise AssertionError("unreachable")

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisWindowStore:
        """Single node or Redis Cluster (``FINPULSE_REDIS_CLUSTER``), AUTH and TLS from settings."""
        from stream_app.store.client import redis_client

        client = redis_client(settings)
        return cls(
            client,
            settings.redis_key_prefix,
            retention_seconds=settings.window.retention_seconds,
            retry_max_seconds=settings.redis_retry_max_seconds,
        )

    def keys(self, entity: str) -> list[str]:
        if "{" in entity or "}" in entity:
            raise ValueError(f"entity names must not contain braces: {entity!r}")
        base = f"{self.prefix}:v1:{{{entity}}}"
        return [f"{base}:s", f"{base}:b", f"{base}:i", f"{base}:e"]

    @property
    def firing_key(self) -> str:
        return f"{self.prefix}:v1:firing"

    async def _retry(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        deadline = time.monotonic() + self.retry_max_seconds
        delay = 0.05
        while True:
            try:
                return await call()
            except (RedisConnectionError, RedisTimeoutError) as exc:
                if time.monotonic() + delay > deadline:
                    raise StoreUnavailable(
                        f"Redis unreachable for {self.retry_max_seconds:.0f}s during {what}: {exc}"
                    ) from exc
                log.warning("redis %s failed (%s); retrying in %.2fs", what, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def read(
        self, requests: Sequence[SnapshotRequest], geometry: WindowGeometry
    ) -> dict[str, EntitySnapshot]:
        g = geometry
        params = (g.bucket_ms, g.window_buckets, g.baseline_buckets)

        async def queue(pipe: Any) -> None:
            for req in requests:
                keys = self.keys(req.entity)[:3]
                arg = json.dumps([req.max_event_ms, *params, list(req.ids)], ensure_ascii=False)
                await self._script(pipe, self._read, keys, [arg])

        async def run() -> list[Any]:
            return await self._pipeline(queue)

        replies = await self._retry("read", run)
        pairs = zip(requests, replies, strict=True)
        return {req.entity: self._snapshot(req.entity, r) for req, r in pairs}

    @staticmethod
    def _snapshot(entity: str, reply: bytes) -> EntitySnapshot:
        state, flat_buckets, flat_seen = json.loads(reply)
        # cjson: missing hash fields are false, empty arrays are encoded as {}
        ver, clock, win, base, det, alert = (v or None for v in state)
        flat_buckets, flat_seen = flat_buckets or [], flat_seen or []
        buckets = {
            int(flat_buckets[i]): Counts.decode(flat_buckets[i + 1])
            for i in range(0, len(flat_buckets), 2)
        }
        seen = {
            _s(flat_seen[i]) or "": int(float(flat_seen[i + 1]))
            for i in range(0, len(flat_seen), 2)
        }
        return EntitySnapshot(
            entity=entity,
            version=int(ver or 0),
            clock_ms=int(clock) if clock is not None else None,
            window=Counts.decode(win),
            baseline=Counts.decode(base),
            detector=DetectorState.from_json(det),
            firing_alert=alert,
            buckets=buckets,
            seen=seen,
        )

    async def read_evidence(
        self, wanted: Mapping[str, range]
    ) -> dict[str, dict[int, list[EvidenceItem]]]:
        entities = list(wanted)

        async def run() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for e in entities:
                pipe.hmget(self.keys(e)[3], [str(b) for b in wanted[e]])
            return await pipe.execute()

        replies = await self._retry("read_evidence", run)
        out: dict[str, dict[int, list[EvidenceItem]]] = {}
        for e, vals in zip(entities, replies, strict=False):
            out[e] = {
                b: [EvidenceItem.from_wire(x) for x in json.loads(v)]
                for b, v in zip(wanted[e], vals, strict=False)
                if v
            }
        return out

    @staticmethod
    def _commit_args(c: EntityCommit, ttl: int) -> list[str]:
        change = {
            "ver": c.expected_version,
            "tok": c.token,
            "clock": -1 if c.clock_ms is None else c.clock_ms,
            "win": c.window.encode(),
            "base": c.baseline.encode(),
            "det": c.detector.to_json(),
            "alert": c.firing_alert or "",
            "late": c.late,
            "dup": c.duplicates,
            "keep": c.first_kept_bucket,
            "ekeep": c.first_evidence_bucket,
            "cut": c.seen_cutoff_ms,
            "ttl": ttl,
            "k": c.evidence_size,
            "b": [[b, d.encode()] for b, d in c.bucket_deltas.items()],
            "s": list(c.seen.items()),
            "e": [[b, [it.to_wire() for it in v]] for b, v in c.evidence.items()],
        }
        return [json.dumps(change, ensure_ascii=False, separators=(",", ":"))]

    async def commit(self, commits: Sequence[EntityCommit]) -> list[str]:
        prepared = [
            (c, self.keys(c.entity), self._commit_args(c, self.ttl_seconds)) for c in commits
        ]

        async def queue(pipe: Any) -> None:
            for _c, keys, args in prepared:
                await self._script(pipe, self._commit, keys, args)
            for c, _, _ in prepared:  # the index only changes when firing starts or ends
                if (c.firing_alert is not None) != c.was_firing:
                    if c.firing_alert is not None:
                        pipe.sadd(self.firing_key, c.entity)
                    else:
                        pipe.srem(self.firing_key, c.entity)

        async def run() -> list[Any]:
            return await self._pipeline(queue)

        replies = await self._retry("commit", run)
        pairs = zip(prepared, replies[: len(prepared)], strict=True)
        return [c.entity for (c, _, _), ok in pairs if not int(ok)]

    async def entity_view(self, entity: str) -> EntityView | None:
        fields = ("clock", "win", "base", "det", "alert", "late", "dup")

        async def run() -> list[Any]:
            return await self.client.hmget(self.keys(entity)[0], fields)

        clock, win, base, det, alert, late, dup = await self._retry("entity_view", run)
        if clock is None:
            return None
        return EntityView(
            entity=entity,
            clock_ms=int(clock),
            window=Counts.decode(win),
            baseline=Counts.decode(base),
            detector=DetectorState.from_json(det),
            firing_alert=json.loads(alert) if alert else None,
            late_events=int(late or 0),
            duplicate_events=int(dup or 0),
        )

    async def firing_alerts(self) -> list[dict[str, Any]]:
        async def members() -> set[Any]:
            return await self.client.smembers(self.firing_key)

        entities = sorted(_s(m) or "" for m in await self._retry("firing_alerts", members))

        async def run() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for e in entities:
                pipe.hget(self.keys(e)[0], "alert")
            return await pipe.execute()

        replies = await self._retry("firing_alerts", run) if entities else []
        return [json.loads(a) for a in replies if a]

    async def close(self) -> None:
        await self.client.aclose()
