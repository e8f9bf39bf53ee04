"""Near-duplicate stories: a weighted MinHash of the normalised headline, and an LSH index.

Issue 11: one wire story arrives many times (other sources, new ids, small rewrites) and
must count once per entity. This module is the pure part of that:

* ``normalise`` drops what differs between copies of one story but not between stories:
  case, links, cashtags, @mentions, ``#``, newsroom tags ("BREAKING:", "UPDATE 1-"),
  trailing source credits ("- Reuters", "(via @business)") and number formats
  ("3 percent" = "3%", "$1.2 bln" = "$1.2B", "2,000" = "2000", "five" = "5").
* ``signatures`` is a weighted MinHash over the distinct word tokens plus one extra
  "first word" token. Words, not character shingles, and weights by rarity in the vendored
  corpus (``novelty_vocab``): on the labelled pairs in tests/data/novelty this separated
  stories best (BENCHMARKS.md). "to" or "shares" barely count, names and numbers count
  fully, and the first word (headlines lead with their subject) counts three times, so
  "Apple shares fall 3%" and "Tesla shares fall 3%" differ where it matters. Each slot is an
  exponential race, ``min(-ln u / weight)``, in integers from a fixed table, so every
  machine computes the same bytes (replays and 1 vs 3 workers agree).
* ``probe_keys`` are LSH bands: BANDS keys of ROWS slots each, slices of the wire form.
  Two headlines repeat when any band is equal: P = 1 - (1 - s^ROWS)^BANDS at weighted
  Jaccard ``s``, one half at ``THRESHOLD`` (``detection_probability``).
* ``StoryIndex`` is one entity's probe key -> (story id, event ms), expired by event time
  and bounded with eviction by (event ms, key), the order a Redis sorted set pops in.

Degenerate headlines have a defined outcome and bounded cost: fewer than MIN_TOKENS
distinct tokens ("Tesla", "🚀🚀🚀") give an exact signature (the story is its normalised
text); nothing left after normalising ("!!!", a bare link) gives an exact signature of the
raw text (only verbatim copies repeat); blank gives the empty signature (never a repeat).
Only the first MAX_CHARS characters and MAX_TOKENS tokens count, and a batch computes
each distinct text once, so neither a 10,000-character headline nor a thousand copies in
one batch costs more than a few ordinary headlines.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import heapq
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from stream_app.core.novelty_vocab import COMMON_TOKENS

__all__ = [
    "BANDS",
    "MAX_CHARS",
    "MAX_TOKENS",
    "MIN_TOKENS",
    "ROWS",
    "SLOTS",
    "THRESHOLD",
    "Signature",
    "StoryIndex",
    "detection_probability",
    "normalise",
    "probe_keys",
    "signature",
    "signatures",
    "similarity",
    "tokens",
]

BANDS: Final = 10
ROWS: Final = 6  # 6 one-byte slots = 48 bits = exactly 8 base64 characters of the wire form
SLOTS: Final = BANDS * ROWS
MIN_TOKENS: Final = 3
MAX_CHARS: Final = 1000
MAX_TOKENS: Final = 64
MAX_TOKEN_BYTES: Final = 40
MAX_WEIGHT: Final = 7  # tokens missing from the common-token table are rare: full weight
THRESHOLD: Final = (1 - 0.5 ** (1 / BANDS)) ** (1 / ROWS)  # P(repeat) = 1/2 here: 0.637

Kind = Literal["minhash", "exact", "empty"]
_MINHASH, _EXACT = "m", "x"  # first character of the wire form
_WIRE_CHARS: Final = SLOTS * 4 // 3  # base64 of SLOTS bytes (a multiple of 3: no padding)

# --- text stage: regexes over the whole batch as one string, one line per headline -----
_URL = re.compile(r"https?://\S*")
_WWW = re.compile(r"www\.\S+")
_CASHTAG = re.compile(r"\$[a-z][a-z0-9.]*")
_MENTION = re.compile(r"\(via\b[^)\n]*\)|@\w+")
_LEAD = re.compile(
    r"^[^\w\n]*(?:(?:breaking(?: news)?|just in|new|update(?: \d+)?|watch(?: live)?|live"
    r"|exclusive|icymi|alert|earlier|flash|urgent|market news|reuters|bloomberg|cnbc|wsj|ft)"
    r"[ \t]*[:|\-]+[^\w\n]*)+",
    re.MULTILINE,
)
# A trailing source credit: " - Reuters", " | CNBC", " - Seeking Alpha", " - RTRS sources".
_CREDIT = re.compile(r"[ \t][-|][ \t]+[a-z][a-z.&' \t]{0,24}$", re.MULTILINE)
# Punctuation and line breaks NFKC keeps: dashes -> "-" (the credit rule reads them),
# typographic quotes, bullets, ellipses and Unicode line breaks -> space.
_UNICODE_PUNCT: Final = str.maketrans(
    {"\u2013": "-", "\u2014": "-"}
    | dict.fromkeys("\u2018\u2019\u201c\u201d\u2022\u00b7\u2026\u2028\u2029\x85", " ")
)


def _fold(text: str) -> str:
    text = text[:MAX_CHARS].replace("\n", " ")
    if text.isascii():
        return text
    return unicodedata.normalize("NFKC", text).translate(_UNICODE_PUNCT).replace("\n", " ")


def _clean(texts: Sequence[str]) -> str:
    """The batch as one lower-cased string, one line per text, links/tags/credits gone."""
    big = "\n".join(_fold(t) for t in texts).lower()
    if "http" in big:
        big = _URL.sub(" ", big)
    if "www." in big:
        big = _WWW.sub(" ", big)
    if "$" in big:
        big = _CASHTAG.sub(" ", big)
    if "@" in big or "(via" in big:
        big = _MENTION.sub(" ", big)
    if "&amp;" in big:
        big = big.replace("&amp;", "&")
    return _CREDIT.sub("", _LEAD.sub("", big))


# --- token stage: numpy over the bytes of the batch ------------------------------------
# A token is a run of one byte class: letters (and any non-ASCII byte), digits (a "."
# between digits included), or "%". So "q2" -> q 2, "3%" -> 3 %, "2,000" -> 2000.
_SEP, _LETTER, _DIGIT, _PERCENT, _NEWLINE, _DOT, _COMMA = range(7)
_CLASS = np.zeros(256, np.uint8)
_CLASS[ord("a") : ord("z") + 1] = _LETTER
_CLASS[ord("A") : ord("Z") + 1] = _LETTER
_CLASS[128:] = _LETTER
_CLASS[ord("0") : ord("9") + 1] = _DIGIT
_CLASS[[ord("%"), ord("\n"), ord("."), ord(",")]] = [_PERCENT, _NEWLINE, _DOT, _COMMA]
_NUMBER_WORDS: Final = "one two three four five six seven eight nine ten".split()  # noqa: SIM905
_ALIASES: Final = {
    "percent": "%", "pct": "%", "billion": "b", "bln": "b", "bn": "b", "million": "m",
    "mln": "m", "mn": "m", **{w: str(i) for i, w in enumerate(_NUMBER_WORDS, 1)},
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Tokens:
    """Every token of a batch: its hash, its text's index, and its bytes (for display)."""

    buf: npt.NDArray[np.uint8]
    hashes: npt.NDArray[np.uint64]
    items: npt.NDArray[np.intp]
    starts: npt.NDArray[np.intp]
    lengths: npt.NDArray[np.intp]

    def strings(self) -> list[str]:
        raw = self.buf.tobytes()
        out = []
        for s, n in zip(self.starts.tolist(), self.lengths.tolist(), strict=True):
            tok = raw[s : s + min(n, MAX_TOKEN_BYTES)].decode("utf-8", "ignore")
            out.append(_ALIASES.get(tok, tok))
        return out


