"""HTTP binding of the desk dashboard on an ``aiohttp`` application (the worker's web server).

Routes (all ``GET``; other methods are 405):

==========================================  ===================================================
``/``                                       the page (no data in it: no token needed)
``/dashboard/<asset>``                      its script, style sheet and the vendored uPlot
``/api/overview?limit=N``                   ``Overview``: ranked entity rows, firing + recent alerts
``/api/entities/{entity}/series?buckets=N`` ``SeriesOut``: per-bucket counts up to the entity clock
``/api/entities/{entity}/headlines?limit=N`` ``HeadlinesOut``: the entity's latest headlines
``/api/alerts/recent?limit=N``              ``AlertsOut``: the latest alerts, any state
``/api/stream``                             ``text/event-stream``: ``overview`` on every change
==========================================  ===================================================

Every ``/api`` route needs ``Authorization: Bearer <FINPULSE_API_TOKEN>`` when a token is
set (401 otherwise), the same check as the rest of the API. The page sends it with
``fetch``, also for the stream (``EventSource`` cannot send headers, so the token would
have to go in the URL, which the page never does). Errors are JSON ``{"error": "..."}``:
400 for a bad parameter, 404 for an unknown entity, 503 when the store cannot be read or
too many streams are open; none carries a setting or an exception message.

The page is served with a strict Content-Security-Policy (only this origin; no inline
script), and renders every string with ``textContent``, so a headline cannot inject
markup.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web
from pydantic import BaseModel

from finpulse.resources import dashboard_asset
from stream_app.service.dashboard.api import DashboardApi, DashboardError, parse_limit
from stream_app.service.dashboard.feed import FeedFull, LiveFeed

__all__ = ["ASSETS", "install_dashboard"]


# URL path -> (file under static/, content type). Nothing else under static/ is served.
ASSETS: Final = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/dashboard/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/dashboard/app.css": ("app.css", "text/css; charset=utf-8"),
    "/dashboard/vendor/uplot/uPlot.iife.min.js": (
        "vendor/uplot/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
    ),
    "/dashboard/vendor/uplot/uPlot.min.css": (
        "vendor/uplot/uPlot.min.css",
        "text/css; charset=utf-8",
    ),
}

_COMMON: Final = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_PAGE: Final = {
    **_COMMON,
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
}
_STREAM: Final = {
    **_COMMON,
    "Content-Type": "text/event-stream; charset=utf-8",
    "X-Accel-Buffering": "no",  # proxies must not buffer the stream
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=_COMMON)


def _ok(model: BaseModel) -> web.Response:
    return web.Response(
        body=model.model_dump_json().encode(),
        content_type="application/json",
        headers=_COMMON,
    )


def _connected(request: web.Request) -> bool:
    transport = request.transport
    return transport is not None and not transport.is_closing()


def _load_assets() -> dict[str, tuple[bytes, str]]:
    return {path: (dashboard_asset(name), ct) for path, (name, ct) in ASSETS.items()}


def install_dashboard(
    web_app: web.Application,
    api: DashboardApi,
    *,
    authorized: Callable[[str | None], bool],
    feed_interval: float = 1.0,
    max_streams: int = 32,
) -> LiveFeed:
    """Add the dashboard's routes to ``web_app``; returns the live feed it streams from.

    ``authorized(authorization_header)`` is the API's bearer check. The feed re-reads the
    overview every ``feed_interval`` seconds while a stream is open, and is closed on the
    application's shutdown, so open streams end at once.
    """
    assets = _load_assets()
    limits = api.limits

    async def produce() -> bytes:
        return (await api.overview()).model_dump_json().encode()

    live = LiveFeed(produce, interval=feed_interval, max_streams=max_streams)

    async def asset(request: web.Request) -> web.StreamResponse:
        body, content_type = assets[request.path]
        headers = _PAGE if content_type.startswith("text/html") else _COMMON
        return web.Response(body=body, headers={**headers, "Content-Type": content_type})

    def guarded(handler: Handler) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            if not authorized(request.headers.get("Authorization")):
                return _error(401, "missing or wrong bearer token")
            try:
                return await handler(request)
            except DashboardError as exc:
                return _error(exc.status, exc.message)

        return run

    def arg(request: web.Request, name: str, default: int, maximum: int) -> int:
        return parse_limit(request.query.get(name), name, default, maximum)

    async def overview(request: web.Request) -> web.StreamResponse:
        limit = arg(request, "limit", limits.entities, limits.max_entities)
        return _ok(await api.overview(limit))

    async def series(request: web.Request) -> web.StreamResponse:
        buckets = arg(request, "buckets", min(limits.buckets, api.max_buckets), api.max_buckets)
        return _ok(await api.series(request.match_info["entity"], buckets))

    async def headlines(request: web.Request) -> web.StreamResponse:
        limit = arg(request, "limit", limits.headlines, limits.max_headlines)
        return _ok(await api.headlines(request.match_info["entity"], limit))

    async def recent(request: web.Request) -> web.StreamResponse:
        return _ok(await api.recent(arg(request, "limit", limits.alerts, limits.max_alerts)))

    async def stream(request: web.Request) -> web.StreamResponse:
        try:
            async with live.stream(lambda: _connected(request)) as events:
                response = web.StreamResponse(headers=_STREAM)
                await response.prepare(request)
                async for event in events:
                    if event.name == "heartbeat":
                        await response.write(b": heartbeat\n\n")
                    else:
                        name = event.name.encode()
                        await response.write(b"event: " + name + b"\ndata: " + event.data + b"\n\n")
                with contextlib.suppress(ConnectionResetError):
                    await response.write_eof()
                return response
        except FeedFull:  # raised on entering only, before anything was sent
            return _error(503, "too many dashboard streams; retry later")

    async def close_feed(_: web.Application) -> None:
        await live.close()

    router = web_app.router
    for path in ASSETS:
        router.add_get(path, asset)
    router.add_get("/api/overview", guarded(overview))
    router.add_get("/api/entities/{entity}/series", guarded(series))
    router.add_get("/api/entities/{entity}/headlines", guarded(headlines))
    router.add_get("/api/alerts/recent", guarded(recent))
    router.add_get("/api/stream", guarded(stream))
    web_app.on_shutdown.append(close_feed)
    return live
