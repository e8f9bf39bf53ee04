"""Company names in a headline -> tickers, offline: ``CompanyLinker.link(text)``.

Contract: ``link(text, max_links)`` returns at most ``max_links`` ``NameLink`` (one per
ticker, ``via="name"``), each with the half-open ``span`` ``[start, end)`` of the ticker's
first accepted mention in ``text`` (``text[start:end]`` is the name as written) and a
``relevance`` in (0, 1], highest first. It never raises on any ``str`` and its cost is
bounded by the text length (one Aho-Corasick pass plus O(1) work per raw hit, at most
``4 * max_links + 64`` candidate checks per text). Nothing is read at import: a linker is
built from rows (``from_rows``) or files (``from_files``), once per process, and is then
immutable and safe to share between threads.

Why this shape: wire headlines rarely carry cashtags ("Tesla recalls 2 million
vehicles"), so a desk watching TSLA would never see them. Names are matched with a
pyahocorasick automaton over the lower-cased text (longest match, left to right), then
each hit must pass, in order:
1. word boundaries (no letter/digit/``_`` on either side, no ``$`` before: cashtags are
   the caller's; ``#Tesla`` and ``@Tesla`` count);
2. case: acronyms and names of three characters or fewer exactly as spelled in the table
   (``GE``, ``BP``, ``3M``); other names capitalised (``Tesla``, ``TESLA``, ``Paypal``),
   never all lower case ("ford the river", "a gap");
3. the curated stoplist (``never`` / ``not_before`` / ``not_after``, e.g. "price Target",
   "Visa rules", "Apple harvest", "Shell company", "the Amazon rainforest");
4. for *common* names (ordinary words such as Apple, Target, Shell, Block): not after an
   article, not inside a longer capitalised name ("Carson Block", "Apple Bank",
   "Southern California"), not in an all-caps text, not hyphen-joined ("Meta-analysis");
5. for *broker* names (Goldman, Wells Fargo, ...): not when the bank is only the source of
   an analyst view ("Goldman upgrades Tesla", "..., Wells Fargo says") - a desk watching
   GS does not want every GS research note on other companies.

Relevance (RavenPack/TRNA-style, cheap): ``position * 1/sqrt(n)`` where ``position`` falls
linearly from 1.0 (name at the start: the subject of the headline) to 0.5 (at or after
the middle: a passing mention), plus 0.1 per further mention (capped at 1), and ``n`` is
the number of companies the text names. A round-up naming six companies gives each at
most 0.41.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import ahocorasick

from models.errors import FinpulseError

__all__ = [
    "MAX_ALIAS_CHARS",
    "MAX_ALIAS_ROWS",
    "AliasFileError",
    "AliasRule",
    "CompanyLinker",
    "NameLink",
    "Via",
    "merge_links",
    "read_alias_rows",
    "read_user_aliases",
    "relevance",
]

MAX_ALIAS_CHARS: Final = 100
# Memory grows ~1.7 KiB per alias (automaton nodes); this caps a user file at ~0.9 GiB.
MAX_ALIAS_ROWS: Final = 500_000
_TICKER = re.compile(r"^[A-Z][A-Z0-9.\-]{0,9}$")
_ARTICLES: Final = frozenset({"the", "a", "an", "this", "that", "its", "their", "our"})
# Words that may follow a common-word name in a capitalised run and still mean the company
# ("Apple Stock", "Target CEO"); any other capitalised follower makes it part of a longer
# name ("Apple Bank", "Southern California"), unless the whole text is Title Case.
_CONTINUATION: Final = frozenset(
    {
        "stock",
        "stocks",
        "shares",
        "share",
        "inc",
        "corp",
        "co",
        "plc",
        "ceo",
        "cfo",
        "coo",
        "chief",
        "earnings",
        "results",
        "sales",
        "revenue",
        "revenues",
        "profit",
        "q1",
        "q2",
        "q3",
        "q4",
        "quarter",
        "quarterly",
        "guidance",
        "outlook",
        "dividend",
        "investors",
        "shareholders",
        "board",
        "store",
        "stores",
        "pay",
        "watch",
        "tv",
        "music",
        "iphone",
        "ipad",
        "mac",
        "vs",
        "vs.",
        "and",
        "or",
        "to",
        "is",
        "was",
        "will",
        "has",
        "had",
        "says",
        "said",
        "stake",
        "deal",
        "bid",
        "prime",
        "aws",
        "card",
        "cards",
        "workers",
        "employees",
    }
)
# Followers that turn a common word into another organisation or place, even in Title Case.
_NAME_NOUNS: Final = frozenset(
    {
        "bank",
        "banks",
        "capital",
        "partners",
        "fund",
        "funds",
        "trust",
        "airlines",
        "airways",
        "pictures",
        "studios",
        "records",
        "hospitality",
        "realty",
        "properties",
        "university",
        "college",
        "school",
        "hospital",
        "county",
        "city",
        "state",
        "district",
        "river",
        "valley",
        "island",
        "islands",
        "street",
        "road",
        "park",
        "companies",
        "basin",
        "rainforest",
        "forest",
        "hemisphere",
        "coast",
        "corridor",
        # industry words that make a different company's name ("Delta Apparel", "Target
        # Hospitality", "Southern Copper")
        "apparel",
        "energy",
        "resources",
        "financial",
        "holdings",
        "group",
        "systems",
        "technologies",
        "pharmaceuticals",
        "therapeutics",
        "industries",
        "foods",
        "brands",
        "motors",
        "media",
        "networks",
        "software",
        "solutions",
        "services",
        "insurance",
        "health",
        "healthcare",
        "gaming",
        "mining",
        "minerals",
        "metals",
        "copper",
        "oil",
        "petroleum",
        "labs",
        "laboratories",
        "biosciences",
        "sciences",
        "semiconductor",
        "electric",
        "power",
        "communications",
        "international",
        "global",
        "bancorp",
        "logistics",
        "ventures",
        "investments",
        "acquisition",
        "cars",
        "motor",
        "tribe",
    }
)
# Neighbours that make a mention someone else's story: "former Goldman CEO", "ex-Amazon",
# "SoftBank-backed AI Medical Service".
_FORMER: Final = re.compile(r"(?:^|[\s\-])(?:[Ff]ormer|FORMER|[Ee]x)[\s\-]+$")
_NOT_ABOUT_AFTER: Final = re.compile(
    r"(?:'s|’s)?\s+(?:co-?founder|founder|alum(?:ni|nus)?|veterans?)\b", re.IGNORECASE
)
_NOT_ABOUT_SUFFIX: Final = ("-backed", "-funded", "-based")
_BROKER_STRONG_AFTER: Final = frozenset(
    {
        "upgrades",
        "downgrades",
        "upgraded",
        "downgraded",
        "initiates",
        "initiated",
        "reiterates",
        "reiterated",
        "assumes",
        "resumes",
        "says",
        "said",
        "sees",
        "expects",
        "likes",
        "prefers",
        "recommends",
        "picks",
        "analyst",
        "analysts",
        "strategist",
        "strategists",
        "economist",
        "economists",
        "research",
        "rates",
        "rating",
        "ratings",
        "calls",
        "bullish",
        "bearish",
        "predicts",
        "forecasts",
        "thinks",
        "believes",
        "turns",
        "starts",
        "warms",
        "sours",
        "bear",
        "bull",
        "call",
        "note",
        "view",
        # data vendors as the source of a number ("FactSet consensus $1.21")
        "consensus",
        "estimate",
        "estimates",
        "survey",
        "poll",
        "data",
    }
)
_BROKER_WEAK_AFTER: Final = frozenset(
    {
        "cuts",
        "raises",
        "lifts",
        "lowers",
        "trims",
        "boosts",
        "hikes",
        "bumps",
        "slashes",
        "upgrade",
        "downgrade",
        "moves",
        "takes",
        "adds",
        "names",
        "puts",
        "keeps",
        "tells",
    }
)
_RATING_GRADES: Final = frozenset(
    {
        "buy",
        "sell",
        "hold",
        "neutral",
        "overweight",
        "underweight",
        "outperform",
        "underperform",
        "equal-weight",
    }
)
_RATING_WORDS: Final = _RATING_GRADES | frozenset(
    {
        "equalweight",
        "target",
        "pt",
        "rating",
        "estimates",
    }
)
_RATING_BEFORE: Final = _RATING_GRADES | frozenset(
    {
        "perform",
        "upgraded",
        "downgraded",
        "cut",
        "raised",
        "initiated",
        "reiterated",
        "lowered",
        "lifted",
        "trimmed",
        "boosted",
        "rated",
        "started",
        "resumed",
        "hiked",
        "upgrade",
        "downgrade",
        "upgrades",
        "downgrades",
        "target",
        "targets",
    }
)
_NOT_ASCII_LETTER: Final = re.compile(r"[^A-Za-z]+")
_NOT_ASCII_UPPER: Final = re.compile(r"[^A-Z]+")
_LONG_WORD: Final = re.compile(r"[A-Za-z][A-Za-z'’]{3,}")
_LINK_LABEL: Final = re.compile(r":\s*(?:https?://|$)")
# Capitalised words in a Title Case headline that do not make the next word part of a name
# ("Why Profits From Amazon's Cloud", "Should You Buy Target").
_FUNCTION_WORDS: Final = frozenset(
    {
        "from",
        "for",
        "on",
        "in",
        "at",
        "of",
        "to",
        "with",
        "by",
        "and",
        "or",
        "as",
        "over",
        "vs",
        "about",
        "after",
        "before",
        "why",
        "how",
        "what",
        "when",
        "is",
        "are",
        "was",
        "will",
        "can",
        "could",
        "should",
        "would",
        "buy",
        "sell",
        "hold",
        "into",
        "than",
        "like",
        "beats",
        "tops",
        "sues",
        "joins",
        "says",
        "sees",
        "hits",
        "but",
        "not",
        "new",
        "behind",
        "between",
        "against",
        "amid",
        "near",
        "under",
        "ahead",
        "owner",
        "rival",
    }
)
_CLAUSE_PUNCT: Final = frozenset(',;:!?|"“”()–—-/')

Via = Literal["field", "cashtag", "name"]
RuleKind = Literal["never", "common", "not_before", "not_after", "broker"]


class AliasFileError(FinpulseError):
    """An alias/stoplist file that cannot be used; the message names ``file:line``."""


@dataclass(frozen=True, slots=True)
class NameLink:
    """One company a text names: ``text[span[0]:span[1]]`` is its first accepted mention
    (``span`` is None only for an explicit ``tickers`` entry, see ``merge_links``)."""

    ticker: str
    span: tuple[int, int] | None
    relevance: float
    via: Via = "name"
    mentions: int = 1


@dataclass(frozen=True, slots=True)
class AliasRule:
    """One stoplist row: ``kind`` applies to ``alias`` (case-insensitive) with ``words``."""

    alias: str
    kind: RuleKind
    words: frozenset[str] = frozenset()


@dataclass(slots=True)
class _Entry:
    spelling: str
    ticker: str
    common: bool = False
    broker: bool = False
    exact_case: bool = False
    not_before: frozenset[str] = field(default_factory=frozenset)
    not_after: frozenset[str] = field(default_factory=frozenset)


def _lower(text: str) -> str:
    """``str.lower`` that keeps every index: characters whose lower form is longer stay."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """``(line number, cells)`` of a CSV file, skipping ``#`` comments and blank lines.
    Lines without quotes are split directly (5x faster than the csv module for 100k rows)."""
    try:
        with path.open(encoding="utf-8", newline="") as f:
            for lineno, line in enumerate(f, start=1):
                if lineno > MAX_ALIAS_ROWS:
                    raise AliasFileError(f"{path}:{lineno}: more than {MAX_ALIAS_ROWS:,} lines")
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                if '"' not in line:
                    yield lineno, line.rstrip("\r\n").split(",")
                    continue
                try:
                    cells = next(csv.reader([line]))
                except csv.Error as exc:
                    raise AliasFileError(f"{path}:{lineno}: not CSV: {exc}") from None
                yield lineno, cells
    except UnicodeDecodeError as exc:
        raise AliasFileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise AliasFileError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _check_pair(path: Path, lineno: int, cells: list[str]) -> tuple[str, str]:
    if len(cells) < 2 or (len(cells) > 2 and any(c.strip() for c in cells[2:])):
        raise AliasFileError(f"{path}:{lineno}: expected 2 columns alias,ticker, got {len(cells)}")
    alias, ticker = " ".join(cells[0].split()), cells[1].strip().lstrip("$").upper()
    if not alias:
        raise AliasFileError(f"{path}:{lineno}: empty alias")
    if len(alias) > MAX_ALIAS_CHARS:
        raise AliasFileError(f"{path}:{lineno}: alias longer than {MAX_ALIAS_CHARS} characters")
    if not any(c.isalnum() for c in alias):
        raise AliasFileError(f"{path}:{lineno}: alias {alias[:40]!r} has no letter or digit")
    if not _TICKER.match(ticker):
        raise AliasFileError(
            f"{path}:{lineno}: ticker {cells[1][:20]!r} does not match {_TICKER.pattern}"
        )
    return alias, ticker


def read_user_aliases(path: Path) -> list[tuple[str, str]]:
    """A user's ``alias,ticker`` CSV (optional header, ``#`` comments); any bad row raises
    ``AliasFileError`` naming ``file:line`` so a worker refuses to start half-configured."""
    rows: list[tuple[str, str]] = []
    for lineno, cells in _csv_rows(path):
        if not rows and [c.strip().lower() for c in cells[:2]] == ["alias", "ticker"]:
            continue
        rows.append(_check_pair(path, lineno, cells))
    return rows


def read_alias_rows(path: Path) -> list[tuple[str, str, bool]]:
    """The generated table (``alias,ticker,common,source_name``) as ``(alias, ticker, common)``."""
    rows: list[tuple[str, str, bool]] = []
    for lineno, cells in _csv_rows(path):
        if cells[:2] == ["alias", "ticker"]:
            continue
        alias, ticker = _check_pair(path, lineno, cells[:2])
        rows.append((alias, ticker, len(cells) > 2 and cells[2].strip() == "1"))
    return rows


def read_rules(path: Path) -> list[AliasRule]:
    """The curated stoplist (``alias,rule,words``; words ``|``-separated)."""
    kinds = ("never", "common", "not_before", "not_after", "broker")
    out: list[AliasRule] = []
    for lineno, cells in _csv_rows(path):
        if cells[:2] == ["alias", "rule"]:
            continue
        if len(cells) < 2 or cells[1].strip() not in kinds:
            raise AliasFileError(f"{path}:{lineno}: expected alias,rule,words with rule in {kinds}")
        words = frozenset(
            w.strip().lower() for w in (cells[2] if len(cells) > 2 else "").split("|") if w.strip()
        )
        kind: RuleKind = cells[1].strip()  # type: ignore[assignment]  # checked just above
        out.append(AliasRule(cells[0].strip(), kind, words))
    return out


class CompanyLinker:
    """An immutable alias automaton plus the rules of the module docstring."""

    def __init__(self, entries: dict[str, _Entry]) -> None:
        self._entries = entries
        auto = ahocorasick.Automaton()
        for key, entry in entries.items():
            auto.add_word(key, entry)
        if len(auto):
            auto.make_automaton()
        self._auto = auto

    @classmethod
    def from_rows(
        cls,
        table: Iterable[tuple[str, str, bool]],
        *,
        overrides: Iterable[tuple[str, str]] = (),
        rules: Iterable[AliasRule] = (),
        user: Iterable[tuple[str, str]] = (),
    ) -> CompanyLinker:
        """Layers, later wins per case-insensitive alias: table < overrides < user.
        ``never`` rules remove table/override aliases, not user ones."""
        rule_list = list(rules)
        never = {r.alias.lower() for r in rule_list if r.kind == "never"}
        entries: dict[str, _Entry] = {}

        def put(alias: str, ticker: str, common: bool) -> None:
            exact = _is_acronym(alias)
            for variant in _variants(alias):
                entries[_lower(variant)] = _Entry(variant, ticker, common, exact_case=exact)

        for alias, ticker, common in table:
            if alias.lower() not in never:
                put(alias, ticker, common)
        for alias, ticker in overrides:
            if alias.lower() not in never:
                put(alias, ticker, False)
        for alias, ticker in user:
            put(alias, ticker, False)
        for r in rule_list:
            for variant in _variants(r.alias):
                e = entries.get(_lower(variant))
                if e is None:
                    continue
                if r.kind == "common":
                    e.common = True
                elif r.kind == "broker":
                    e.broker = True
                elif r.kind == "not_before":
                    e.not_before = e.not_before | r.words
                elif r.kind == "not_after":
                    e.not_after = e.not_after | r.words
        return cls(entries)

    @classmethod
    def from_files(
        cls,
        table: Path,
        overrides: Path | None = None,
        stoplist: Path | None = None,
        user: Path | None = None,
    ) -> CompanyLinker:
        """Build from the packaged CSV files plus an optional user ``alias,ticker`` file."""
        return cls.from_rows(
            read_alias_rows(table),
            overrides=[(a, t) for a, t, _ in read_alias_rows(overrides)] if overrides else (),
            rules=read_rules(stoplist) if stoplist else (),
            user=read_user_aliases(user) if user else (),
        )

    def __len__(self) -> int:
        return len(self._entries)

    def link(self, text: str, max_links: int = 16) -> list[NameLink]:
        """Companies named in ``text``, most relevant first (see module docstring)."""
        if max_links <= 0 or not text or not len(self._auto):
            return []
        low = _lower(text)
        n_text = len(text)
        first: dict[str, tuple[int, int]] = {}
        mentions: dict[str, int] = {}
        shouting: bool | None = None
        title: bool | None = None
        budget = 4 * max_links + 64
        # Hot path (runs per news item in the worker): the word-boundary test is inlined and
        # names are local on purpose; most raw hits are inside other words ("afford").
        for end_idx, entry in self._auto.iter_long(low):
            end = end_idx + 1
            start = end - len(entry.spelling)
            if start > 0:
                c = text[start - 1]
                if c.isalnum() or c == "_" or c == "$":
                    continue
            if end < n_text:
                c = text[end]
                if c.isalnum() or c == "_":
                    continue
            ticker = entry.ticker
            if ticker in first:
                if _case_ok(entry, text[start:end]):
                    mentions[ticker] += 1
                continue
            budget -= 1
            if budget < 0:
                break
            written = text[start:end]
            if not _case_ok(entry, written):
                continue
            if _someone_else(text, start, end):
                continue
            if entry.common or entry.not_before or entry.not_after or entry.broker:
                if shouting is None:
                    shouting, title = _text_shape(text)
                if not _context_ok(entry, text, start, end, shouting, bool(title)):
                    continue
            if entry.broker and _analyst_source(text, start, end):
                continue
            first[ticker] = (start, end)
            mentions[ticker] = 1
            if len(first) >= max_links:
                break
        if not first:
            return []
        n = len(first)
        out = [
            NameLink(t, span, relevance(span[0], n_text, mentions[t], n), "name", mentions[t])
            for t, span in first.items()
        ]
        out.sort(key=_by_relevance)
        return out


def _by_relevance(link: NameLink) -> tuple[float, int]:
    return (-link.relevance, link.span[0] if link.span else -1)


def relevance(start: int | None, text_len: int, mentions: int, companies: int) -> float:
    """``position * 1/sqrt(companies)``; ``start`` None (an explicit ``tickers`` field) is
    a subject. Position falls from 1.0 at the start to 0.7 at or after the middle, plus
    0.1 per further mention (capped at 1). Rounded to 4 places (stable on the wire)."""
    position = 1.0 if start is None else 1.0 - 0.6 * min(start / max(text_len, 1), 0.5)
    return round(min(1.0, position + 0.1 * (mentions - 1)) / math.sqrt(max(companies, 1)), 4)


def merge_links(
    explicit: Iterable[tuple[str, Via, tuple[int, int] | None]],
    names: Iterable[NameLink],
    text_len: int,
    max_links: int,
) -> list[NameLink]:
    """Explicit entities (``tickers`` field, cashtags) first and in their order, then name
    links for tickers not already present; at most ``max_links``; relevance recomputed
    over the merged company count, so a name beside three cashtags counts for less."""
    explicit = list(explicit)
    if not explicit:  # the common case: names only, their relevance is already right
        return list(names)[:max_links]
    merged: dict[str, tuple[Via, tuple[int, int] | None, int]] = {}
    for ticker, via, span in explicit:
        if ticker not in merged and len(merged) < max_links:
            merged[ticker] = (via, span, 1)
    for link in names:
        if link.ticker not in merged and len(merged) < max_links:
            merged[link.ticker] = ("name", link.span, link.mentions)
    n = len(merged)
    return [
        NameLink(t, span, relevance(span[0] if span else None, text_len, m, n), via, m)
        for t, (via, span, m) in merged.items()
    ]


def _variants(alias: str) -> Iterator[str]:
    """The alias as written plus its HTML-escaped and curly-apostrophe forms (tweets)."""
    yield alias
    if "&" in alias:
        yield alias.replace("&", "&amp;")
    if "'" in alias:
        yield alias.replace("'", "’")


def _is_acronym(spelling: str) -> bool:
    """Short names and all-caps names (GE, BP, 3M, AT&T, LVMH) match only as spelled."""
    return len(spelling) <= 3 or spelling.isupper()


def _case_ok(entry: _Entry, written: str) -> bool:
    spelling = entry.spelling
    if written == spelling:
        return True
    if entry.exact_case:
        return False
    if written.isupper():
        return True  # TESLA, in a shouted headline or a stylised name
    return written[0].isupper() and written[0] == spelling[0].upper()


def _text_shape(text: str) -> tuple[bool, bool]:
    """(all caps, Title Case): words of 4+ letters after the first, mostly capitalised.
    C-level regex passes, not per-character Python loops: it runs for every common-word hit."""
    n_letters = len(_NOT_ASCII_LETTER.sub("", text))
    shouting = n_letters >= 12 and len(_NOT_ASCII_UPPER.sub("", text)) > 0.8 * n_letters
    words = _LONG_WORD.findall(text)[1:]
    title = len(words) >= 3 and sum(w[0].isupper() for w in words) >= 0.7 * len(words)
    return shouting, title


def _prev_word(text: str, start: int) -> tuple[str, bool]:
    """The word right before ``start`` (only spaces between; '' after punctuation) and
    whether that word opens a sentence (text start or after ``.!?:|``)."""
    head = text[max(0, start - 60) : start]
    stripped = head.rstrip(" ")
    if not stripped or stripped[-1] in _CLAUSE_PUNCT or (len(stripped) == len(head) and head):
        return "", True
    toks = stripped.split()
    word = toks[-1].strip("\"“”'’(").rstrip(".")
    opens = toks[-2][-1] in ".!?:|" if len(toks) >= 2 else start <= 60
    return word, opens


def _next_words(text: str, end: int, n: int = 2) -> list[str]:
    """Up to ``n`` words after ``end`` in the same clause (a possessive 's is skipped)."""
    rest = text[end : end + 60]
    if rest.startswith(("'s", "’s")):
        rest = rest[2:]
    elif rest.startswith(("'", "’")):
        rest = rest[1:]
    if not rest.startswith(" "):
        return []
    out: list[str] = []
    for tok in rest.split()[:n]:
        word = tok.strip(".,;:!?\"'“”()")
        if not word:
            break
        out.append(word)
        if tok[-1] in ",;:!?|":
            break
    return out


def _context_ok(
    entry: _Entry, text: str, start: int, end: int, shouting: bool, title: bool
) -> bool:
    nxt = _next_words(text, end, 1)
    nxt0 = nxt[0] if nxt else ""
    nxt_low = nxt0.lower()
    prev, opens = _prev_word(text, start)
    prev_low = prev.lower()
    if nxt_low in entry.not_before or prev_low in entry.not_after:
        return False
    if not entry.common:
        return True
    if _LINK_LABEL.match(text, end):
        return False  # a link label ("Spotify: ... Apple: https://...")
    if shouting:
        return False
    if prev_low in _ARTICLES:
        return False
    if (start > 0 and text[start - 1] == "-") or text[end : end + 1] == "-":
        return False
    if nxt_low in _NAME_NOUNS:
        return False
    if prev and prev[0].isupper() and not opens and not title:
        return False  # "Carson Block", "Net Zero Target"
    if prev and prev[0].isupper() and not opens and title and prev_low not in _FUNCTION_WORDS:
        return False
    return not (nxt0 and nxt0[0].isupper() and not title and nxt_low not in _CONTINUATION)


def _someone_else(text: str, start: int, end: int) -> bool:
    """True for "former Goldman CEO", "ex-Amazon", "SoftBank-backed ...", "Facebook
    co-founder": the story is about a person or another company, the name describes them."""
    if text[end : end + 1] == "-" and text[end : end + 16].lower().startswith(_NOT_ABOUT_SUFFIX):
        return True
    if _FORMER.search(text, max(0, start - 12), start):
        return True
    return _NOT_ABOUT_AFTER.match(text, end) is not None


def _analyst_source(text: str, start: int, end: int) -> bool:
    """True when a bank named at ``[start, end)`` is the source of a research view."""
    words = _next_words(text, end, 3)
    if (
        text[end : end + 1] in ("’", "'")
        and len(words) >= 1
        and words[0][:1].isupper()
        and words[0].lower() not in _BROKER_STRONG_AFTER
    ):
        # "Morgan Stanley's Jonas trims ...", "Goldman Sachs' Waldron: Fed is ...": a person
        # at the bank; what follows them decides.
        if text[end : end + 80].split(None, 2)[1:2] and words[0].endswith(":"):
            return True
        rest = text[end:].split(":", 1)
        if len(rest) == 2 and len(rest[0].split()) <= 3:
            return True
        words = words[1:]
    after = [w.lower() for w in words[:2]]
    if after and after[0] in _BROKER_STRONG_AFTER:
        return True
    if after and after[0] in _BROKER_WEAK_AFTER:
        tail = text[end : end + 80].lower()
        return any(w in _RATING_WORDS for w in re.findall(r"[a-z\-]+", tail))
    prev, _ = _prev_word(text, start)
    prev_low = prev.lower()
    if prev_low in ("per", "via"):
        return True
    if prev_low == "to" and text[max(0, start - 16) : start].lower().endswith("according to "):
        return True
    if prev_low in ("at", "by", "from"):
        head = text[max(0, start - 60) : start].lower().split()[-7:-1]
        return any(w.strip(",.") in _RATING_BEFORE for w in head)
    return False