def _tokenise(texts: Sequence[str]) -> _Tokens:
    """Hot path (every news item): a fixed number of numpy passes, no per-token Python."""
    buf = np.frombuffer(_clean(texts).encode(), np.uint8)
    cls = _CLASS[buf]
    pad = np.concatenate(([_SEP], cls, [_SEP] * 5)).astype(np.uint8)
    prev, nxt = pad[:-6], pad[2:-4]
    cls[(cls == _DOT) & (prev == _DIGIT) & (nxt == _DIGIT)] = _DIGIT  # 1.2 is one number
    commas = np.flatnonzero(cls == _COMMA)
    if len(commas):
        after = pad[commas[:, None] + np.arange(2, 6)]  # the 4 classes after each comma
        join = (prev[commas] == _DIGIT) & (after[:, :3] == _DIGIT).all(1) & (after[:, 3] != _DIGIT)
        keep = np.ones(len(buf), bool)
        keep[commas[join]] = False  # "2,000" -> "2000"
        buf, cls = buf[keep], cls[keep]
    hashes, starts, lengths = _hash_runs(buf, cls)
    items = np.cumsum(cls == _NEWLINE)[starts].astype(np.intp)
    src, dst = _alias_table()
    at = np.minimum(np.searchsorted(src, hashes), len(src) - 1)
    hit = src[at] == hashes
    hashes[hit] = dst[at[hit]]
    return _Tokens(buf, hashes, items, starts, lengths)


