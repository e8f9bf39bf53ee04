"""A real worker with a Redis password and an API token: secrets never leak; the API is
read-only, token-protected and validates its parameters.

The worker's whole log (stdout + stderr, Faust banner included), ``/health``, ``/metrics``
and every API reply are searched for the secrets.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stream_app.devenv.embedded import Service, start_redis
from tests.support.fault_harness import RedisView, wait_for
from tests.support.worker_proc import http_get, produce

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

REDIS_PASSWORD = "RedisPw-4c1d-Secret"
API_TOKEN = "ApiTok-9b2e-Secret"


@pytest.fixture
def auth_redis(tmp_path: Path) -> Iterator[Service]:
    svc = start_redis(tmp_path / "auth-redis", password=REDIS_PASSWORD)
    try:
        yield svc
    finally:
        svc.stop()


def _request(method: str, url: str, token: str | None = API_TOKEN) -> tuple[int, bytes]:
    req = urllib.request.Request(url, method=method, data=b"{}" if method != "GET" else None)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def test_secrets_stay_out_of_logs_and_endpoints_and_api_is_read_only(
    pool: Any, broker: Service, auth_redis: Service
) -> None:
    redis_url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{auth_redis.port}/0"
    p = pool(broker, auth_redis, redis_url=redis_url, api_token=API_TOKEN)
    w = p.spawn()
    s = w.settings
    rows = [
        {"id": f"s{i}", "headline": f"Update {i}", "tickers": ["SEC"],
         "published_at": "2026-11-23T08:00:00+00:00"}
        for i in range(10)
    ]  # fmt: skip
    await produce(s, [json.dumps(r).encode() for r in rows])
    view = RedisView(s)
    try:

        async def counted() -> bool:
            return len(await view.ids("market")) == len(rows)

        await wait_for(counted, 60, "records counted through the password-protected Redis")
    finally:
        await view.close()

    base = w.base_url
    bodies: dict[str, bytes] = {}
    for path in ("/health", "/metrics", "/entities/market", "/entities/ticker:SEC", "/alerts"):
        status, body = http_get(base + path, API_TOKEN)
        assert status == 200, (path, status, body[:200])
        bodies[path] = body
    assert json.loads(bodies["/entities/ticker:SEC"])["window"]["neutral"] >= 0

    # Read-only: every write method is refused on every route.
    for path in ("/health", "/metrics", "/entities/market", "/alerts"):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            status, body = _request(method, base + path)
            assert status == 405, (method, path, status)
            bodies[f"{method} {path}"] = body

    # Token: required everywhere but /health; wrong or missing is 401.
    for path in ("/metrics", "/entities/market", "/alerts"):
        assert http_get(base + path)[0] == 401
        assert http_get(base + path, "not-the-token")[0] == 401
    assert http_get(base + "/health")[0] == 200

    # Parameters: malformed entity names are a 400 with a hint, unknown ones a 404.
    for bad in ("x" * 300, "ticker:lower", "ticker:", "topic:Not_A_Slug", "%7Bmarket%7D", "..%2F"):
        status, body = http_get(f"{base}/entities/{bad}", API_TOKEN)
        assert status in (400, 404), (bad, status)
        if status == 400:
            assert b"expected" in body
    assert http_get(f"{base}/entities/ticker:NOPE", API_TOKEN)[0] == 404

    w.stop()
    log = w.log_path.read_text(errors="replace")
    assert "***" in log, "the masked Redis URL should be logged (so we searched the right log)"
    for secret in (REDIS_PASSWORD, API_TOKEN):
        assert secret not in log
        for where, body in bodies.items():
            assert secret.encode() not in body, where
