"""Offline, label-preserving text augmentation for finance tweets: pure Python, seeded.

Each augmented copy applies the edits that make sense for its text, chosen so the label
cannot change and the copy looks more like a news sentence than a tweet:

* **entity swap**: every cashtag becomes another cashtag seen in the corpus
  (``$TSLA falls`` -> ``$KO falls``), so the model cannot learn that a ticker is bullish;
* **number jitter**: each number is scaled by 0.5-2x in its own format (``5%`` -> ``7%``,
  ``1,671.20`` -> ``2,104.93``); the sign and the words around it stay;
* **de-tweet**: URLs and a leading ``$TICKER -``/``$TICKER:`` tag are removed, as a
  headline in a news feed would read.

No word is ever dropped or replaced: in a headline one word ("falls", "beats") is often
the whole label. A text none of the edits changes gets no copy.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Final

__all__ = ["augment_text", "cashtag_pool"]

_CASHTAG: Final = re.compile(r"\$[A-Za-z][A-Za-z.]{0,5}\b")
_NUMBER: Final = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\w])")
_URL: Final = re.compile(r"\s*(?:https?://|www\.)\S+")
_LEAD_TAG: Final = re.compile(r"^\s*(?:\$[A-Za-z][A-Za-z.]{0,5}\s*)+[-:–]\s+")


def cashtag_pool(texts: Sequence[str]) -> list[str]:
    """Distinct cashtags of a corpus (upper-cased, sorted: deterministic for a seed)."""
    return sorted({m.group(0).upper() for t in texts for m in _CASHTAG.finditer(t)})


def _swap_entities(text: str, pool: Sequence[str], rng: random.Random) -> str:
    if len(pool) < 2:
        return text
    return _CASHTAG.sub(lambda m: rng.choice(pool), text)


def _format_like(value: float, integer: str, fraction: str | None) -> str:
    decimals = len(fraction) - 1 if fraction else 0
    return f"{value:,.{decimals}f}" if "," in integer else f"{value:.{decimals}f}"


def _jitter_numbers(text: str, rng: random.Random) -> str:
    def scale(m: re.Match[str]) -> str:
        integer, fraction = m.group(1), m.group(2)
        value = float(integer.replace(",", "") + (fraction or ""))
        if value == 0:
            return m.group(0)
        return _format_like(value * rng.uniform(0.5, 2.0), integer, fraction)

    return _NUMBER.sub(scale, text)


def _detweet(text: str) -> str:
    out = _URL.sub("", text)
    out = _LEAD_TAG.sub("", out)
    return out.strip()


def augment_text(text: str, pool: Sequence[str], rng: random.Random) -> str | None:
    """An altered copy of ``text`` with the same label, or ``None`` when nothing applies."""
    out = text
    if _CASHTAG.search(out):
        out = _swap_entities(out, pool, rng)
    if rng.random() < 0.5:
        out = _jitter_numbers(out, rng)
    detweeted = _detweet(out)
    if detweeted:
        out = detweeted
    return out if out != text and out.strip() else None