def _hash_runs(
    buf: npt.NDArray[np.uint8], cls: npt.NDArray[np.uint8]
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Hash, start and length of every token: sum((byte + 1) * BASE^j), then fmix64."""
    cls = np.where((cls == _DOT) | (cls == _COMMA), np.uint8(_SEP), cls)
    is_tok = (cls == _LETTER) | (cls == _DIGIT) | (cls == _PERCENT)
    first = is_tok & (cls != np.concatenate(([_SEP], cls[:-1])))
    tok_bytes = np.flatnonzero(is_tok)
    starts = np.flatnonzero(first)
    tok_of_byte = np.cumsum(first[tok_bytes]) - 1
    offset = np.minimum(tok_bytes - starts[tok_of_byte], MAX_TOKEN_BYTES)
    with np.errstate(over="ignore"):
        contrib = buf[tok_bytes].astype(np.uint64)
        contrib += _ONE
        contrib *= _powers()[offset]
        hashes = _fmix64(np.add.reduceat(contrib, np.flatnonzero(first[tok_bytes])))
    lengths = np.bincount(tok_of_byte, minlength=len(starts)).astype(np.intp)
    return hashes, starts.astype(np.intp), lengths


def normalise(text: str) -> str:
    """The part of a headline that copies of one story share: its tokens, in order."""
    return " ".join(_tokenise([text]).strings())


def tokens(text: str) -> list[str]:
    """Distinct tokens of ``normalise(text)``, in order, at most ``MAX_TOKENS``."""
    return list(dict.fromkeys(_tokenise([text]).strings()))[:MAX_TOKENS]


# --- hashing constants and tables -----------------------------------------------------
def _splitmix64(n: int, state: int = 0x46494E50554C5345) -> list[int]:
    """Fixed 64-bit constants (SplitMix64 seeded with "FINPULSE"): the same everywhere."""
    mask, out = (1 << 64) - 1, []
    for _ in range(n):
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        out.append(z ^ (z >> 31))
    return out


_CONSTANTS: Final = _splitmix64(SLOTS // 4 + 2)
_SEEDS: Final = np.array(_CONSTANTS[: SLOTS // 4], np.uint64)  # 4 x 16 bits per seed
_BASE: Final = _CONSTANTS[-2] | 1  # odd base of the polynomial byte hash
_FIRST_WORD_SALT: Final = np.uint64(_CONSTANTS[-1])
_ONE: Final = np.uint64(1)
_FMIX1, _FMIX2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)
_SLOT_MIX: Final = np.uint32(0x9E3779B1)
_S33, _S24, _S4 = np.uint64(33), np.uint32(24), np.uint16(4)
# The race divides by the weight exactly: 840 = lcm(1..8) is divisible by every weight
# 1..7 and every doubled first-word weight 2..14; 9.02 * 2^16 * 840 < 2^32.
_WEIGHT_FACTOR: Final = np.array([0] + [840 // w for w in range(1, 2 * MAX_WEIGHT + 1)], np.uint32)


def _fmix64(z: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """MurmurHash3's 64-bit finaliser (in place): every input bit moves every output bit."""
    with np.errstate(over="ignore"):
        t = z >> _S33
        z ^= t
        z *= _FMIX1
        np.right_shift(z, _S33, out=t)
        z ^= t
        z *= _FMIX2
        np.right_shift(z, _S33, out=t)
        z ^= t
    return z


@functools.cache
def _powers() -> npt.NDArray[np.uint64]:
    """BASE^j for j < MAX_TOKEN_BYTES, then 0: bytes past the cap do not count."""
    return np.array([pow(_BASE, j, 1 << 64) for j in range(MAX_TOKEN_BYTES)] + [0], np.uint64)


def _hash_words(words: Iterable[str]) -> npt.NDArray[np.uint64]:
    """Hashes of single normalised tokens (the alias and weight tables)."""
    words = list(words)
    buf = np.frombuffer(" ".join(words).encode(), np.uint8)
    cls = _CLASS[buf]
    cls[cls == _DOT] = _DIGIT  # a table token holds a dot only inside a number
    hashes, _, _ = _hash_runs(buf, cls)
    if len(hashes) != len(words):
        raise ValueError("a table entry is not a single normalised token")
    return hashes


@functools.cache
def _alias_table() -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    src, dst = _hash_words(_ALIASES), _hash_words(_ALIASES.values())
    order = np.argsort(src)
    return src[order], dst[order]


@functools.cache
def _weight_table() -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.intp]]:
    """The common-token table as sorted hashes and their weights."""
    pairs = [(tok, w) for w, line in COMMON_TOKENS.items() for tok in line.split()]
    hashes = _hash_words(tok for tok, _ in pairs)
    order = np.argsort(hashes)
    return hashes[order], np.array([w for _, w in pairs], np.intp)[order]


