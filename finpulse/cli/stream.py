"""Registrar of the stream-app verbs: ``worker``, ``demo``, ``alerts tail``.

Imports nothing heavy: each handler imports Faust, aiokafka or the model when it runs.
Every verb reads ``Settings`` from ``FINPULSE_*`` (flags override a few of them); an
invalid environment is reported as a one-line error naming the variable, not a traceback.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from models.errors import FinpulseError
from stream_app.config import Settings

__all__ = ["load_settings", "register"]

SEVERITIES = ("low", "medium", "high", "critical")


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the non-None ``overrides`` applied."""
    try:
        settings = Settings()  # type: ignore[call-arg]  # mypy misreads Field(default, ...)
        changes = {k: v for k, v in overrides.items() if v is not None}
        return settings.with_overrides(**changes) if changes else settings
    except ValidationError as exc:
        problems = "; ".join(
            f"FINPULSE_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise FinpulseError(f"invalid configuration: {problems}") from None


def _worker(args: argparse.Namespace) -> int:
    from stream_app.app import run_worker

    settings = load_settings(model_dir=args.model, web_port=args.web_port)
    return run_worker(settings, verbose=bool(getattr(args, "verbose", False)))


def _demo(args: argparse.Namespace) -> int:
    from stream_app.demo import run_demo

    return run_demo(
        model_dir=args.model,
        keep_running=args.keep_running,
        workdir=args.workdir,
        web_port=args.web_port,
    )


def _tail(args: argparse.Namespace) -> int:
    from stream_app.alerts_tail import run_tail

    return run_tail(
        load_settings(),
        entity=args.entity,
        min_severity=args.min_severity,
        from_beginning=args.from_beginning,
        as_json=args.json,
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
            "worker, replay a sample stream with a negative burst and show the alerts."
        ),
    )
    demo.add_argument(
        "--model", type=Path, default=Path("artifacts/model"),
        help="model dir; trained with the quick profile if missing (default artifacts/model)",
    )  # fmt: skip
    demo.add_argument(
        "--keep-running", action="store_true",
        help="after the burst resolved, keep the services up until Ctrl-C",
    )  # fmt: skip
    demo.add_argument("--workdir", type=Path, help="where service data and logs go (temp dir)")
    demo.add_argument("--web-port", type=int, help="worker HTTP API port (a free one)")
    demo.set_defaults(handler=_demo)

    alerts = subparsers.add_parser("alerts", help="alert topic tools")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")
    tail = alerts_sub.add_parser(
        "tail",
        help="follow the alert topic",
        description="Print alerts as they arrive (Ctrl-C to stop).",
    )
    tail.add_argument("--entity", help="only this entity, e.g. ticker:TSLA")
    tail.add_argument("--min-severity", choices=SEVERITIES, default="low")
    tail.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest alert, not new ones"
    )
    tail.add_argument("--json", action="store_true", help="one JSON alert per line")
    tail.set_defaults(handler=_tail)
