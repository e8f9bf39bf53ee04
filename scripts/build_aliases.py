"""Generate ``finpulse/data/aliases/aliases.csv`` from pytickersymbols (a build-time tool).

The company linker (``stream_app.core.linking``) matches company *names* in headlines. Its
table is generated here from a maintained package instead of being typed by hand, so it is
reproducible (same package versions -> byte-identical CSV) and reviewable (sorted rows, one
per alias, with the source company name beside it).

    pip install -e ".[dev]"            # pins pytickersymbols and cleanco
    python scripts/build_aliases.py    # rewrites finpulse/data/aliases/aliases.csv
    python scripts/build_aliases.py --check   # exit 1 when the committed file is stale

Inputs:
* pytickersymbols: index constituents (S&P 500/600/100, NASDAQ 100, Dow, DAX family,
  FTSE 100, CAC 40, AEX, IBEX, SMI, OMX, Nikkei 225, ...) with names and symbols.
* cleanco: strips legal suffixes (Inc., plc, AG, S.A., N.V., ...).
* ``finpulse/data/aliases/listing_fixes.csv`` (curated): source symbol -> ticker, or
  ``-`` to drop a record whose data is wrong (e.g. Siemens listed as NYSE:SI).
* the vendored corpus (``--corpus``): single-word aliases written in lower case in real
  financial tweets ("target", "gap", "block", "next") are marked ``common``, so the linker
  applies its stricter common-word rules to them. ``overrides.csv``/``stoplist.csv`` are
  *not* read here: the linker applies them at load time on top of this table.

Which ticker a company gets (finpulse tickers match ``^[A-Z][A-Z0-9.\\-]{0,9}$``):
1. Members of a US index keep their US symbol (``AAPL``, ``BRK.B``).
2. Other companies with a NYSE or NASDAQ listing (ADRs, dual listings) get that US symbol
   (Shell -> ``SHEL``, ASML -> ``ASML``, Barclays -> ``BCS``): it is the form US financial
   news uses in cashtags, so a name, a ``$SHEL`` cashtag and a ``tickers`` field agree.
3. The rest keep their home listing in Yahoo form with the exchange suffix (``SIE.DE``,
   ``BARC.L`` is not needed since Barclays has ``BCS``, ``MC.PA``, ``NOKIA.HE``). A symbol
   that cannot be a finpulse ticker (Tokyo's numeric codes such as ``7203.T``) is dropped;
   the big Japanese names with a US ADR come back through ``overrides.csv`` (Toyota -> TM).

Aliases per company: the cleaned name (``Apple``), its accent-folded form (``Nestle``), and
a short form without generic trailing words (``Ford Motor`` -> ``Ford``) unless that leaves
a generic word (``General Motors`` stays whole) or a one-word form the corpus also uses as a
plain word (``Customers Bancorp`` does not become ``Customers``). An alias claimed by two
tickers is dropped (listed by ``--verbose``) unless an override settles it.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "finpulse" / "data" / "aliases"
TICKER_RE = re.compile(r"^[A-Z][A-Z0-9.\-]{0,9}$")

US_INDICES = {"DOW JONES", "NASDAQ 100", "S&P 100", "S&P 500", "S&P 600"}
# Home-exchange Yahoo suffix for records whose symbol carries none (mostly the DAX family).
HOME_SUFFIX = {
    "DAX": ".DE",
    "MDAX": ".DE",
    "SDAX": ".DE",
    "TecDAX": ".DE",
    "CAC_40": ".PA",
    "CAC Mid 60": ".PA",
    "FTSE 100": ".L",
    "AEX": ".AS",
    "BEL 20": ".BR",
    "IBEX 35": ".MC",
    "OMX Stockholm 30": ".ST",
    "OMX Helsinki 25": ".HE",
    "Switzerland 20": ".SW",
    "NIKKEI 225": ".T",
}
GENERIC_TAIL = {
    "group",
    "holdings",
    "holding",
    "corporation",
    "corp",
    "company",
    "companies",
    "co",
    "incorporated",
    "inc",
    "industries",
    "international",
    "enterprises",
    "technologies",
    "technology",
    "systems",
    "brands",
    "motor",
    "motors",
    "platforms",
    "bancorp",
    "bancshares",
    "entertainment",
    "communications",
    "&",
    "and",
    "plc",
    "ag",
    "se",
    "sa",
}
# A short form that would be just one of these is not a name on its own.
GENERIC_HEAD = {
    "general",
    "american",
    "united",
    "first",
    "national",
    "international",
    "global",
    "universal",
    "southern",
    "northern",
    "western",
    "eastern",
    "central",
    "pacific",
    "atlantic",
    "new",
    "great",
    "royal",
    "advanced",
    "applied",
    "public",
    "federal",
    "digital",
    "energy",
    "health",
    "power",
    "data",
    "home",
    "life",
    "bank",
    "financial",
}
CORPUS_FILES = ("sentiment_train.csv", "sentiment_valid.csv", "topic_train.csv", "topic_valid.csv")
COMMON_MIN_LOWER = 3  # lower-case occurrences in the corpus that make a word "common"


def clean_name(name: str) -> str:
    """Company name -> its plain form: no legal suffix, class, parenthesis or leading 'The'."""
    from cleanco import basename  # build-time only

    s = re.sub(r"\([^)]*\)", " ", name)
    s = re.sub(r"\b(?:Class|Series)\s+[A-Z]\b", " ", s)
    s = " ".join(s.split())
    for _ in range(2):  # "JPMorgan Chase & Co." needs two passes
        s = basename(s).strip(" ,.")
    s = re.sub(r"^the\s+", "", s, flags=re.IGNORECASE)
    return " ".join(s.split())


def short_form(clean: str) -> str | None:
    """``Ford Motor`` -> ``Ford``; None if nothing generic trails or a generic head is left."""
    words = clean.split()
    while len(words) > 1 and words[-1].lower().strip(".,") in GENERIC_TAIL:
        words.pop()
    short = " ".join(words)
    if short == clean or len(short) < 4:
        return None
    if len(words) == 1 and words[0].lower() in GENERIC_HEAD:
        return None
    return short


def fold(s: str) -> str:
    """Accents removed (Nestlé -> Nestle); '' when nothing changes."""
    folded = "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))
    return folded if folded != s else ""


def pick_ticker(symbol: str, indices: set[str], us_symbols: list[str]) -> str | None:
    """The finpulse ticker of one pytickersymbols record (rules 1-3 of the module docstring)."""
    if indices & US_INDICES:
        cand = symbol.replace("-", ".") if "." not in symbol else symbol
        return cand.upper() if TICKER_RE.match(cand.upper()) else None
    valid_us = [s for s in us_symbols if TICKER_RE.match(s)]
    if valid_us:
        return valid_us[-1]
    home = symbol
    if "." not in home:
        suffixes = sorted({HOME_SUFFIX[i] for i in indices if i in HOME_SUFFIX})
        if suffixes:
            home += suffixes[0]
    home = home.upper()
    return home if TICKER_RE.match(home) else None


def read_fixes(path: Path) -> dict[str, str]:
    fixes: dict[str, str] = {}
    for row in _rows(path):
        fixes[row[0]] = row[1]
    return fixes


def _rows(path: Path) -> Iterable[list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.reader(line for line in f if not line.startswith("#")):
            if row and row[0] not in ("symbol", "alias"):
                yield [c.strip() for c in row]


def common_words(corpus_dir: Path) -> Counter[str]:
    """Lower-case word counts of the vendored corpus (tokens that start with a letter)."""
    counts: Counter[str] = Counter()
    for name in CORPUS_FILES:
        path = corpus_dir / name
        if not path.exists():
            continue
        with path.open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                counts.update(re.findall(r"(?<![\w$#@])[a-z][a-z'\-]*", row["text"]))
    return counts


Row = tuple[str, str, str, str]


def build(corpus_dir: Path, fixes: dict[str, str]) -> tuple[list[Row], list[str]]:
    """Rows ``(alias, ticker, common, source_name)`` sorted, plus human-readable drop notes."""
    from pytickersymbols import PyTickerSymbols  # build-time only

    lib = PyTickerSymbols()
    records: dict[tuple[str, str], tuple[dict[str, Any], set[str]]] = {}
    for index in lib.get_all_indices():
        for st in lib.get_stocks_by_index(index):
            sym = st.get("symbol")
            if not sym:
                continue
            rec_key = (st["name"], sym)
            records.setdefault(rec_key, (st, set()))[1].add(index)

    # lower-cased alias -> ticker -> source name: the linker matches case-insensitively
    # first and checks the case after, so "EBay" and "eBay" are one alias.
    claims: dict[str, dict[str, str]] = defaultdict(dict)
    spelled: dict[str, str] = {}  # lower-cased alias -> its first spelling
    lower = common_words(corpus_dir)
    notes: list[str] = []
    for (name, sym), (st, indices) in sorted(records.items()):
        fix = fixes.get(sym)
        if fix == "-":
            notes.append(f"dropped by listing_fixes: {name} ({sym})")
            continue
        us = [
            g.split(":", 1)[1]
            for g in (x.get("google") or "" for x in st.get("symbols", []))
            if g.startswith(("NYSE:", "NASDAQ:"))
        ]
        ticker = fix or pick_ticker(sym, indices, us)
        if ticker is None:
            notes.append(f"no finpulse ticker form: {name} ({sym})")
            continue
        clean = clean_name(name)
        short = short_form(clean)
        if short and sum(c.isalnum() for c in short) < 4:
            short = None  # "U.S. Bancorp" -> "U.S." is no name
        if short and " " not in short and lower[short.lower()] > 0:
            # "Customers Bancorp" -> "Customers": a one-word short form that people also
            # write as a plain word is too weak to stand for the company.
            short = None
        for alias in (clean, fold(clean), short, fold(short or "")):
            if alias and len(alias) >= 2:
                spelled.setdefault(alias.lower(), alias)
                claims[alias.lower()][ticker] = name

    rows: list[Row] = []
    for key, by_ticker in claims.items():
        spelling = spelled[key]
        if len(by_ticker) > 1:
            notes.append(f"ambiguous alias dropped: {spelling!r} -> {sorted(by_ticker)}")
            continue
        ((tick, source),) = by_ticker.items()
        common = " " not in spelling and lower[key] >= COMMON_MIN_LOWER
        rows.append((spelling, tick, "1" if common else "0", source))
    rows.sort(key=lambda r: (r[0].lower(), r[0], r[1]))
    return rows, sorted(notes)


def render(rows: list[Row]) -> str:
    buf = io.StringIO()
    buf.write(
        "# GENERATED by scripts/build_aliases.py; do not edit (curate overrides.csv, "
        "stoplist.csv, listing_fixes.csv).\n"
        f"# source: pytickersymbols=={version('pytickersymbols')}, "
        f"cleanco=={version('cleanco')}; common = single word written in lower case "
        f">= {COMMON_MIN_LOWER}x in data/twitter-financial-news\n"
    )
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["alias", "ticker", "common", "source_name"])
    w.writerows(rows)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT_DIR / "aliases.csv")
    ap.add_argument("--fixes", type=Path, default=OUT_DIR / "listing_fixes.csv")
    from finpulse.resources import dataset_dir

    default_corpus = dataset_dir()
    ap.add_argument("--corpus", type=Path, default=default_corpus)
    ap.add_argument("--check", action="store_true", help="exit 1 if --out is not up to date")
    ap.add_argument("--verbose", action="store_true", help="print every dropped record/alias")
    args = ap.parse_args(argv)
    rows, notes = build(args.corpus, read_fixes(args.fixes))
    text = render(rows)
    if args.verbose:
        for n in notes:
            print(n, file=sys.stderr)
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run python scripts/build_aliases.py", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(
        f"wrote {len(rows)} aliases for {len({r[1] for r in rows})} tickers to {args.out} "
        f"({len(notes)} records/aliases dropped; --verbose lists them)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
