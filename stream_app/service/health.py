"""What the worker's stages report about themselves, and what ``/health`` makes of it.

The stages record each batch's success or failure here; the web API reads it. Neither
side imports the other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["HealthState"]


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
