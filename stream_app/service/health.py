"""What the worker's stages report about themselves, and what ``/health`` makes of it.

The stages record each batch's success or failure here; the web API reads it. Neither
side imports the other. ``CachedProbe`` keeps ``/health`` cheap and truthful under load:
however many probes arrive, Redis sees at most one PING per ``ttl`` (single flight, on a
connection of its own, so a busy API pool cannot make health report Redis down).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["CachedProbe", "HealthState"]


@dataclass
class HealthState:
    """What the agents report about themselves; ``/health`` turns it into a status."""

    app_id: str
    model_version: str
    started_at: float = field(default_factory=time.time)
    last_batch_at: dict[str, float] = field(default_factory=dict)
    failing: dict[str, str] = field(default_factory=dict)  # agent -> error class name

    def batch_ok(self, agent: str) -> None:
        self.last_batch_at[agent] = time.time()
        self.failing.pop(agent, None)

    def batch_failed(self, agent: str, exc: BaseException) -> None:
        self.failing[agent] = type(exc).__name__


class CachedProbe:
    """``await probe()``: the result of ``check()``, at most ``ttl`` seconds old.

    Concurrent callers share one check in flight; a check that raises or outlasts
    ``timeout`` counts as False. The first call after ``ttl`` starts a new check.
    """

    def __init__(
        self, check: Callable[[], Awaitable[bool]], *, ttl: float = 1.0, timeout: float = 2.0
    ) -> None:
        self._check = check
        self._ttl = ttl
        self._timeout = timeout
        self._result = False
        self._at: float | None = None
        self._running: asyncio.Task[bool] | None = None
        self.checks = 0  # how many checks ran (for tests and metrics)

    async def _run(self) -> bool:
        self.checks += 1
        try:
            ok = bool(await asyncio.wait_for(self._check(), self._timeout))
        except Exception:  # unreachable, timed out, refused: all mean "not ok"
            ok = False
        self._result, self._at = ok, time.monotonic()
        return ok

    async def __call__(self) -> bool:
        if self._at is not None and time.monotonic() - self._at < self._ttl:
            return self._result
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._run())
        return await asyncio.shield(self._running)
