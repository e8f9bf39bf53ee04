"""What the forwarder delivered, in Redis: one record per (sink, alert), and firing AM alerts.

Keys (``{prefix}`` = ``FINPULSE_REDIS_KEY_PREFIX``, ``{group}`` = the forwarder's consumer
group, so two forwarders with different routes never share records):

* ``{prefix}:fwd:v1:{group}:{sink}:{alert_id}`` -> JSON ``DeliveryRecord``, expiring after
  ``FINPULSE_FORWARD_LEDGER_TTL_SECONDS``. ``pending`` is written *before* each attempt,
  ``delivered`` after the sink's 2xx, ``dead_lettered`` after the dead letter was
  acknowledged by the broker. So after a crash or rebalance a record says either "done,
  skip it" or "attempt N was made and its outcome is unknown", and the next attempt says so
  in its retry reason.
* ``{prefix}:fwd:v1:{group}:{sink}:active`` -> hash of ``entity\\x1fkind`` -> JSON
  ``ActiveAlert``: the Alertmanager alerts firing through that sink, re-sent periodically.

Every command touches one key, so Redis Cluster needs no hash tags. A Redis error is
retried with back-off for ``FINPULSE_REDIS_RETRY_MAX_SECONDS``, then raised as
``LedgerError``: the forwarder stops without committing, and nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from models.errors import FinpulseError
from stream_app.service.forward.payloads import ActiveAlert

__all__ = ["DeliveryRecord", "Ledger", "LedgerError"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class LedgerError(FinpulseError):
    """Redis stayed unreachable longer than the retry budget."""


class DeliveryRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    state: Literal["pending", "delivered", "dead_lettered"]
    attempts: int
    reason: str | None = None
    at: datetime

    @property
    def done(self) -> bool:
        return self.state != "pending"


class Ledger:
    def __init__(
        self, redis: Any, *, prefix: str, group: str, ttl_seconds: int,
        retry_max_seconds: float = 30.0, where: str = "redis",
    ) -> None:  # fmt: skip
        self.redis = redis
        self.base = f"{prefix}:fwd:v1:{group}"
        self.ttl = ttl_seconds
        self.retry_max = retry_max_seconds
        self.where = where

    async def _call(self, op: Callable[[], Awaitable[T]]) -> T:
        from redis.exceptions import RedisError

        delay, waited = 0.1, 0.0
        while True:
            try:
                return await op()
            except (RedisError, OSError) as exc:
                if waited >= self.retry_max:
                    raise LedgerError(
                        f"Redis at {self.where} unreachable for {waited:.0f} s: {exc}"
                    ) from exc
                log.warning("ledger: Redis error (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                waited += delay
                delay = min(delay * 2, 5.0)

    def _key(self, sink: str, alert_id: str) -> str:
        return f"{self.base}:{sink}:{alert_id}"

    async def get(self, sink: str, alert_id: str) -> DeliveryRecord | None:
        raw = await self._call(lambda: self.redis.get(self._key(sink, alert_id)))
        return DeliveryRecord.model_validate_json(raw) if raw else None

    async def put(
        self, sink: str, alert_id: str, state: str, attempts: int, reason: str | None = None
    ) -> None:
        record = DeliveryRecord(state=state, attempts=attempts, reason=reason,  # type: ignore[arg-type]
                                at=datetime.now(UTC))  # fmt: skip
        key = self._key(sink, alert_id)
        await self._call(lambda: self.redis.set(key, record.model_dump_json(), ex=self.ttl))

    def _active_key(self, sink: str) -> str:
        return f"{self.base}:{sink}:active"

    async def active(self, sink: str, key: str) -> ActiveAlert | None:
        raw = await self._call(lambda: self.redis.hget(self._active_key(sink), key))
        return ActiveAlert.model_validate_json(raw) if raw else None

    async def set_active(self, sink: str, key: str, alert: ActiveAlert | None) -> None:
        name = self._active_key(sink)
        if alert is None:
            await self._call(lambda: self.redis.hdel(name, key))
        else:
            await self._call(lambda: self.redis.hset(name, key, alert.model_dump_json()))

    async def all_active(self, sink: str) -> dict[str, ActiveAlert]:
        raw = await self._call(lambda: self.redis.hgetall(self._active_key(sink)))
        return {_text(k): ActiveAlert.model_validate_json(v) for k, v in raw.items()}