@functools.cache
def _neg_log_table() -> npt.NDArray[np.uint32]:
    """-ln(u) of the 4,096 12-bit uniforms in 2^-16 units (16 KiB: stays in cache).

    ``min(-ln u / w)`` over a text's tokens picks each with probability proportional to
    its weight, so two texts share a slot's winner with probability = weighted Jaccard.
    Integers (see _WEIGHT_FACTOR) keep the race exact: no float can differ by machine.
    """
    return np.array([round(-math.log((v + 0.5) / 4096) * 65536) for v in range(4096)], np.uint32)


# --- signatures ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Signature:
    """A headline's story fingerprint; ``wire`` is the compact form for JSON and Redis.

    * minhash: ``"m"`` + base64url of the SLOTS slot bytes (81 characters);
    * exact: ``"x"`` + base64url of a 9-byte digest (13 characters);
    * empty: ``""``, nothing to compare, never a repeat.
    """

    wire: str

    @property
    def kind(self) -> Kind:
        if not self.wire:
            return "empty"
        return "minhash" if self.wire[0] == _MINHASH else "exact"

    def slots(self) -> bytes:
        """The slot bytes of a minhash signature (empty for the other kinds)."""
        return base64.urlsafe_b64decode(self.wire[1:]) if self.kind == "minhash" else b""

    @classmethod
    def from_wire(cls, wire: str) -> Signature:
        """Check a wire form read back from Kafka or Redis; ``ValueError`` if malformed."""
        size = {_MINHASH: _WIRE_CHARS, _EXACT: 12}.get(wire[:1])
        if wire and (size is None or len(wire) != size + 1 or not _B64.fullmatch(wire, 1)):
            raise ValueError(f"not a novelty signature: {wire[:24]!r}")
        return cls(wire)


_EMPTY: Final = Signature("")
_B64 = re.compile(r"[A-Za-z0-9_-]*")


def _exact(key: bytes) -> Signature:
    digest = hashlib.blake2b(key, digest_size=9, person=b"finpulse-exact").digest()
    return Signature(_EXACT + base64.urlsafe_b64encode(digest).decode())


