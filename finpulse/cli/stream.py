"""``finpulse worker`` and ``finpulse demo``: the streaming service, live or all-in-one.

Imports nothing heavy: each handler imports Faust, aiokafka or the model when it runs.
Every verb reads ``Settings`` from ``FINPULSE_*`` (flags override a few of them).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from finpulse.cli.common import load_settings

__all__ = ["register"]


def _worker(args: argparse.Namespace) -> int:
    from stream_app.service.app import run_worker

    settings = load_settings(model_dir=args.model, web_port=args.web_port)
    return run_worker(settings, verbose=bool(getattr(args, "verbose", False)))


def _demo(args: argparse.Namespace) -> int:
    from stream_app.devenv.demo import run_demo

    return run_demo(
        model_dir=args.model,
        exit_when_done=args.exit_when_done,
        workdir=args.workdir,
        web_port=args.web_port,
    )


def register(subparsers: Any) -> None:
    worker = subparsers.add_parser(
        "worker",
        help="run the streaming service (Kafka + Redis from FINPULSE_* settings)",
        description="Consume news, score it, keep entity windows in Redis, publish alerts.",
    )
    worker.add_argument("--model", type=Path, help="model dir (default FINPULSE_MODEL_DIR)")
    worker.add_argument("--web-port", type=int, help="HTTP API port (default FINPULSE_WEB_PORT)")
    worker.set_defaults(handler=_worker)

    demo = subparsers.add_parser(
        "demo",
        help="run everything locally: broker, Redis, worker, a sample stream with a burst",
        description=(
            "Start a loopback broker and Redis, train a quick model if needed, run the "
            "worker, replay a sample stream with a negative burst, show the alerts, then keep "
            "the stack up (API and dashboard) until Ctrl-C."
        ),
    )
    demo.add_argument(
        "--model", type=Path, default=Path("artifacts/model"),
        help="model dir; trained with the quick profile if missing (default artifacts/model)",
    )  # fmt: skip
    demo.add_argument(
        "--exit-when-done", action="store_true",
        help="stop everything once the burst fired and resolved (default: stay up until Ctrl-C)",
    )  # fmt: skip
    demo.add_argument("--workdir", type=Path, help="where service data and logs go (temp dir)")
    demo.add_argument("--web-port", type=int, help="worker HTTP API port (a free one)")
    demo.set_defaults(handler=_demo)
