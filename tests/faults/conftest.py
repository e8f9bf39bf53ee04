"""Fixtures of the fault suite: the worker launcher of tests/integration and texts by class.

The texts the tiny random model calls negative / not negative are picked once per session
through the real ``Scorer``, so a feed can hold a negative burst that fires an alert.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fault_harness import Texts, WorkerPool, classify_texts


@pytest.fixture(scope="session")
def texts(tiny_model_dir: Path, data_dir: Path) -> Texts:
    return classify_texts(tiny_model_dir, data_dir)


@pytest.fixture
def pool(tiny_model_dir: Path, unique: str, tmp_path: Path) -> Iterator[Any]:
    """Factory of worker pools; every worker started through one is stopped afterwards."""
    pools: list[WorkerPool] = []

    def make(broker: Any, redis: Any, *, tag: str = "", **extra: str | int | float) -> WorkerPool:
        p = WorkerPool(broker, redis, tiny_model_dir, unique + tag, tmp_path, extra)
        pools.append(p)
        return p

    yield make
    for p in pools:
        p.stop_all()
