"""Opt-in predictor fault injection for the fault-tolerance tests of a real worker process.

Workers started through ``tests.support.fault_worker`` wrap their predictor when one of
these variables is set (the product itself never reads them; a warning is logged):

* ``FINPULSE_FAULT_POISON_SUBSTRING``: ``predict`` raises for any batch holding a text that
  contains this substring. The ``Scorer`` splits and retries, so exactly the poison records
  end in the dead-letter topic with reason ``predictor_failure``.
* ``FINPULSE_FAULT_FAIL_CALLS``: the first N ``predict`` calls raise (a transient failure,
  e.g. a GPU hiccup): split-and-retry must recover every record, none is dead-lettered.
* ``FINPULSE_FAULT_SLOW_SECONDS``: every ``predict`` call takes this much longer (a big
  model on a slow device), so a test can stop the worker in the middle of one.
* ``FINPULSE_FAULT_MARK_DIR``: every ``predict`` call creates ``call-N.started`` in this
  directory when it begins and ``call-N.done`` (holding the number of texts) when it
  returns, so a test can see (not guess) that a model call is in flight or has just
  ended, and count how many texts went through the model.

These are environment variables, not ``Settings`` fields, so they never appear in the
configuration documentation or a config file by accident. ``worker_proc`` picks the
fault entry point whenever a worker's environment holds one of them.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "FAIL_CALLS_ENV",
    "MARK_DIR_ENV",
    "POISON_ENV",
    "SLOW_ENV",
    "FaultyPredictor",
    "InjectedFault",
    "wrap_from_env",
]

log = logging.getLogger(__name__)

POISON_ENV = "FINPULSE_FAULT_POISON_SUBSTRING"
FAIL_CALLS_ENV = "FINPULSE_FAULT_FAIL_CALLS"
SLOW_ENV = "FINPULSE_FAULT_SLOW_SECONDS"
MARK_DIR_ENV = "FINPULSE_FAULT_MARK_DIR"


class InjectedFault(RuntimeError):
    """Raised by ``FaultyPredictor`` on purpose."""


class FaultyPredictor:
    """Delegates to a real predictor, failing as configured."""

    def __init__(
        self,
        inner: Any,
        *,
        poison: str | None = None,
        fail_calls: int = 0,
        slow_seconds: float = 0.0,
        mark_dir: Path | None = None,
    ) -> None:
        self.inner = inner
        self.poison = poison or None
        self.fail_calls = fail_calls
        self.slow_seconds = slow_seconds
        self.mark_dir = mark_dir
        self.calls = 0
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:  # model_version, batch_size, ...
        return getattr(self.inner, name)

    def predict(self, texts: Sequence[str]) -> Any:
        with self._lock:
            self.calls += 1
            call = self.calls
            transient = call <= self.fail_calls
        self._mark(call, "started", "")
        try:
            if transient:
                raise InjectedFault(f"injected transient failure (call {call})")
            if self.poison is not None and any(self.poison in t for t in texts):
                raise InjectedFault("injected failure: batch holds a poison text")
            if self.slow_seconds:
                time.sleep(self.slow_seconds)
            return self.inner.predict(texts)
        finally:
            self._mark(call, "done", str(len(texts)))

    def _mark(self, call: int, state: str, text: str) -> None:
        if self.mark_dir is not None:
            tmp = self.mark_dir / f".call-{call}.{state}"
            tmp.write_text(text)
            tmp.replace(self.mark_dir / f"call-{call}.{state}")  # appears whole or not at all


def wrap_from_env(predictor: Any, environ: Mapping[str, str] | None = None) -> Any:
    """``predictor`` itself, or wrapped in ``FaultyPredictor`` when a fault variable is set."""
    env = os.environ if environ is None else environ
    poison = env.get(POISON_ENV) or None
    fail_calls = int(env.get(FAIL_CALLS_ENV) or 0)
    slow = float(env.get(SLOW_ENV) or 0)
    mark_dir = Path(env[MARK_DIR_ENV]) if env.get(MARK_DIR_ENV) else None
    if poison is None and fail_calls <= 0 and not slow and mark_dir is None:
        return predictor
    log.warning("FAULT INJECTION ACTIVE (FINPULSE_FAULT_*): for tests only")
    return FaultyPredictor(
        predictor, poison=poison, fail_calls=fail_calls, slow_seconds=slow, mark_dir=mark_dir
    )
