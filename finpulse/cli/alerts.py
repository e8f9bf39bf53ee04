"""``finpulse alerts ...``: tools around the alert topic.

Imports nothing heavy at module level; aiokafka is imported when a verb runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from finpulse.cli.common import load_settings
from stream_app.schemas import SEVERITIES

__all__ = ["register"]


def _tail(args: argparse.Namespace) -> int:
    from stream_app.service.alerts_tail import run_tail

    return run_tail(
        load_settings(),
        entity=args.entity,
        min_severity=args.min_severity,
        from_beginning=args.from_beginning,
        as_json=args.json,
    )


def _forward(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from models.errors import FinpulseError
    from stream_app.config import ForwardSettings
    from stream_app.service.forward.config import load_plan

    try:
        forward = ForwardSettings()  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = "; ".join(
            f"FINPULSE_FORWARD_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise FinpulseError(f"invalid configuration: {problems}") from None
    plan = load_plan(forward, args.config)
    if args.check:
        print("\n".join(plan.describe()))
        return 0
    from stream_app.service.forward.forwarder import run_forward

    return run_forward(load_settings(), forward, plan, from_beginning=args.from_beginning)


def register(subparsers: Any) -> None:
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
    forward = alerts_sub.add_parser(
        "forward",
        help="deliver alerts to webhooks, Slack and Alertmanager",
        description=(
            "Read the alert topic in its own consumer group and deliver each alert to the "
            "sinks its routes pick (FINPULSE_FORWARD_CONFIG or FINPULSE_FORWARD_*_URL); "
            "offsets are committed once every sink acknowledged or the alert was "
            "dead-lettered. See docs/operations.md."
        ),
    )
    forward.add_argument(
        "--config", type=Path, default=None, help="routes file, YAML or TOML (default: env)"
    )
    forward.add_argument(
        "--from-beginning", action="store_true",
        help="a new consumer group starts at the oldest alert (default: new alerts only)",
    )  # fmt: skip
    forward.add_argument(
        "--check", action="store_true", help="validate the config, print sinks and routes, exit"
    )
    forward.set_defaults(handler=_forward)
