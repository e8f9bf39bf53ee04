"""Read-only HTTP API of the worker: ``/health``, ``/metrics``, ``/entities/{entity}``, ``/alerts``.

The handlers are plain async methods of ``WebApi`` returning a ``Response`` (status, body,
content type), so they are tested without a web server; ``install`` binds them to Faust's
aiohttp server. With ``Settings.api_token`` set, every route except ``/health`` (which
orchestrators probe without credentials and which reveals nothing) needs
``Authorization: Bearer <token>``; a missing or wrong token is a 401 (also one that is not
ASCII). Nothing here writes to Redis or the broker, and no setting that may hold a secret
is ever echoed.

Under load and outages (issue 9): ``/health`` asks a ``CachedProbe`` (at most one Redis
PING per second, on its own connection), and the read routes use a store with its own
small pool that fails fast, so a Redis outage is a 503 at once, not a 30 s wait.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel

from stream_app.config import DetectorSettings, WindowSettings
from stream_app.core.describe import describe_entity, series
from stream_app.core.entities import is_valid_entity
from stream_app.core.explain import buckets_needed, explain
from stream_app.core.windows import WindowGeometry
from stream_app.service.health import HealthState
from stream_app.service.metrics import CONTENT_TYPE_LATEST, Metrics
from stream_app.store.base import StoreUnavailable

__all__ = ["ReadStore", "Response", "WebApi", "install"]

JSON = "application/json"


class ReadStore(Protocol):
    """The read helpers of the window store that the API serves (``store.base``)."""

    async def entity_view(self, entity: str) -> Any: ...

    async def buckets(self, entity: str, wanted: range) -> Any: ...

    async def firing_alerts(self) -> Any: ...

    async def alert_record(self, alert_id: str) -> Any: ...


SERIES_BUCKETS = 60  # default points of /entities/{entity}'s series
MAX_SERIES_BUCKETS = 1440
_ALERT_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = JSON


def _json(status: int, payload: Any) -> Response:
    return Response(status, json.dumps(payload, default=str, separators=(",", ":")).encode())


def _plain(value: Any) -> Any:
    """pydantic models, dataclasses and mappings -> JSON-ready structures."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class WebApi:
    def __init__(
        self,
        *,
        store: Callable[[], ReadStore],
        metrics: Metrics,
        health: HealthState,
        api_token: str | None,
        ping: Callable[[], Awaitable[bool]] | None = None,
        window: WindowSettings | None = None,
        detector: DetectorSettings | None = None,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._health = health
        self._token = api_token.encode() if api_token else None
        self._ping = ping
        self._window = window or WindowSettings()  # type: ignore[call-arg]
        self._detector = detector or DetectorSettings()  # type: ignore[call-arg]

    def authorized(self, authorization: str | None) -> bool:
        if self._token is None:
            return True
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        # aiohttp hands non-ASCII header bytes over as surrogate escapes: compare the bytes.
        return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), self._token)

    async def health(self) -> Response:
        redis_ok = True
        if self._ping is not None:
            try:
                redis_ok = await self._ping()
            except Exception:
                redis_ok = False
        h = self._health
        ok = redis_ok and not h.failing
        return _json(
            200 if ok else 503,
            {
                "status": "ok" if ok else "degraded",
                "app_id": h.app_id,
                "model_version": h.model_version,
                "redis": "ok" if redis_ok else "unreachable",
                "failing_agents": dict(h.failing),
                "last_batch_at": dict(h.last_batch_at),
                "uptime_seconds": round(time.time() - h.started_at, 3),
            },
        )

    async def metrics(self, authorization: str | None) -> Response:
        if not self.authorized(authorization):
            return _unauthorized()
        return Response(200, self._metrics.render(), CONTENT_TYPE_LATEST)

    async def entity(
        self, entity: str, authorization: str | None, buckets: str | None = None
    ) -> Response:
        """The entity's readings per detector kind and its last ``buckets`` buckets."""
        if not self.authorized(authorization):
            return _unauthorized()
        if not is_valid_entity(entity):
            return _json(
                400,
                {"error": "invalid entity", "expected": "market, ticker:<SYMBOL> or topic:<slug>"},
            )
        n = SERIES_BUCKETS
        if buckets is not None:
            if not buckets.isdigit() or not 1 <= int(buckets) <= MAX_SERIES_BUCKETS:
                return _json(400, {"error": f"buckets must be 1..{MAX_SERIES_BUCKETS}"})
            n = int(buckets)
        store = self._store()
        try:
            view = await store.entity_view(entity)
        except _STORE_DOWN:
            return _store_unavailable()
        if view is None:
            return _json(404, {"error": "unknown entity", "entity": entity})
        g = WindowGeometry.of(self._window)
        last = g.bucket(view.clock_ms)
        try:
            stored = await store.buckets(entity, range(last - n + 1, last + 1))
        except _STORE_DOWN:
            return _store_unavailable()
        body = describe_entity(view, self._window, self._detector)
        body["series"] = series(stored, g, last, n)
        return _json(200, body)

    async def explain(self, alert_id: str, authorization: str | None) -> Response:
        """The decision behind an alert, recomputed from the stored buckets."""
        if not self.authorized(authorization):
            return _unauthorized()
        if not _ALERT_ID.fullmatch(alert_id):
            return _json(400, {"error": "invalid alert id", "expected": "32 hex characters"})
        store = self._store()
        try:
            found = await store.alert_record(alert_id)
            if found is not None:
                stored = await store.buckets(found[0], buckets_needed(found[1].data))
        except _STORE_DOWN:
            return _store_unavailable()
        if found is None:
            return _json(404, {"error": "unknown alert (or older than the kept history)",
                               "alert_id": alert_id})  # fmt: skip
        entity, record = found
        return _json(200, explain(entity, record.data, stored))

    async def alerts(self, authorization: str | None) -> Response:
        if not self.authorized(authorization):
            return _unauthorized()
        try:
            firing: Sequence[Any] = await self._store().firing_alerts()
        except _STORE_DOWN:
            return _store_unavailable()
        return _json(200, {"firing": _plain(list(firing))})


