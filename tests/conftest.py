"""Shared fixtures: real services on free loopback ports, unique names, small models.

Integration tests share one tansu broker and one Redis server per session (started
here, stopped after) and isolate themselves with uuid-named topics, consumer groups and
Redis key prefixes. Nothing skips quietly: a missing binary fails the test loudly.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stream_app.devenv.embedded import Service, start_broker, start_redis

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    from finpulse.resources import dataset_dir

    return dataset_dir()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A tansu Kafka-compatible broker (memory storage) for the whole session."""
    svc = start_broker(tmp_path_factory.mktemp("broker"))
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A real Redis server with AOF persistence, so restart tests keep data."""
    svc = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topics, groups and Redis prefixes of one test."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved, loadable two-head model with a tiny random BERT encoder (seconds to build)."""
    from tests.support.tiny_model import make_tiny_model_dir

    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny-model") / "model")


# --- reliability fixtures (faults, scale-out, security) ---------------------------------


@pytest.fixture
def tcp_proxy() -> Iterator[Any]:
    """Factory: ``tcp_proxy(target_port, port=0) -> TcpProxy`` (cut()/restore()), all stopped."""
    from tests.support.tcp_proxy import TcpProxy

    proxies: list[TcpProxy] = []

    def make(target_port: int, port: int = 0) -> TcpProxy:
        proxy = TcpProxy(target_port, port).start()
        proxies.append(proxy)
        return proxy

    yield make
    for p in proxies:
        p.stop()


@pytest.fixture
def proxied_broker(tmp_path: Path, tcp_proxy: Any) -> Iterator[tuple[Service, Any]]:
    """A dedicated tansu whose *advertised* listener is a cuttable proxy: ``(service, proxy)``.

    Kafka clients reconnect to the advertised address from metadata, so the proxy must be
    what tansu advertises, or clients would bypass it after bootstrap. ``service.url``
    points at the proxy.
    """
    from stream_app.devenv.embedded import free_port, tansu_binary

    real, front = free_port(), free_port()
    argv = [
        tansu_binary(), "broker",
        "--listener-url", f"tcp://127.0.0.1:{real}",
        "--advertised-listener-url", f"tcp://127.0.0.1:{front}",
    ]  # fmt: skip
    svc = Service(name="broker", port=real, argv=argv, log_path=tmp_path / "broker.log",
                  workdir=tmp_path)  # fmt: skip
    svc.env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
    svc.start()
    proxy = tcp_proxy(real, front)
    front_svc = Service(name="broker", port=front, argv=[], log_path=svc.log_path, workdir=tmp_path)
    try:
        yield front_svc, proxy
    finally:
        svc.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Service]:
    """A Redis server (AOF) for one test alone, free to be stopped and restarted."""
    svc = start_redis(tmp_path / "own-redis")
    try:
        yield svc
    finally:
        svc.stop()


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too, as Redis Cluster needs."""
    import random
    import socket

    for _ in range(200):
        port = random.randint(20_000, 45_000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10_000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Service]]:
    """A real 3-primary Redis Cluster (no replicas) on free loopback ports."""
    import shutil
    import subprocess

    from stream_app.devenv.embedded import redis_binary

    root = tmp_path_factory.mktemp("redis-cluster")
    nodes: list[Service] = []
    try:
        for i in range(3):
            port, wd = _cluster_port(), root / f"node{i}"
            wd.mkdir()
            argv = [
                redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(wd),
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--save", "", "--appendonly", "no", "--daemonize", "no",
            ]  # fmt: skip
            svc = Service(name="redis", port=port, argv=argv, log_path=wd / "redis.log", workdir=wd)
            svc.start()
            nodes.append(svc)
        cli = shutil.which("redis-cli")
        assert cli, "redis-cli not found (it ships with redis-server)"
        addrs = [f"127.0.0.1:{n.port}" for n in nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addrs, "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            states = [
                subprocess.run(
                    [cli, "-p", str(n.port), "cluster", "info"], capture_output=True, text=True
                ).stdout
                for n in nodes
            ]
            if all("cluster_state:ok" in s for s in states):
                break
            assert time.monotonic() < deadline, f"cluster not ok: {states}"
            time.sleep(0.2)
        yield nodes
    finally:
        for n in nodes:
            n.stop()
