"""Which entities a news item counts towards: its tickers, its topic, and the market.

Entity names are also Redis key parts (inside a ``{...}`` hash tag) and URL path
segments of the web API, so they are restricted to a small safe alphabet
(``is_valid_entity``): ``ticker:<SYM>``, ``topic:<slug>``, ``market``.
"""

from __future__ import annotations

import re
from typing import Final

from models.labels import topic_slug
from stream_app.schemas import MAX_ENTITY_CHARS, TICKER_RE, NewsItem

__all__ = ["MARKET", "entities_for", "extract_cashtags", "is_valid_entity"]

MARKET: Final = "market"

# ``$`` not preceded by a word char or another ``$``; the symbol starts with a letter,
# may contain one class suffix like ``.B`` or ``-A``, and must not run into more word chars.
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z0-9]{0,5}(?:[.\-][A-Za-z]{1,2})?)(?![\w$])")
_ENTITY = re.compile(r"^(?:market|ticker:[A-Z][A-Z0-9.\-]{0,9}|topic:[a-z0-9]+(?:-[a-z0-9]+)*)$")


def extract_cashtags(text: str, limit: int | None = None) -> list[str]:
    """Upper-cased distinct cashtag symbols in order of appearance: ``$AAPL``, ``$BRK.B``.

    ``$5`` (a price), ``$$`` and ``US$AAPL`` are not cashtags.
    """
    out: list[str] = []
    for m in _CASHTAG.finditer(text):
        sym = m.group(1).upper()
        if TICKER_RE.match(sym) and sym not in out:
            out.append(sym)
            if limit is not None and len(out) >= limit:
                break
    return out


def entities_for(item: NewsItem, topic: str) -> list[str]:
    """The entities an item is counted for, in a stable order (tickers, topic, market)."""
    out = [f"ticker:{t}" for t in item.tickers]
    slug = topic_slug(topic)
    if slug:
        out.append(f"topic:{slug}")
    out.append(MARKET)
    return out


def is_valid_entity(name: str) -> bool:
    """True for names ``entities_for`` can produce (the web API refuses anything else)."""
    # fullmatch: ``match`` with ``$`` would accept a trailing newline ("market\n")
    return len(name) <= MAX_ENTITY_CHARS and _ENTITY.fullmatch(name) is not None
