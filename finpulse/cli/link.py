"""``finpulse link``: which companies does each text name? (issue 10; checks the linker)

Reads texts from standard input, one per line, and prints one result per line in the
``news.scored`` link format, linking exactly as the worker does (packaged alias table plus
``FINPULSE_ALIASES_FILE``, cashtags first, then names):

    $ echo 'Tesla recalls 2 million vehicles' | finpulse link --json
    {"text": "Tesla recalls 2 million vehicles", "entities": [{"entity": "ticker:TSLA",
     "via": "name", "span": [0, 5], "relevance": 1.0}]}

Every input line has a defined outcome: a line that is not UTF-8, or longer than
``MAX_LINE_BYTES``, prints ``{"text": null, "error": "...", "entities": []}`` (or an
``error:`` line without ``--json``) and reading goes on; nothing raises a traceback. A bad
aliases file is one ``finpulse: error: file:line: ...`` line and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from finpulse.cli.common import MAX_LINE_BYTES, load_settings, positive_int, stdin_lines

__all__ = ["MAX_LINE_BYTES", "register"]


def _run(args: argparse.Namespace) -> int:
    from stream_app.core.entities import extract_cashtags, text_links
    from stream_app.model import load_linker

    settings = load_settings(aliases_file=args.aliases)
    linker = load_linker(settings)
    limit = args.max if args.max is not None else settings.max_tickers
    out: TextIO = sys.stdout
    for text, error in stdin_lines(sys.stdin.buffer):
        if text is None:
            if args.json:
                out.write(json.dumps({"text": None, "error": error, "entities": []}) + "\n")
            else:
                out.write(f"error: {error}\n")
            continue
        links = text_links(text, linker, limit, tickers=extract_cashtags(text, limit))
        entities = [
            {
                "entity": f"ticker:{lk.ticker}",
                "via": lk.via,
                "span": list(lk.span) if lk.span else None,
                "relevance": lk.relevance,
            }
            for lk in links
        ]
        if args.json:
            out.write(json.dumps({"text": text, "entities": entities}, ensure_ascii=False) + "\n")
        else:
            found = ", ".join(
                f"{e['entity']} ({e['via']} {text[lk.span[0] : lk.span[1]]!r} {e['relevance']:.2f})"
                if lk.span
                else f"{e['entity']} ({e['via']} {e['relevance']:.2f})"
                for e, lk in zip(entities, links, strict=True)
            )
            out.write(f"{found or '-'}\t{text}\n")
    out.flush()
    return 0


def register(subparsers: Any) -> None:
    link = subparsers.add_parser(
        "link",
        help="print the companies each stdin line names (entity linking check)",
        description="Read texts on stdin, one per line; print the companies each names "
        "(cashtags, then names), as the worker links them.",
    )
    link.add_argument(
        "--json", action="store_true", help='one {"text", "entities": [...]} JSON object per line'
    )
    link.add_argument(
        "--aliases",
        type=Path,
        default=None,
        help="extra alias,ticker CSV (default: FINPULSE_ALIASES_FILE)",
    )
    link.add_argument(
        "--max",
        type=positive_int,
        default=None,
        help="at most this many companies per text (default: FINPULSE_MAX_TICKERS)",
    )
    link.set_defaults(handler=_run)
