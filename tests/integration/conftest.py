"""Integration fixtures: real ``finpulse worker`` processes on the session's broker and Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stream_app.devenv.embedded import Service
from tests.support.worker_proc import WorkerProcess, worker_env


@pytest.fixture
def start_worker(
    broker: Service, redis_server: Service, tiny_model_dir: Path, unique: str, tmp_path: Path
) -> Iterator[Any]:
    workers: list[WorkerProcess] = []

    def start(model_dir: Path | None = None, **extra: str | int | float) -> WorkerProcess:
        """A worker on ``model_dir`` (default: the tiny test model) with ``extra`` settings."""
        env = worker_env(broker, redis_server, model_dir or tiny_model_dir, unique, **extra)
        w = WorkerProcess(env, tmp_path / f"worker-{len(workers)}.log")
        workers.append(w)
        w.start()
        return w

    yield start
    for w in workers:
        w.stop()
