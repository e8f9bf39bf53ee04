"""Back-off between delivery attempts, and what an HTTP answer means for a delivery (pure).

* 2xx: delivered.
* 408, 425, 429 and 5xx, timeouts and connection errors: worth retrying. A
  ``Retry-After`` in seconds (429/503) is honoured, up to ``backoff_max_seconds``.
* Any other status (400 bad payload, 401/403 bad credentials, 404/410 gone, 3xx
  redirects, which are not followed): the sink rejected the request and the same request
  will be rejected again, so it is dead-lettered at once with the status and the start of
  the answer.

Delay before attempt ``n + 1`` (after ``n`` failures): ``d = min(max, base * 2**(n-1))``,
then "equal jitter", uniform in ``[d/2, d]``, so forwarders that failed together do not
retry in lockstep.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Attempt", "RetryPolicy", "classify", "parse_retry_after"]

_RETRYABLE = frozenset({408, 425, 429})


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    timeout_seconds: float = 10.0

    def delay(self, failures: int, rng: random.Random, retry_after: float | None = None) -> float:
        d = min(self.backoff_max_seconds, self.backoff_seconds * 2 ** max(0, failures - 1))
        wait = d / 2 + rng.uniform(0, d / 2)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.backoff_max_seconds))
        return wait

    def worst_case_seconds(self) -> float:
        """The longest one delivery can take: every attempt times out, every wait is full."""
        waits = sum(
            min(self.backoff_max_seconds, self.backoff_seconds * 2**i)
            for i in range(self.max_attempts - 1)
        )
        return self.max_attempts * self.timeout_seconds + waits


@dataclass(frozen=True)
class Attempt:
    """The outcome of one HTTP attempt."""

    ok: bool
    retryable: bool
    detail: str  # "http 503: <start of body>", "timeout after 10 s", ...
    status: int | None = None
    retry_after: float | None = None

    @property
    def reason(self) -> str:
        """Short reason for the next attempt's ``X-Finpulse-Retry-Reason`` header."""
        return f"http {self.status}" if self.status is not None else self.detail


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header; HTTP dates and junk are ignored (None)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86_400 else None


def classify(status: int, body: str, retry_after: str | None = None) -> Attempt:
    snippet = " ".join(body.split())[:200]
    detail = f"http {status}" + (f": {snippet}" if snippet else "")
    if 200 <= status < 300:
        return Attempt(True, False, detail, status)
    retryable = status in _RETRYABLE or status >= 500
    return Attempt(False, retryable, detail, status, parse_retry_after(retry_after))
