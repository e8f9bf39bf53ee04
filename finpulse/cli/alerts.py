"""``finpulse alerts ...``: tools around the alert topic.

Imports nothing heavy at module level; aiokafka is imported when a verb runs.
"""

from __future__ import annotations

import argparse
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
