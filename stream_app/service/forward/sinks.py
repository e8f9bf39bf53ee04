"""The sinks as HTTP requests (aiohttp), plus the Alertmanager sink's firing bookkeeping.

A sink turns an alert into one ``Request`` (``request``) and hears when it was delivered
(``delivered``); the forwarder adds the per-attempt headers, posts it with ``HttpClient``
and decides about retries. Error details are scrubbed of the sink's URL before they reach
a log line or a dead letter: only ``scheme://host:port/…`` is ever shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from stream_app.service.forward.config import SinkSpec, masked_url
from stream_app.service.forward.ledger import Ledger
from stream_app.service.forward.payloads import (
    SIGNATURE_HEADER,
    ActiveAlert,
    am_key,
    am_transition,
    dashboard_link,
    sign,
    slack_message,
    webhook_body,
)
from stream_app.service.forward.retry import Attempt, classify
from stream_app.service.forward.routing import AlertView

__all__ = ["AlertmanagerSink", "HttpClient", "Request", "Sink", "SlackSink", "WebhookSink", "build"]

log = logging.getLogger(__name__)
_BODY_PEEK = 2048  # bytes of an answer kept for the error detail


@dataclass(frozen=True)
class Request:
    url: str
    body: bytes
    headers: dict[str, str]


def scrub(text: str, url: str) -> str:
    """``text`` without the URL (or its path, which may be a token) in it."""
    from urllib.parse import urlsplit

    path = urlsplit(url).path
    out = text.replace(url, masked_url(url))
    if len(path) > 1:
        out = out.replace(path, "/…")
    return out


class HttpClient:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def post(self, request: Request, headers: dict[str, str], seconds: float) -> Attempt:
        try:
            async with self.session.post(
                request.url, data=request.body, headers={**request.headers, **headers},
                timeout=aiohttp.ClientTimeout(total=seconds), allow_redirects=False,
            ) as resp:  # fmt: skip
                body = (await resp.content.read(_BODY_PEEK)).decode("utf-8", "replace")
                return classify(resp.status, body, resp.headers.get("Retry-After"))
        except TimeoutError:
            return Attempt(False, True, f"timeout after {seconds:g} s")
        except aiohttp.ClientError as exc:
            detail = scrub(f"{type(exc).__name__}: {exc}", request.url)[:300]
            return Attempt(False, True, f"connection error: {detail}")


class Sink:
    """One configured destination."""

    def __init__(self, spec: SinkSpec, dashboard_url: str | None) -> None:
        self.spec = spec
        self.name = spec.name
        self.dashboard_url = dashboard_url

    def link(self, view: AlertView) -> str | None:
        return dashboard_link(self.dashboard_url, view)

    async def request(self, view: AlertView, alert: dict[str, Any], partition: int) -> Request:
        raise NotImplementedError

    async def delivered(self, view: AlertView) -> None:
        """Called after the sink acknowledged ``view``'s request."""

    def discard(self, view: AlertView) -> None:
        """Called after an attempt the sink did not acknowledge."""

    def exclusive(self, view: AlertView) -> contextlib.AbstractAsyncContextManager[Any]:
        """Held around one attempt (request, POST, ``delivered``); a no-op but for Alertmanager."""
        return contextlib.nullcontext()


class WebhookSink(Sink):
    async def request(self, view: AlertView, alert: dict[str, Any], partition: int) -> Request:
        body = webhook_body(view, alert, self.link(view))
        assert self.spec.secret is not None  # config.resolve refuses a webhook without one
        headers = {**self.spec.headers, "Content-Type": "application/json",
                   SIGNATURE_HEADER: sign(self.spec.secret, body)}  # fmt: skip
        return Request(self.spec.url, body, headers)


class SlackSink(Sink):
    async def request(self, view: AlertView, alert: dict[str, Any], partition: int) -> Request:
        import json

        doc = slack_message(view, self.link(view), self.spec.evidence)
        body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
        return Request(self.spec.url, body, {"Content-Type": "application/json"})


class AlertmanagerSink(Sink):
    """``POST {url}/api/v2/alerts``; keeps the firing alerts in the ledger and re-sends them.

    One lock per Alertmanager alert (entity and kind) makes an attempt's read of the firing
    state, its POST and its update one step, and keeps a re-send from posting an alert
    whose resolve is in flight (which would make Alertmanager open it again).
    """

    def __init__(self, spec: SinkSpec, dashboard_url: str | None, ledger: Ledger) -> None:
        super().__init__(spec, dashboard_url)
        self.ledger = ledger
        self._locks: dict[str, asyncio.Lock] = {}
        self.endpoint = spec.url.rstrip("/") + "/api/v2/alerts"
        self._next: dict[str, tuple[str, ActiveAlert | None]] = {}

    def _request(self, posts: list[dict[str, Any]]) -> Request:
        import json

        body = json.dumps(posts, ensure_ascii=False).encode("utf-8")
        return Request(self.endpoint, body, {"Content-Type": "application/json"})

    async def request(self, view: AlertView, alert: dict[str, Any], partition: int) -> Request:
        key = am_key(view)
        active = await self.ledger.active(self.name, key)
        posts, after = am_transition(
            active, view, now=datetime.now(UTC), resend_seconds=self.spec.resend_seconds,
            link=self.link(view), extra_labels=self.spec.labels, partition=partition,
        )  # fmt: skip
        self._next[view.alert_id] = (key, after)
        return self._request(posts)

    async def delivered(self, view: AlertView) -> None:
        key, after = self._next.pop(view.alert_id)
        await self.ledger.set_active(self.name, key, after)

    def discard(self, view: AlertView) -> None:
        self._next.pop(view.alert_id, None)

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def exclusive(self, view: AlertView) -> contextlib.AbstractAsyncContextManager[Any]:
        return self._lock(am_key(view))

    async def resend(self, http: HttpClient, partitions: set[int]) -> int:
        """Re-post the firing alerts of ``partitions`` (this consumer's); returns how many."""
        keys = sorted(await self.ledger.all_active(self.name))
        async with contextlib.AsyncExitStack() as held:
            for key in keys:  # sorted, and a delivery holds one: no deadlock
                await held.enter_async_context(self._lock(key))
            firing = await self.ledger.all_active(self.name)  # again: resolves may have won
            active = [a for k, a in firing.items() if k in keys
                      and (a.partition is None or a.partition in partitions)]  # fmt: skip
            if not active:
                return 0
            now = datetime.now(UTC)
            ends = now.timestamp() + 4 * self.spec.resend_seconds
            until = datetime.fromtimestamp(ends, UTC)
            got = await http.post(self._request([a.postable(until) for a in active]), {},
                                  self.spec.timeout_seconds)  # fmt: skip
        if not got.ok:
            log.warning("alertmanager sink %s (%s): re-send of %d firing alerts failed: %s",
                        self.name, self.spec.masked, len(active), got.detail)  # fmt: skip
            return 0
        return len(active)


def build(spec: SinkSpec, dashboard_url: str | None, ledger: Ledger) -> Sink:
    if spec.type == "webhook":
        return WebhookSink(spec, dashboard_url)
    if spec.type == "slack":
        return SlackSink(spec, dashboard_url)
    return AlertmanagerSink(spec, dashboard_url, ledger)
