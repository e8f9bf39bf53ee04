"""``finpulse`` command: one argparse tree, each package registers its own verbs.

Registrars import nothing heavy at module level, so ``finpulse --help`` stays fast and
a verb only pays for the libraries it uses.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from finpulse import __version__
from finpulse.cli import alerts, explain, link, offline, stream, train
from models.errors import FinpulseError

# Each module's register(subparsers) adds its verbs with a `handler(args) -> int` default.
REGISTRARS = (train, stream, alerts, offline, link, explain)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finpulse", description="Streaming sentiment analytics for financial news."
    )
    parser.add_argument("--version", action="version", version=f"finpulse {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in REGISTRARS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except FinpulseError as exc:
        print(f"finpulse: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