# Redis down, its pool exhausted, or a socket timeout: a 503 the caller may retry.
_STORE_DOWN = (StoreUnavailable, OSError, TimeoutError)


def _store_unavailable() -> Response:
    return _json(503, {"error": "store unavailable, retry later"})


def _unauthorized() -> Response:
    return _json(401, {"error": "missing or wrong bearer token"})


def install(app: Any, api: WebApi) -> None:
    """Register the routes on a ``faust.App``'s web server."""

    def reply(view: Any, response: Response) -> Any:
        # As a header: aiohttp refuses a charset inside its content_type argument.
        headers = {"Content-Type": response.content_type}
        return view.bytes(response.body, status=response.status, headers=headers)

    def auth(request: Any) -> str | None:
        value = request.headers.get("Authorization")
        return str(value) if value is not None else None

    @app.page("/health")
    async def health(view: Any, request: Any) -> Any:
        return reply(view, await api.health())

    @app.page("/metrics")
    async def metrics(view: Any, request: Any) -> Any:
        return reply(view, await api.metrics(auth(request)))

    @app.page("/entities/{entity}")
    async def entity(view: Any, request: Any, entity: str) -> Any:
        buckets = request.query.get("buckets")
        return reply(view, await api.entity(entity, auth(request), buckets))

    @app.page("/alerts")
    async def alerts(view: Any, request: Any) -> Any:
        return reply(view, await api.alerts(auth(request)))

    @app.page("/alerts/{alert_id}/explain")
    async def explain(view: Any, request: Any, alert_id: str) -> Any:
        return reply(view, await api.explain(alert_id, auth(request)))
