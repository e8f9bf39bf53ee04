"""How one wire story looks when several outlets re-send it: deterministic headline rewrites.

The same story reaches a news feed many times: a wire headline, then the same words with a
source tag ("- Reuters", "BREAKING:"), shouted in capitals, with a cashtag or a short link
in front or behind, cut short with an ellipsis, a number spelt another way ("3%" vs
"3 percent", "$1.2 billion" vs "$1.2B") or a verb swapped ("falls" vs "drops"). Those are
the copies that must count once (issue 11). ``rewrite`` produces such a copy from a real
headline; the sample-feed generator uses it for duplicate storms and the novelty
evaluation set (tests/data/novelty) for its synthetic positives, so both are built from the
same, reviewable list of edits.

Every edit keeps the story: it never changes who, what or which number. Everything is
driven by the caller's ``random.Random``, so the same seed gives the same copies.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Callable, Sequence
from typing import Final

__all__ = ["EDITS", "PREFIXES", "SUFFIXES", "rewrite"]

PREFIXES: Final[tuple[str, ...]] = (
    "BREAKING: ", "JUST IN: ", "NEW: ", "UPDATE 1-", "WATCH: ", "EXCLUSIVE-", "Reuters: ",
    "MARKET NEWS: ", "*", "ALERT: ",
)  # fmt: skip
SUFFIXES: Final[tuple[str, ...]] = (
    " - Reuters", " - Bloomberg", " | CNBC", " (via @business)", " - RTRS", " - BBG",
    " - SA", " - MarketWatch", " - FT", " - sources", " #stocks #markets", " - WSJ",
)  # fmt: skip

# Swaps a desk reads as "the same thing said differently". Both directions are used.
_SYNONYMS: Final[tuple[tuple[str, str], ...]] = (
    ("falls", "drops"), ("fall", "drop"), ("rises", "climbs"), ("rise", "climb"),
    ("says", "said"), ("cuts", "lowers"), ("cut", "lower"), ("raises", "lifts"),
    ("to buy", "to acquire"), ("shares", "stock"), ("plunges", "tumbles"), ("surges", "jumps"),
    ("sues", "files suit against"), ("probe", "investigation"), ("quits", "resigns"),
    ("beats", "tops"), ("agrees to", "will"), ("over", "amid"), ("hikes", "raises"),
)  # fmt: skip
_SPELLED: Final[dict[str, str]] = {
    "2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven", "8": "eight",
    "9": "nine", "10": "ten",
}  # fmt: skip
_WORD = re.compile(r"\b[A-Za-z][A-Za-z']*\b")
_PERCENT = re.compile(r"(\d(?:[\d.,]*\d)?)%")
_BILLION = re.compile(r"(\d(?:[\d.]*\d)?) ?(billion|million|bln|mln|bn|B|M)\b")
_THOUSANDS = re.compile(r"\b(\d{1,3}),(\d{3})\b")
_SMALL_INT = re.compile(r"(?<![\d.,$])\b([2-9]|10)\b(?![\d.,%])")
_KEEP_CASE = re.compile(r"(https?://\S+|\$[A-Za-z][A-Za-z0-9.]*)")
_LINK = re.compile(r"https?://\S+")
_LEADING_TAGS = re.compile(r"^(?:\$[A-Za-z][A-Za-z0-9.]*\s*)+(?:[-:|]\s*)?")
_ALNUM = string.ascii_uppercase + string.digits + string.ascii_lowercase


def _prefix(text: str, rng: random.Random, ticker: str | None) -> str | None:
    return None if text.startswith(PREFIXES) else rng.choice(PREFIXES) + text


def _suffix(text: str, rng: random.Random, ticker: str | None) -> str | None:
    return text.rstrip(" .") + rng.choice(SUFFIXES)


def _case(text: str, rng: random.Random, ticker: str | None) -> str | None:
    """Shouted, Title Cased or lower-cased words; links and cashtags keep their case."""
    style = rng.randrange(3)
    change: Callable[[str], str]
    if style == 0:
        change = str.upper
    elif style == 1:
        change = _title
    else:
        change = str.lower
    parts = _KEEP_CASE.split(text)  # odd positions are links / cashtags
    out = "".join(
        p if i % 2 else _WORD.sub(lambda m: change(m.group(0)), p) for i, p in enumerate(parts)
    )
    return out if out != text else None


def _title(word: str) -> str:
    return word[:1].upper() + word[1:]


def _punctuation(text: str, rng: random.Random, ticker: str | None) -> str | None:
    style = rng.randrange(4)
    if style == 0:  # typographic quotes and dashes, as a CMS renders them
        out = text.replace("'", "\u2019").replace(" - ", " \u2014 ")
    elif style == 1:
        out = text.replace("\u2019", "'").replace("\u2014", "-").replace(",", "")
    elif style == 2:
        out = text.rstrip(".") + "."
    else:
        out = text.replace(": ", " - ", 1) if ": " in text else text + " ..."
    return out if out != text else None


def _short_link(rng: random.Random) -> str:
    return "https://t.co/" + "".join(rng.choice(_ALNUM) for _ in range(10))


def _link(text: str, rng: random.Random, ticker: str | None) -> str | None:
    """Each re-post gets its own short link: replace the ones there, drop them, or add one."""
    if _LINK.search(text):
        if rng.random() < 0.5:
            return _LINK.sub(lambda _: _short_link(rng), text)
        return _LINK.sub("", text).strip() or None
    return f"{text}  {_short_link(rng)}"


def _cashtag(text: str, rng: random.Random, ticker: str | None) -> str | None:
    """Financial wires tag the ticker in front; general outlets drop the tags."""
    if _LEADING_TAGS.match(text):
        return _LEADING_TAGS.sub("", text, count=1) or None
    if ticker:
        return f"${ticker}{rng.choice((' - ', ': ', ' '))}{text}"
    return None


def _synonym(text: str, rng: random.Random, ticker: str | None) -> str | None:
    pairs = list(_SYNONYMS)
    rng.shuffle(pairs)
    for a, b in pairs:
        for old, new in ((a, b), (b, a)):
            pattern = re.compile(rf"\b{re.escape(old)}\b", re.IGNORECASE)
            if pattern.search(text):
                return pattern.sub(new, text, count=1)
    return None


def _drop_article(text: str, rng: random.Random, ticker: str | None) -> str | None:
    hits = list(re.finditer(r"\b(?:the|a|an) ", text))
    if not hits:
        return None
    m = rng.choice(hits)
    return text[: m.start()] + text[m.end() :]


def _truncate(text: str, rng: random.Random, ticker: str | None) -> str | None:
    """Cut at a word boundary after 70-90% of the words, as tweets and tickers do."""
    words = text.split()
    if len(words) < 8:
        return None
    keep = max(6, int(len(words) * rng.uniform(0.7, 0.9)))
    return " ".join(words[:keep]) + rng.choice(("...", "\u2026", " \u2026"))


def _numbers(text: str, rng: random.Random, ticker: str | None) -> str | None:
    """The same number written another way: 3% / 3 percent, $1.2 billion / $1.2B, 2,000 / 2000."""
    if _PERCENT.search(text):
        return _PERCENT.sub(lambda m: m.group(1) + rng.choice((" percent", " pct")), text, count=1)
    if m := _BILLION.search(text):
        unit = m.group(2).lower()
        forms = ("billion", "bln", "B") if unit in {"billion", "bln", "bn", "b"} else (
            "million", "mln", "M")  # fmt: skip
        new = rng.choice([f for f in forms if f.lower() != unit])
        sep = "" if len(new) == 1 else " "
        return text[: m.start()] + f"{m.group(1)}{sep}{new}" + text[m.end() :]
    if _THOUSANDS.search(text):
        return _THOUSANDS.sub(r"\1\2", text, count=1)
    if m := _SMALL_INT.search(text):
        return text[: m.start()] + _SPELLED[m.group(1)] + text[m.end() :]
    return None


Edit = Callable[[str, random.Random, "str | None"], "str | None"]
# Application order: wording, numbers, truncation, punctuation, case, then the tags and links
# a re-publisher adds around the text (so a prefix is never truncated away, and capitals
# never touch a link).
EDITS: Final[dict[str, Edit]] = {
    "synonym": _synonym,
    "drop_article": _drop_article,
    "numbers": _numbers,
    "truncate": _truncate,
    "punctuation": _punctuation,
    "case": _case,
    "cashtag": _cashtag,
    "prefix": _prefix,
    "suffix": _suffix,
    "link": _link,
}


def rewrite(
    text: str,
    rng: random.Random,
    *,
    edits: int = 2,
    ticker: str | None = None,
    allowed: Sequence[str] | None = None,
) -> str:
    """A syndicated copy of ``text`` with up to ``edits`` distinct edits from ``allowed``.

    Edits are drawn in random order and skipped where they do not apply (no number to
    reformat, too short to truncate); those drawn are applied in ``EDITS`` order.
    ``ticker`` is the symbol a financial wire would tag the copy with.
    """
    names = list(allowed or EDITS)
    rng.shuffle(names)
    chosen: set[str] = set()
    for name in names:
        if len(chosen) >= edits:
            break
        # Probe on a copy of the generator so the final pass below replays the same draws.
        if EDITS[name](text.strip(), random.Random(rng.random()), ticker) is not None:
            chosen.add(name)
    out = text.strip()
    for name, edit in EDITS.items():
        if name in chosen:
            out = edit(out, rng, ticker) or out
    return out
