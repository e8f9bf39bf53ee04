"""Which entities a news item counts towards: its tickers, its topic, and the market.

Tickers come from three places, in this precedence (issue 10): the producer's ``tickers``
field, ``$CASHTAGS`` in the text (validation puts them in ``tickers`` when the field is
absent), then company *names* in the headline found by ``stream_app.core.linking``.
``item_links`` returns all of them with provenance, span and relevance, at most
``max_links``; ``entities_for`` turns the links (minus name links below
``min_relevance``) into entity names. Only the headline is searched for names: it is what
the model scores, and a body's mentions are mostly passing ones.

Entity names are also Redis key parts (inside a ``{...}`` hash tag) and URL path
segments of the web API, so they are restricted to a small safe alphabet
(``is_valid_entity``): ``ticker:<SYM>``, ``topic:<slug>``, ``market``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from models.labels import topic_slug
from stream_app.core.linking import CompanyLinker, NameLink, Via, merge_links
from stream_app.schemas import MAX_ENTITY_CHARS, TICKER_RE, NewsItem

__all__ = [
    "MARKET",
    "cashtag_spans",
    "entities_for",
    "extract_cashtags",
    "is_valid_entity",
    "item_links",
    "text_links",
]

MARKET: Final = "market"

# ``$`` not preceded by a word char or another ``$``; the symbol starts with a letter,
# may contain one class suffix like ``.B`` or ``-A``, and must not run into more word chars.
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z0-9]{0,5}(?:[.\-][A-Za-z]{1,2})?)(?![\w$])")
_ENTITY = re.compile(r"(?:market|ticker:[A-Z][A-Z0-9.\-]{0,9}|topic:[a-z0-9]+(?:-[a-z0-9]+)*)")


def cashtag_spans(text: str, limit: int | None = None) -> dict[str, tuple[int, int]]:
    """Distinct upper-cased cashtag symbols -> span of their first ``$SYM`` (``$`` included),
    in order of appearance. ``$5`` (a price), ``$$`` and ``US$AAPL`` are not cashtags."""
    out: dict[str, tuple[int, int]] = {}
    for m in _CASHTAG.finditer(text):
        sym = m.group(1).upper()
        if sym not in out and TICKER_RE.match(sym):
            out[sym] = m.span()
            if limit is not None and len(out) >= limit:
                break
    return out


def extract_cashtags(text: str, limit: int | None = None) -> list[str]:
    """Upper-cased distinct cashtag symbols in order of appearance: ``$AAPL``, ``$BRK.B``."""
    return list(cashtag_spans(text, limit))


def item_links(item: NewsItem, linker: CompanyLinker | None, max_links: int) -> list[NameLink]:
    """Every company ``item`` names, explicit ones first (see the module docstring)."""
    return text_links(item.headline, linker, max_links, tickers=item.tickers, body=item.body)


def text_links(
    headline: str,
    linker: CompanyLinker | None,
    max_links: int,
    *,
    tickers: Sequence[str] = (),
    body: str | None = None,
) -> list[NameLink]:
    """``tickers`` (validated symbols) then names in ``headline``, at most ``max_links``.

    A ticker is ``via="cashtag"`` when the text cashtags it (span in the headline, or None
    when only the body does), else ``via="field"`` (span None).
    """
    tags = cashtag_spans(headline) if "$" in headline else {}
    body_tags: Sequence[str] | None = None
    explicit: list[tuple[str, Via, tuple[int, int] | None]] = []
    for t in tickers:
        span = tags.get(t)
        if span is None and body and "$" in body:
            if body_tags is None:
                body_tags = extract_cashtags(body)
            explicit.append((t, "cashtag" if t in body_tags else "field", None))
        else:
            explicit.append((t, "field" if span is None else "cashtag", span))
    names = linker.link(headline, max_links) if linker is not None and max_links > 0 else []
    return merge_links(explicit, names, len(headline), max_links)


def entities_for(
    item: NewsItem,
    topic: str,
    links: Sequence[NameLink] | None = None,
    min_relevance: float = 0.0,
) -> list[str]:
    """The entities an item is counted for, in a stable order (tickers, topic, market).

    With ``links`` (from ``item_links``) the tickers are the links' (name links below
    ``min_relevance`` left out); without, the item's ``tickers``.
    """
    if links is None:
        out = [f"ticker:{t}" for t in item.tickers]
    else:
        out = [
            f"ticker:{lk.ticker}"
            for lk in links
            if lk.via != "name" or lk.relevance >= min_relevance
        ]
    slug = topic_slug(topic)
    if slug:
        out.append(f"topic:{slug}")
    out.append(MARKET)
    return out


def is_valid_entity(name: str) -> bool:
    """True for names ``entities_for`` can produce (the web API refuses anything else)."""
    # fullmatch: ``match`` with ``$`` would accept a trailing newline ("market\n")
    return len(name) <= MAX_ENTITY_CHARS and _ENTITY.fullmatch(name) is not None
