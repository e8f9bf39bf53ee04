"""Redis client construction from Settings: AUTH, TLS (rediss://), cluster; real AUTH and TLS.

The unit tests read back the connection arguments redis-py will use; the integration
tests run the window store against a password-protected and a TLS-only redis-server.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection

from stream_app.config import Settings
from stream_app.core.aggregator import Aggregator
from stream_app.devenv.embedded import Service, free_port, redis_binary, start_redis
from stream_app.store.base import StoreUnavailable
from stream_app.store.client import RedisConfigError, redis_client, redis_client_kwargs
from stream_app.store.redis import RedisWindowStore
from tests.support.aggregator_cases import DS, WS, make_events, run_batches

PASSWORD = "s3cr3t-Redis-pw-91f0"


def _settings(url: str, **kw: object) -> Settings:
    return Settings(redis_url=SecretStr(url), **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA) and its key."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def test_password_and_user_come_from_the_url() -> None:
    client = redis_client(_settings(f"redis://app:{PASSWORD}@10.0.0.1:6380/2"))
    assert isinstance(client, Redis)
    kw = client.connection_pool.connection_kwargs
    assert (kw["username"], kw["password"], kw["host"], kw["port"], kw["db"]) == (
        "app", PASSWORD, "10.0.0.1", 6380, 2,
    )  # fmt: skip
    assert kw["socket_timeout"] > 0
    assert kw["socket_connect_timeout"] > 0


def test_rediss_uses_tls_with_verification_and_the_configured_files(
    tls_files: tuple[Path, Path],
) -> None:
    cert, key = tls_files
    s = _settings(
        "rediss://:pw@cache.example:6379/0",
        redis_ssl_ca_certs=cert,
        redis_ssl_certfile=cert,
        redis_ssl_keyfile=key,
    )
    client = redis_client(s)
    pool = client.connection_pool  # type: ignore[union-attr]
    assert pool.connection_class is SSLConnection
    kw = pool.connection_kwargs
    assert kw["ssl_ca_certs"] == str(cert)
    assert kw["ssl_certfile"] == str(cert)
    assert kw["ssl_keyfile"] == str(key)
    assert kw.get("ssl_cert_reqs", "required") == "required"


def test_cluster_setting_picks_the_cluster_client_with_the_same_auth_and_tls(
    tls_files: tuple[Path, Path],
) -> None:
    cert, _ = tls_files
    s = _settings("rediss://u:pw@127.0.0.1:7000/0", redis_cluster=True, redis_ssl_ca_certs=cert)
    client = redis_client(s)
    assert isinstance(client, RedisCluster)
    kw = client.connection_kwargs
    assert kw["connection_class"] is SSLConnection
    assert (kw["username"], kw["password"], kw["ssl_ca_certs"]) == ("u", "pw", str(cert))


@pytest.mark.parametrize(
    ("url", "extra", "message"),
    [
        ("redis://h:6379/0", {"redis_ssl_ca_certs": Path("/ca.pem")}, "not rediss://"),
        ("rediss://h:6379/0", {"redis_ssl_keyfile": Path("/k.pem")}, "needs"),
        ("unix:///tmp/redis.sock", {"redis_cluster": True}, "CLUSTER"),
    ],
)
def test_contradictory_settings_are_refused(url: str, extra: dict, message: str) -> None:
    with pytest.raises(RedisConfigError, match=message):
        redis_client(_settings(url, **extra))


def test_kwargs_never_hold_the_url_or_password() -> None:
    kw = redis_client_kwargs(_settings(f"redis://:{PASSWORD}@h:1/0"))
    assert PASSWORD not in repr(kw)


@pytest.fixture
def auth_redis(tmp_path: Path) -> Iterator[Service]:
    svc = start_redis(tmp_path / "auth", password=PASSWORD)
    try:
        yield svc
    finally:
        svc.stop()


@pytest.mark.integration
async def test_store_works_against_a_password_protected_server(
    auth_redis: Service, unique: str
) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{auth_redis.port}/0"
    store = RedisWindowStore.from_settings(
        _settings(url, redis_key_prefix=f"t{unique}", window=WS, detector=DS)
    )
    try:
        events = make_events(31, n=60, entities=("market",))
        outs = await run_batches(Aggregator(store, WS, DS), events, 20)
        assert sum(o.applied for o in outs) > 0
        view = await store.entity_view("market")
        assert view is not None
    finally:
        await store.close()


@pytest.mark.integration
async def test_wrong_password_is_store_unavailable_not_a_hang(auth_redis: Service) -> None:
    url = f"redis://:wrong@127.0.0.1:{auth_redis.port}/0"
    store = RedisWindowStore.from_settings(_settings(url, redis_retry_max_seconds=0.5))
    try:
        with pytest.raises(StoreUnavailable) as info:
            await store.entity_view("market")
        assert "wrong" not in str(info.value)
        assert PASSWORD not in str(info.value)
    finally:
        await store.close()


@pytest.fixture
def tls_redis(tmp_path: Path, tls_files: tuple[Path, Path]) -> Iterator[Service]:
    cert, key = tls_files
    port = free_port()
    argv = [
        redis_binary(), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
        "--tls-cert-file", str(cert), "--tls-key-file", str(key),
        "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
        "--requirepass", PASSWORD, "--save", "", "--appendonly", "no", "--daemonize", "no",
    ]  # fmt: skip
    svc = Service("redis", port, argv, tmp_path / "tls-redis.log", tmp_path)
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.mark.integration
async def test_store_over_tls_with_auth(
    tls_redis: Service, tls_files: tuple[Path, Path], unique: str
) -> None:
    cert, _ = tls_files
    url = f"rediss://:{PASSWORD}@127.0.0.1:{tls_redis.port}/0"
    s = _settings(url, redis_ssl_ca_certs=cert, redis_key_prefix=f"t{unique}", window=WS,
                  detector=DS)  # fmt: skip
    store = RedisWindowStore.from_settings(s)
    try:
        outs = await run_batches(Aggregator(store, WS, DS), make_events(32, n=40), 20)
        assert sum(o.applied for o in outs) > 0
    finally:
        await store.close()
    # Without the CA the self-signed server certificate is rejected, not silently accepted.
    unverified = RedisWindowStore.from_settings(_settings(url, redis_retry_max_seconds=0.5))
    try:
        with pytest.raises(StoreUnavailable):
            await unverified.entity_view("market")
    finally:
        await unverified.close()


@pytest.mark.integration
async def test_pools_are_separate_and_a_bounded_one_fails_fast(redis_server: Service) -> None:
    """The worker gives the aggregator, the API and the health probe a pool each: a
    saturated API pool answers 'no connection' within its wait, and another client is
    not affected (before, all three shared one pool of 100 and /health said Redis was
    down under load)."""
    import asyncio

    from redis.exceptions import ConnectionError as RedisConnectionError

    s = _settings(redis_server.url)
    api = redis_client(s, max_connections=2, pool_timeout=0.2)
    other = redis_client(s)
    try:
        holders = [asyncio.ensure_future(api.blpop([f"none-{i}"], timeout=1)) for i in range(2)]
        await asyncio.sleep(0.1)  # both of the API pool's connections are now busy
        with pytest.raises(RedisConnectionError, match="No connection available"):
            await api.ping()
        assert await other.ping()  # a pool of its own is not starved
        assert await asyncio.gather(*holders) == [None, None]
        assert await api.ping()  # free again
    finally:
        await api.aclose()
        await other.aclose()
