"""Shared fixtures: real services on free loopback ports, unique names, small models.

Integration tests share one tansu broker and one Redis server per session (started
here, stopped after) and isolate themselves with uuid-named topics, consumer groups and
Redis key prefixes. Nothing skips quietly: a missing binary fails the test loudly.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream_app.embedded import Service, start_broker, start_redis

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data" / "twitter-financial-news"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


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
    from models.testing import make_tiny_model_dir

    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny-model") / "model")
