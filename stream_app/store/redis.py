"""Redis ``WindowStore``: one pipelined round trip to read a batch, one to commit it.

Keys of entity ``E`` under prefix ``P`` (``{E}`` is a Redis Cluster hash tag, so all of an
entity's keys share a slot and each script call touches one slot)::

    P:v2:{E}:s    hash   ver, tok, clock, first, win, base, det, firing, late, dup, blo, elo
    P:v2:{E}:b    hash   bucket index -> "neg,neu,pos,neg_micros,pos_micros,rep"
    P:v2:{E}:i    hash   seen id -> "event_ms|a(pplied) or l(ate)|partition:offset,..."
    P:v2:{E}:it   zset   seen id -> event time (ms): forgotten below retention
    P:v2:{E}:n    hash   novelty probe key -> "event_ms:story_id"
    P:v2:{E}:nt   zset   probe key -> event ms: expired with the novelty window, capped
    P:v2:{E}:e    hash   "neg|pos|recent:bucket" -> JSON top-k evidence of that bucket
    P:v2:{E}:a    hash   alert id -> explain record (JSON)   P:v2:{E}:at  zset of them
    P:v2:{E}:h    list   the newest headlines, JSON (the desk)
    P:v2:firing       set    entities with a firing alert (index for /alerts)
    P:v2:entities     zset   entity -> its clock (the desk's entity list)
    P:v2:alerts       hash   alert id -> entity (explain)    P:v2:alerts:t  zset, capped
    P:v2:recent       list   the newest alerts, JSON (the desk)

Reads run ``lua/window_read.lua`` once per entity and commits ``lua/window_commit.lua``
once per entity, all calls of a batch in one pipeline (one round trip; a cluster client
splits it per node). The commit is a compare-and-set on ``ver`` (see
``stream_app.store.base``).

The cross-entity keys span slots, so they are updated by plain commands in the same
pipeline, *outside* the scripts: they are indexes, and every read re-checks the entity's
own state (which is authoritative and atomic). Keys expire after twice the retention of
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

import orjson
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
    EVIDENCE_ORDERS,
    HEADLINES_KEPT,
    AlertRecord,
    EntityCommit,
    EntitySnapshot,
    EntitySummary,
    EntityView,
    EvidenceItem,
    SeenEntry,
    SnapshotRequest,
    StoreUnavailable,
)

__all__ = ["RedisWindowStore"]

log = logging.getLogger(__name__)
T = TypeVar("T")

ALERTS_KEPT = 100  # explain records per entity
ALERT_INDEX_KEPT = 10_000  # alert id -> entity entries
RECENT_ALERTS = 200


def _s(v: bytes | str | None) -> str | None:
    return v.decode() if isinstance(v, bytes) else v


def _dumps(value: Any) -> str:
    """Compact JSON text; orjson because commit arguments are encoded per event (hot path)."""
    return orjson.dumps(value).decode()


def _detectors(raw: Any) -> dict[str, DetectorState]:
    data = json.loads(raw) if raw else {}
    return {k: DetectorState.from_dict(v) for k, v in data.items()}


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
        """Keys: state, buckets, seen (+index), novelty (+index), evidence, alerts (+index)."""
        if "{" in entity or "}" in entity:
            raise ValueError(f"entity names must not contain braces: {entity!r}")
        base = f"{self.prefix}:v2:{{{entity}}}"
        return [f"{base}:{k}" for k in ("s", "b", "i", "it", "n", "nt", "e", "a", "at", "h")]

    def _key(self, name: str) -> str:
        return f"{self.prefix}:v2:{name}"

    @property
    def firing_key(self) -> str:
        return self._key("firing")

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
                k = self.keys(req.entity)
                keys = [k[0], k[1], k[2], k[4]]
                arg = _dumps([req.max_event_ms, *params, list(req.ids), list(req.probes)])
                await self._script(pipe, self._read, keys, [arg])

        async def run() -> list[Any]:
            return await self._pipeline(queue)

        replies = await self._retry("read", run)
        pairs = zip(requests, replies, strict=True)
        return {req.entity: self._snapshot(req.entity, r) for req, r in pairs}

    @staticmethod
    def _snapshot(entity: str, reply: bytes) -> EntitySnapshot:
        state, flat_buckets, clock_bucket, flat_seen, flat_stories = orjson.loads(reply)
        # cjson: missing hash fields are false, empty arrays are encoded as {}
        ver, clock, first, win, base, det, firing = (v or None for v in state)
        flat_buckets, flat_seen = flat_buckets or [], flat_seen or []
        flat_stories = flat_stories or []
        buckets = {
            int(flat_buckets[i]): Counts.decode(flat_buckets[i + 1])
            for i in range(0, len(flat_buckets), 2)
        }
        seen = {
            str(flat_seen[i]): SeenEntry.decode(flat_seen[i + 1])
            for i in range(0, len(flat_seen), 2)
        }
        stories: dict[str, tuple[str, int]] = {}
        for i in range(0, len(flat_stories), 2):
            ms, _, story = str(flat_stories[i + 1]).partition(":")
            stories[str(flat_stories[i])] = (story, int(ms))
        return EntitySnapshot(
            entity=entity,
            version=int(ver or 0),
            clock_ms=int(clock) if clock is not None else None,
            first_seen_ms=int(first) if first is not None else None,
            window=Counts.decode(win),
            baseline=Counts.decode(base),
            detectors=_detectors(det),
            firing=json.loads(firing) if firing else {},
            buckets=buckets,
            clock_bucket=Counts.decode(clock_bucket or None),
            seen=seen,
            stories=stories,
        )

    async def read_evidence(
        self, wanted: Mapping[str, range]
    ) -> dict[str, dict[int, dict[str, list[EvidenceItem]]]]:
        entities = list(wanted)
        fields = {e: [(o, b) for b in wanted[e] for o in EVIDENCE_ORDERS] for e in entities}

        async def run() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for e in entities:
                pipe.hmget(self.keys(e)[6], [f"{o}:{b}" for o, b in fields[e]])
            return await pipe.execute()

        replies = await self._retry("read_evidence", run)
        out: dict[str, dict[int, dict[str, list[EvidenceItem]]]] = {}
        for e, vals in zip(entities, replies, strict=True):
            per: dict[int, dict[str, list[EvidenceItem]]] = {}
            for (order, b), v in zip(fields[e], vals, strict=True):
                if v:
                    items = json.loads(v) or []
                    per.setdefault(b, {})[order] = [EvidenceItem.from_wire(x) for x in items]
            out[e] = per
        return out

    def _commit_args(self, c: EntityCommit) -> list[str]:
        change = {
            "ver": c.expected_version,
            "tok": c.token,
            "clock": -1 if c.clock_ms is None else c.clock_ms,
            "first": -1 if c.first_seen_ms is None else c.first_seen_ms,
            "win": c.window.encode(),
            "base": c.baseline.encode(),
            "det": _dumps({k: v.to_dict() for k, v in sorted(c.detectors.items())}),
            "firing": _dumps(c.firing) if c.firing else "",
            "late": c.late,
            "dup": c.duplicates,
            "keep": c.first_kept_bucket,
            "ekeep": c.first_evidence_bucket,
            "cut": c.seen_cutoff_ms,
            "ncut": c.story_cutoff_ms,
            "nmax": c.story_max_keys,
            "ttl": self.ttl_seconds,
            "k": c.evidence_size,
            "b": [[b, d.encode()] for b, d in c.bucket_deltas.items()],
            "s": [[i, e.encode(), e.event_ms] for i, e in c.seen.items()],
            "n": [[key, f"{ms}:{story}", ms] for key, (story, ms) in c.stories.items()],
            "e": [
                [b, order, [it.to_wire() for it in items]]
                for b, orders in c.evidence.items()
                for order, items in orders.items()
                if items
            ],
            "a": [[r.alert_id, _dumps(r.data), r.event_ms] for r in c.alerts],
            "akeep": ALERTS_KEPT,
            "h": [_dumps(h) for h in c.headlines],
            "hkeep": HEADLINES_KEPT,
        }
        return [_dumps(change)]

    async def commit(self, commits: Sequence[EntityCommit]) -> list[str]:
        prepared = [(c, self.keys(c.entity), self._commit_args(c)) for c in commits]

        async def queue(pipe: Any) -> None:
            for _c, keys, args in prepared:
                await self._script(pipe, self._commit, keys, args)
            self._queue_indexes(pipe, commits)

        async def run() -> list[Any]:
            return await self._pipeline(queue)

        replies = await self._retry("commit", run)
        pairs = zip(prepared, replies[: len(prepared)], strict=True)
        return [c.entity for (c, _, _), ok in pairs if not int(ok)]

    def _queue_indexes(self, pipe: Any, commits: Sequence[EntityCommit]) -> None:
        """The cross-entity indexes (hints; each entity's own state is authoritative)."""
        for c in commits:  # the firing index only changes when firing starts or ends
            if bool(c.firing) != c.was_firing:
                (pipe.sadd if c.firing else pipe.srem)(self.firing_key, c.entity)
        clocks = {c.entity: c.clock_ms for c in commits if c.clock_ms is not None}
        if clocks:
            pipe.zadd(self._key("entities"), clocks)
        records = [(c.entity, r) for c in commits for r in c.alerts]
        if records:
            pipe.hset(self._key("alerts"), mapping={r.alert_id: e for e, r in records})
            pipe.zadd(self._key("alerts:t"), {r.alert_id: r.event_ms for _, r in records})
            pipe.lpush(
                self._key("recent"),
                *[json.dumps(r.data["alert"], separators=(",", ":")) for _, r in records],
            )
            pipe.ltrim(self._key("recent"), 0, RECENT_ALERTS - 1)
            pipe.zremrangebyrank(self._key("alerts:t"), 0, -ALERT_INDEX_KEPT - 1)

    def _view(self, entity: str, fields: Sequence[Any]) -> EntityView | None:
        clock, first, win, base, det, firing, late, dup = fields
        if clock is None:
            return None
        return EntityView(
            entity=entity,
            clock_ms=int(clock),
            first_seen_ms=int(first) if first is not None else None,
            window=Counts.decode(win),
            baseline=Counts.decode(base),
            detectors=_detectors(det),
            firing={k: json.loads(v) for k, v in (json.loads(firing) if firing else {}).items()},
            late_events=int(late or 0),
            duplicate_events=int(dup or 0),
        )

    _VIEW_FIELDS = ("clock", "first", "win", "base", "det", "firing", "late", "dup")

    async def entity_view(self, entity: str) -> EntityView | None:
        async def run() -> list[Any]:
            return await self.client.hmget(self.keys(entity)[0], self._VIEW_FIELDS)

        return self._view(entity, await self._retry("entity_view", run))

    async def buckets(self, entity: str, wanted: range) -> dict[int, Counts]:
        if not len(wanted):
            return {}

        async def run() -> list[Any]:
            return await self.client.hmget(self.keys(entity)[1], [str(b) for b in wanted])

        vals = await self._retry("buckets", run)
        return {b: Counts.decode(v) for b, v in zip(wanted, vals, strict=True) if v}

    async def firing_alerts(self) -> list[dict[str, Any]]:
        async def members() -> set[Any]:
            return await self.client.smembers(self.firing_key)

        entities = sorted(_s(m) or "" for m in await self._retry("firing_alerts", members))

        async def run() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for e in entities:
                pipe.hget(self.keys(e)[0], "firing")
            return await pipe.execute()

        replies = await self._retry("firing_alerts", run) if entities else []
        out: list[dict[str, Any]] = []
        for raw in replies:
            if raw:
                out += [json.loads(a) for _, a in sorted(json.loads(raw).items())]
        return out

    async def alert_record(self, alert_id: str) -> tuple[str, AlertRecord] | None:
        async def entity() -> Any:
            return await self.client.hget(self._key("alerts"), alert_id)

        name = _s(await self._retry("alert_record", entity))
        if not name:
            return None

        async def record() -> Any:
            return await self.client.hget(self.keys(name)[7], alert_id)

        raw = await self._retry("alert_record", record)
        if not raw:
            return None
        data = json.loads(raw)
        return name, AlertRecord(alert_id, int(data["event_ms"]), data)

    async def recent_alerts(self, limit: int) -> list[dict[str, Any]]:
        async def run() -> list[Any]:
            return await self.client.lrange(self._key("recent"), 0, max(0, limit - 1))

        return [json.loads(v) for v in await self._retry("recent_alerts", run)]

    async def entities(self, limit: int) -> list[EntitySummary]:
        async def names() -> list[Any]:
            return await self.client.zrevrange(
                self._key("entities"), 0, max(0, limit - 1), withscores=True
            )

        ranked = [(_s(n) or "", int(score)) for n, score in await self._retry("entities", names)]

        async def run() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for name, _ in ranked:
                pipe.hmget(self.keys(name)[0], self._VIEW_FIELDS)
            return await pipe.execute()

        replies = await self._retry("entities", run) if ranked else []
        out = []
        for (name, _), fields in zip(ranked, replies, strict=True):
            view = self._view(name, fields)
            if view is not None:
                out.append(EntitySummary(view, view.clock_ms or 0))
        return out

    async def headlines(self, entity: str, limit: int) -> list[dict[str, Any]]:
        async def run() -> list[Any]:
            return await self.client.lrange(self.keys(entity)[9], 0, max(0, limit - 1))

        return [json.loads(v) for v in await self._retry("headlines", run)]

    async def close(self) -> None:
        await self.client.aclose()
