"""Test entry point: ``python -m tests.support.fault_worker`` is ``finpulse worker`` with faults.

The product never reads ``FINPULSE_FAULT_*``; fault tests start their workers through
this module instead, which wraps the real predictor in ``FaultyPredictor`` (see
``tests.support.faults``) and then runs the unmodified worker.
"""

from __future__ import annotations

import sys

from finpulse.cli.common import load_settings
from stream_app.model import load_worker_predictor
from stream_app.service.app import run_worker
from tests.support.faults import wrap_from_env


def main() -> int:
    settings = load_settings()
    return run_worker(settings, predictor=wrap_from_env(load_worker_predictor(settings)))


if __name__ == "__main__":
    sys.exit(main())
