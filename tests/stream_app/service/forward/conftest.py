"""Fixtures of the forwarder tests: a local HTTP receiver and isolated settings."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from stream_app.config import Settings
from stream_app.devenv.embedded import Service
from tests.support.http_receiver import HttpReceiver


@pytest.fixture
async def receiver() -> AsyncIterator[HttpReceiver]:
    r = await HttpReceiver().start()
    yield r
    await r.stop()


@pytest.fixture
def settings(broker: Service, redis_server: Service, unique: str) -> Settings:
    return Settings(  # type: ignore[call-arg]
        broker=broker.url, redis_url=redis_server.url, redis_key_prefix=f"fwd{unique}",
        topic_alerts=f"alerts-{unique}", topic_alerts_deadletter=f"alerts-dl-{unique}",
        topic_partitions=2, broker_session_timeout=4, broker_rebalance_timeout=3,
    )  # fmt: skip