def signature(text: str) -> Signature:
    """The signature of one headline (``signatures`` is the form for a batch)."""
    return signatures([text])[0]


def signatures(texts: Sequence[str]) -> list[Signature]:
    """Signatures of a batch: one numpy pass over all tokens; each distinct text once."""
    unique = list(dict.fromkeys(texts))
    tok = _tokenise(unique)
    firsts = np.searchsorted(tok.items, np.arange(len(unique) + 1))
    counts = np.minimum(np.diff(firsts), MAX_TOKENS)
    keep = np.arange(len(tok.hashes)) - firsts[tok.items] < MAX_TOKENS
    hashes, items = tok.hashes[keep], tok.items[keep]
    starts = np.concatenate(([0], np.cumsum(counts)))
    # MIN_TOKENS distinct tokens: the first three differ (nearly always), else a set says.
    h3 = np.append(hashes, np.zeros(3, np.uint64))[starts[:-1, None] + np.arange(3)]
    enough = (counts >= MIN_TOKENS) & (h3[:, 0] != h3[:, 1]) & (h3[:, 0] != h3[:, 2])
    enough &= h3[:, 1] != h3[:, 2]
    for i in np.flatnonzero(~enough & (counts >= MIN_TOKENS)).tolist():
        enough[i] = len(set(hashes[starts[i] : starts[i + 1]].tolist())) >= MIN_TOKENS
    out: dict[str, Signature] = {}
    for i in np.flatnonzero(~enough).tolist():
        if counts[i]:
            out[unique[i]] = _exact(hashes[starts[i] : starts[i + 1]].tobytes())
        else:
            folded = " ".join(unique[i][:MAX_CHARS].lower().split())
            out[unique[i]] = _exact(folded.encode()) if folded else _EMPTY
    chosen = np.flatnonzero(enough)
    if len(chosen):
        seg = np.concatenate(([0], np.cumsum(counts[chosen])[:-1]))
        rows = _minhash(hashes[enough[items]], seg, hashes[starts[chosen]])
        wire = base64.urlsafe_b64encode(rows.tobytes()).decode()
        for k, i in enumerate(chosen.tolist()):
            out[unique[i]] = Signature(_MINHASH + wire[k * _WIRE_CHARS : (k + 1) * _WIRE_CHARS])
    return [out[t] for t in texts]


def _minhash(
    hashes: npt.NDArray[np.uint64], seg: npt.NDArray[np.intp], firsts: npt.NDArray[np.uint64]
) -> npt.NDArray[np.uint8]:
    """One row of SLOTS bytes per text: each slot's race winner, hashed to a byte.

    ``seg``: each text's first position in ``hashes``; ``firsts``: its first token, which
    races once more (salted) as the "first word" element at twice the token's weight --
    exactly two more copies of it, since the minimum of two races at w is one at 2w.
    """
    table, table_w = _weight_table()
    at = np.minimum(np.searchsorted(table, hashes), len(table) - 1)
    weights = np.where(table[at] == hashes, table_w[at], MAX_WEIGHT)
    winners = np.minimum.reduceat(_race(hashes, weights), seg, axis=0)
    np.minimum(winners, _race(firsts ^ _FIRST_WORD_SALT, 2 * weights[seg]), out=winners)
    winners *= _SLOT_MIX
    winners >>= _S24
    return winners.astype(np.uint8)


def _race(hashes: npt.NDArray[np.uint64], weights: npt.NDArray[np.intp]) -> npt.NDArray[np.uint32]:
    """Per token and slot: -ln(u) * 840 / w, with u = 12 bits of fmix64(hash + seed).

    Hot path: in-place arithmetic on few arrays (large fresh temporaries cost page
    faults); 64-bit overflow is the intended modular arithmetic.
    """
    with np.errstate(over="ignore"):
        z = _fmix64(hashes[:, None] + _SEEDS[None, :])
    uniforms = z.view(np.uint16).reshape(len(hashes), SLOTS)
    uniforms >>= _S4
    race = _neg_log_table()[uniforms]
    race *= _WEIGHT_FACTOR[weights][:, None]
    return race


