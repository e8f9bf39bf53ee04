"""One place that turns ``Settings.redis_*`` into a redis-py asyncio client.

Single node (``redis.asyncio.Redis``) or Redis Cluster (``redis.asyncio.cluster.RedisCluster``,
``FINPULSE_REDIS_CLUSTER=true``); AUTH from the URL (``redis://user:password@host``), TLS
from the ``rediss://`` scheme plus optional CA / client-certificate files. The password
lives only inside the client's connection arguments, never in a log line: callers log
``Settings.redis_url_masked``.

Cluster: ``RedisWindowStore`` puts an entity's keys under one hash tag, so each Lua call
touches one slot; the only cross-entity key (the firing index) is a single key touched by
single-key commands. A ``unix://`` URL cannot name a cluster and is refused.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from models.errors import FinpulseError
from stream_app.config import Settings

__all__ = ["RedisConfigError", "redis_client", "redis_client_kwargs"]

SOCKET_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0


class RedisConfigError(FinpulseError):
    """The Redis settings contradict each other."""


def redis_client_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``from_url`` besides the URL itself (timeouts, TLS files)."""
    url = settings.redis_url.get_secret_value()
    kwargs: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": CONNECT_TIMEOUT,
    }
    tls_files = {
        "ssl_ca_certs": settings.redis_ssl_ca_certs,
        "ssl_certfile": settings.redis_ssl_certfile,
        "ssl_keyfile": settings.redis_ssl_keyfile,
    }
    given = {k: str(v) for k, v in tls_files.items() if v is not None}
    if given and not url.startswith("rediss://"):
        raise RedisConfigError(
            "FINPULSE_REDIS_SSL_* files are set but FINPULSE_REDIS_URL is not rediss:// "
            "(TLS would be silently off)"
        )
    if settings.redis_ssl_keyfile and not settings.redis_ssl_certfile:
        raise RedisConfigError("FINPULSE_REDIS_SSL_KEYFILE needs FINPULSE_REDIS_SSL_CERTFILE")
    kwargs.update(given)
    return kwargs


def redis_client(
    settings: Settings,
    *,
    max_connections: int | None = None,
    pool_timeout: float = 1.0,
    socket_timeout: float = SOCKET_TIMEOUT,
) -> aioredis.Redis | RedisCluster:
    """A client for ``Settings``; connections are opened lazily, on the first command.

    Each call makes its own connection pool, so one user of Redis cannot starve another
    (the worker gives the aggregator, the web API and the health probe one each).
    ``max_connections`` bounds the pool: a command then waits up to ``pool_timeout`` for a
    free connection and fails with ``ConnectionError`` (per node on a cluster, at once).
    """
    url = settings.redis_url.get_secret_value()
    kwargs = redis_client_kwargs(settings)
    kwargs["socket_timeout"] = socket_timeout
    kwargs["socket_connect_timeout"] = min(CONNECT_TIMEOUT, socket_timeout)
    if settings.redis_cluster:
        if url.startswith("unix://"):
            raise RedisConfigError("FINPULSE_REDIS_CLUSTER needs a redis:// or rediss:// URL")
        if max_connections is not None:
            kwargs["max_connections"] = max_connections
        return RedisCluster.from_url(url, **kwargs)
    if max_connections is None:
        return aioredis.Redis.from_url(url, **kwargs)
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=pool_timeout, **kwargs
    )
    return aioredis.Redis(connection_pool=pool)
