"""Opt-in predictor fault injection for the fault-tolerance tests of a real worker process.

Workers started through ``tests.support.fault_worker`` wrap their predictor when one of
these variables is set (the product itself never reads them; a warning is logged):

* ``FINPULSE_FAULT_POISON_SUBSTRING``: ``predict`` raises for any batch holding a text that
  contains this substring. The ``Scorer`` splits and retries, so exactly the poison records
  end in the dead-letter topic with reason ``predictor_failure``.
* ``FINPULSE_FAULT_FAIL_CALLS``: the first N ``predict`` calls raise (a transient failure,
  e.g. a GPU hiccup): split-and-retry must recover every record, none is dead-lettered.

These are environment variables, not ``Settings`` fields, so they never appear in the
configuration documentation or a config file by accident. ``worker_proc`` picks the
fault entry point whenever a worker's environment holds one of them.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["FAIL_CALLS_ENV", "POISON_ENV", "FaultyPredictor", "InjectedFault", "wrap_from_env"]

log = logging.getLogger(__name__)

POISON_ENV = "FINPULSE_FAULT_POISON_SUBSTRING"
FAIL_CALLS_ENV = "FINPULSE_FAULT_FAIL_CALLS"


class InjectedFault(RuntimeError):
    """Raised by ``FaultyPredictor`` on purpose."""


class FaultyPredictor:
    """Delegates to a real predictor, failing as configured."""

    def __init__(self, inner: Any, *, poison: str | None = None, fail_calls: int = 0) -> None:
        self.inner = inner
        self.poison = poison or None
        self.fail_calls = fail_calls
        self.calls = 0
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:  # model_version, batch_size, ...
        return getattr(self.inner, name)

    def predict(self, texts: Sequence[str]) -> Any:
        with self._lock:
            self.calls += 1
            transient = self.calls <= self.fail_calls
        if transient:
            raise InjectedFault(f"injected transient failure (call {self.calls})")
        if self.poison is not None and any(self.poison in t for t in texts):
            raise InjectedFault("injected failure: batch holds a poison text")
        return self.inner.predict(texts)


def wrap_from_env(predictor: Any, environ: Mapping[str, str] | None = None) -> Any:
    """``predictor`` itself, or wrapped in ``FaultyPredictor`` when a fault variable is set."""
    env = os.environ if environ is None else environ
    poison = env.get(POISON_ENV) or None
    fail_calls = int(env.get(FAIL_CALLS_ENV) or 0)
    if poison is None and fail_calls <= 0:
        return predictor
    log.warning("FAULT INJECTION ACTIVE (%s / %s): for tests only", POISON_ENV, FAIL_CALLS_ENV)
    return FaultyPredictor(predictor, poison=poison, fail_calls=fail_calls)