# --- comparing -----------------------------------------------------------------------
def probe_keys(sig: Signature) -> list[str]:
    """Exact-match keys to look up: BANDS band keys (minhash), one (exact), none (empty)."""
    return list(_probe_keys(sig.wire))


@functools.lru_cache(maxsize=1 << 16)
def _probe_keys(w: str) -> tuple[str, ...]:
    # Cached: the aggregator asks for the same signature's keys several times per event.
    if w[:1] == _MINHASH:
        return tuple(f"{i}{w[1 + 8 * i : 9 + 8 * i]}" for i in range(BANDS))
    return (w,) if w else ()


def similarity(a: Signature, b: Signature) -> float:
    """Estimated weighted Jaccard of two headlines, 0..1; exact signatures: 1.0 or 0.0.

    One-byte slots also agree by chance (1/256 each): the estimate corrects for it.
    """
    if a.kind != b.kind or a.kind == "empty":
        return 0.0
    if a.kind == "exact":
        return float(a.wire == b.wire)
    same = sum(x == y for x, y in zip(a.slots(), b.slots(), strict=True)) / SLOTS
    return max(0.0, (same - 1 / 256) / (1 - 1 / 256))


def detection_probability(s: float) -> float:
    """P(some band equal) for two minhash signatures at weighted Jaccard ``s``."""
    return 1 - (1 - s**ROWS) ** BANDS


# --- the per-entity index ------------------------------------------------------------
@dataclass
class StoryIndex:
    """One entity's probe key -> (story id, event ms): bounded, expired by event time.

    Rules a store can mirror with a hash plus a sorted set scored by event ms:

    * an entry is live while ``event_ms > now_ms - window_ms``;
    * ``lookup``: of the live entries its keys hit, the story with most hits wins, then
      the earliest entry, then the smallest id: same events, same order, same ids;
    * ``add``: absent or expired keys take the story; the story's own keys move to the
      newer event time; keys held by another live story stay with it (no stealing);
    * ``expire``: drop expired entries, then the smallest (event ms, key) while more than
      ``max_keys`` remain (a Redis ZSET pops equal scores by member, the same order);
      ``add`` ends with ``expire(event_ms)``, so the index never holds more than that.

    ``bounded=False`` (``working``) skips the expiry bookkeeping: liveness is checked by
    event time on every lookup anyway, and a working copy over a batch's probed keys is
    thrown away after the store has applied its own bounds. It records its writes in
    ``changed`` instead: what a commit sends back to the store.
    """

    window_ms: int
    max_keys: int = 4096
    bounded: bool = True
    changed: dict[str, tuple[str, int]] = field(default_factory=dict, repr=False)
    _entries: dict[str, tuple[str, int]] = field(default_factory=dict, repr=False)
    _heap: list[tuple[int, str]] = field(default_factory=list, repr=False)  # may hold stale

    def __post_init__(self) -> None:
        if self.window_ms <= 0 or self.max_keys < BANDS:
            raise ValueError(f"StoryIndex needs window_ms > 0 and max_keys >= {BANDS}")

    def __len__(self) -> int:
        return len(self._entries)

    def _live(self, key: str, now_ms: int) -> tuple[str, int] | None:
        entry = self._entries.get(key)
        return entry if entry is not None and entry[1] > now_ms - self.window_ms else None

    def lookup(self, sig: Signature, now_ms: int) -> str | None:
        """The story ``sig`` repeats at ``now_ms``, or None for a first."""
        found: dict[str, tuple[int, int]] = {}  # story -> (-hits, earliest ms)
        for key in probe_keys(sig):
            entry = self._live(key, now_ms)
            if entry is not None:
                hits, ms = found.get(entry[0], (0, entry[1]))
                found[entry[0]] = (hits - 1, min(ms, entry[1]))
        return min(found, key=lambda s: (*found[s], s)) if found else None

    def add(self, sig: Signature, story_id: str, event_ms: int) -> None:
        """Record ``sig`` as part of ``story_id`` at ``event_ms``, then ``expire``."""
        for key in probe_keys(sig):
            entry = self._live(key, event_ms)
            if entry is not None and (entry[0] != story_id or entry[1] >= event_ms):
                continue
            self._entries[key] = (story_id, event_ms)
            if self.bounded:
                heapq.heappush(self._heap, (event_ms, key))
            else:
                self.changed[key] = (story_id, event_ms)
        if self.bounded:
            self.expire(event_ms)

    def observe(self, sig: Signature, item_id: str, event_ms: int) -> tuple[str, bool]:
        """Lookup then add: ``(story_id, is_repeat)``; a first is its own story.

        Hot path (the aggregator calls it per event): ``lookup`` and ``add`` inlined into
        one pass over the probe keys, same rules.
        """
        entries, cutoff = self._entries, event_ms - self.window_ms
        hits = [(key, entries.get(key)) for key in _probe_keys(sig.wire)]
        found: dict[str, tuple[int, int]] = {}  # story -> (-hits, earliest ms)
        for _, entry in hits:
            if entry is not None and entry[1] > cutoff:
                n, ms = found.get(entry[0], (0, entry[1]))
                found[entry[0]] = (n - 1, min(ms, entry[1]))
        story = min(found, key=lambda x: (*found[x], x)) if found else None
        owner = story or item_id
        for key, entry in hits:
            if (
                entry is not None
                and entry[1] > cutoff
                and (entry[0] != owner or entry[1] >= event_ms)
            ):
                continue
            entries[key] = value = (owner, event_ms)
            if self.bounded:
                heapq.heappush(self._heap, (event_ms, key))
            else:
                self.changed[key] = value
        if self.bounded:
            self.expire(event_ms)
        return (story, True) if story is not None else (item_id, False)

    def expire(self, now_ms: int) -> None:
        """Drop expired entries, then the smallest (event ms, key) while over the bound."""
        cutoff = now_ms - self.window_ms
        while self._heap:
            ms, key = self._heap[0]
            entry = self._entries.get(key)
            if entry is None or entry[1] != ms:
                heapq.heappop(self._heap)  # stale: refreshed or removed since
            elif ms <= cutoff or len(self._entries) > self.max_keys:
                heapq.heappop(self._heap)
                del self._entries[key]
            else:
                break
        if len(self._heap) > 4 * self.max_keys:  # refreshes leave stale pairs behind
            self._heap = [(ms, k) for k, (_, ms) in self._entries.items()]
            heapq.heapify(self._heap)

    def entry(self, key: str) -> tuple[str, int] | None:
        """The (story id, event ms) a probe key holds, live or not (a store writes it back)."""
        return self._entries.get(key)

    @classmethod
    def working(cls, entries: Mapping[str, tuple[str, int]], *, window_ms: int) -> StoryIndex:
        """An unbounded copy of ``entries`` (probe key -> (story id, event ms))."""
        index = cls(window_ms, bounded=False)
        index._entries = dict(entries)
        return index

    def to_dict(self) -> dict[str, str]:
        """``{probe key: "event_ms:story_id"}``, sorted by key: a Redis hash as it is."""
        return {k: f"{ms}:{story}" for k, (story, ms) in sorted(self._entries.items())}

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, str] | Mapping[bytes, bytes],
        *,
        window_ms: int,
        max_keys: int = 4096,
    ) -> StoryIndex:
        """Rebuild from ``to_dict`` output (or redis-py's HGETALL bytes); ValueError if bad."""
        index = cls(window_ms, max_keys)
        for raw_key, raw_value in data.items():
            key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
            value = raw_value.decode() if isinstance(raw_value, bytes) else raw_value
            ms, sep, story = value.partition(":")
            if not sep or not story or not ms.lstrip("-").isdigit():
                raise ValueError(f"bad story index entry {key!r}: {value[:40]!r}")
            index._entries[key] = (story, int(ms))
        index._heap = [(ms, k) for k, (_, ms) in index._entries.items()]
        heapq.heapify(index._heap)
        index.expire(max((ms for ms, _ in index._heap), default=0))  # enforce max_keys
        return index
