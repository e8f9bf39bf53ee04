"""Near-duplicate detection: normalising, the MinHash estimate against a brute-force
weighted Jaccard, the LSH decision on the labelled pairs, degenerate headlines, and the
story index against a reference model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.core import novelty as nv
from stream_app.core.novelty_vocab import COMMON_TOKENS

ROOT = Path(__file__).resolve().parents[3]
PAIRS = ROOT / "tests" / "data" / "novelty"
WINDOW = 86_400_000
WEIGHTS = {tok: w for w, line in COMMON_TOKENS.items() for tok in line.split()}
ascii_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=200)
VOCAB = "tesla apple recalls cuts 3% 2,000 shares fall - $TSLA ! the"
words = st.lists(st.sampled_from(VOCAB.split()))


def weighted_jaccard(a: str, b: str) -> float:
    """Brute force: distinct tokens, weighted by the vocab table, the first word 3 times."""

    def weights(text: str) -> dict[str, int]:
        toks = nv.tokens(text)
        out = {t: WEIGHTS.get(t, nv.MAX_WEIGHT) for t in toks}
        if toks:
            out["^" + toks[0]] = 2 * out[toks[0]]
        return out

    wa, wb = weights(a), weights(b)
    keys = wa.keys() | wb.keys()
    low = sum(min(wa.get(k, 0), wb.get(k, 0)) for k in keys)
    return low / sum(max(wa.get(k, 0), wb.get(k, 0)) for k in keys)


def is_repeat(a: str, b: str) -> bool:
    index = nv.StoryIndex(WINDOW)
    sa, sb = nv.signatures([a, b])
    index.add(sa, "first", 1_000)
    return index.lookup(sb, 2_000) == "first"


def load(name: str) -> Iterator[dict[str, str]]:
    with (PAIRS / name).open(encoding="utf-8") as fh:
        yield from (json.loads(line) for line in fh)


# --- normalising ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("BREAKING: Apple shares fall 3 percent after earnings miss - Reuters",
         "apple shares fall 3 % after earnings miss"),
        ("$AAPL - Apple Shares Fall 3% After Earnings Miss\u2026 https://t.co/AbC123xyz",
         "apple shares fall 3 % after earnings miss"),
        ("UPDATE 1-Boeing to cut 2,000 jobs, sees $1.2 bln charge (via @business)",
         "boeing to cut 2000 jobs sees 1.2 b charge"),
        ("JUST IN: Hong Kong raises taxi fares for the first time in five years #HongKong",
         "hong kong raises taxi fares for the first time in 5 years hongkong"),
        ("Italy\u2019s Draghi asks for confidence vote \u2014 BBG",
         "italy s draghi asks for confidence vote"),
        ("U.S. Q2 GDP 1.5%.", "u s q 2 gdp 1.5 %"),
        ("Tesla - a new model", "tesla"),  # a short trailing segment reads as a credit
        ("", ""),
        ("!!! ...", ""),
    ],
)  # fmt: skip
def test_normalise_folds_what_copies_of_a_story_differ_in(text: str, expected: str) -> None:
    assert nv.normalise(text) == expected


@given(ascii_text)
def test_normalise_is_idempotent_and_signatures_only_see_it(text: str) -> None:
    once = nv.normalise(text)
    assert nv.normalise(once) == once
    if once:  # no token at all: the raw text decides (see the degenerate cases)
        assert nv.signature(once) == nv.signature(text)


@given(st.lists(st.one_of(ascii_text, words.map(" ".join)), max_size=12))
def test_batch_form_equals_one_by_one(texts: list[str]) -> None:
    assert nv.signatures(texts) == [nv.signature(t) for t in texts]


def test_signatures_do_not_depend_on_the_process() -> None:
    """A second interpreter (other hash seed, cold caches) computes the same bytes."""
    texts = [row["a"] for row in load("real_pairs.jsonl")][:50]
    code = (
        "import json,sys; from stream_app.core.novelty import signatures;"
        "print(json.dumps([s.wire for s in signatures(json.load(sys.stdin))]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(texts), capture_output=True,
        text=True, env=env, check=True, timeout=120,
    ).stdout  # fmt: skip
    assert json.loads(out) == [s.wire for s in nv.signatures(texts)]


# --- the estimate and the decision -------------------------------------------------------
def test_similarity_estimates_the_weighted_jaccard() -> None:
    pairs = list(load("real_pairs.jsonl")) + list(load("synthetic_pairs.jsonl"))
    errors = []
    for p in pairs:
        a, b = nv.signatures([p["a"], p["b"]])
        if a.kind == b.kind == "minhash":
            errors.append(abs(nv.similarity(a, b) - weighted_jaccard(p["a"], p["b"])))
    assert len(errors) > 800
    assert sum(errors) / len(errors) < 0.05  # 60 slots: standard error about 0.06
    assert max(errors) < 0.3


def test_lsh_decision_follows_the_s_curve() -> None:
    pairs = list(load("real_pairs.jsonl")) + list(load("synthetic_pairs.jsonl"))
    high = [is_repeat(p["a"], p["b"]) for p in pairs if weighted_jaccard(p["a"], p["b"]) >= 0.85]
    low = [is_repeat(p["a"], p["b"]) for p in pairs if weighted_jaccard(p["a"], p["b"]) <= 0.3]
    assert len(high) > 300
    assert len(low) > 200
    assert sum(high) / len(high) >= nv.detection_probability(0.85) - 0.05
    assert sum(low) / len(low) <= 0.01
    assert 0.6 < nv.THRESHOLD < 0.7
    assert nv.detection_probability(nv.THRESHOLD) == pytest.approx(0.5)


def test_precision_and_recall_on_the_labelled_pairs() -> None:
    """Regression floors a little under the measured values (BENCHMARKS.md)."""
    real = [p for p in load("real_pairs.jsonl") if p["label"] != "unsure"]
    decided = [(is_repeat(p["a"], p["b"]), p["label"] == "same") for p in real]
    tp = sum(d and y for d, y in decided)
    assert tp / sum(d for d, _ in decided) >= 0.78  # precision, hand-labelled real pairs
    assert tp / sum(y for _, y in decided) >= 0.60  # recall (heavy rewrites are missed)
    synthetic: dict[str, list[bool]] = {}
    for p in load("synthetic_pairs.jsonl"):
        synthetic.setdefault(p["kind"], []).append(is_repeat(p["a"], p["b"]))
    assert sum(synthetic["rewrite"]) / len(synthetic["rewrite"]) >= 0.97
    assert sum(synthetic["same_company"]) / len(synthetic["same_company"]) <= 0.02
    assert sum(synthetic["template"]) / len(synthetic["template"]) <= 0.15  # see BENCHMARKS.md


# --- degenerate headlines ---------------------------------------------------------------
def test_degenerate_headlines_have_defined_outcomes() -> None:
    empty, bang, bang2, one, emoji, long = nv.signatures(
        ["  ", "!!!", "!!!", "Tesla", "\U0001f680\U0001f680", "Tesla recalls cars " * 600]
    )
    assert empty.kind == "empty"
    assert nv.probe_keys(empty) == []
    assert bang.kind == one.kind == emoji.kind == "exact"
    assert bang == bang2
    assert nv.signature("Tesla!") == one != nv.signature("Tesla Motors")
    assert nv.signature("?!") != bang  # no token: only verbatim copies repeat
    assert long == nv.signature(("Tesla recalls cars " * 600)[: nv.MAX_CHARS])
    index = nv.StoryIndex(WINDOW)
    assert index.observe(empty, "e1", 1) == ("e1", False)
    assert index.observe(empty, "e2", 2) == ("e2", False)  # blank never repeats
    assert index.observe(bang, "b1", 3) == ("b1", False)
    assert index.observe(bang2, "b2", 4) == ("b1", True)


def test_thousands_of_copies_in_one_batch_are_one_story_in_bounded_state() -> None:
    texts = [f"BREAKING: Tesla recalls 2 million vehicles over Autopilot {'!' * (i % 7)}"
             for i in range(5000)]  # fmt: skip
    sigs = nv.signatures(texts)
    assert len(set(sigs)) == 1
    index = nv.StoryIndex(WINDOW, max_keys=64)
    ids = [index.observe(s, f"n{i}", 1_000 + i)[0] for i, s in enumerate(sigs)]
    assert set(ids) == {"n0"}
    assert len(index) == nv.BANDS


# --- the story index --------------------------------------------------------------------
KEYS = [nv.signature(f"story number {i} about tesla recalls") for i in range(6)]


class ReferenceIndex:
    """The index rules written the slow, obvious way."""

    def __init__(self, window_ms: int, max_keys: int) -> None:
        self.window, self.max, self.entries = window_ms, max_keys, {}  # type: ignore[var-annotated]

    def live(self, now: int) -> dict[str, tuple[str, int]]:
        return {k: v for k, v in self.entries.items() if v[1] > now - self.window}

    def lookup(self, sig: nv.Signature, now: int) -> str | None:
        live = self.live(now)
        hits = [live[k] for k in nv.probe_keys(sig) if k in live]
        stories = {s for s, _ in hits}
        rank = {s: (-sum(h == s for h, _ in hits), min(ms for h, ms in hits if h == s), s)
                for s in stories}  # fmt: skip
        return min(stories, key=rank.__getitem__) if stories else None

    def add(self, sig: nv.Signature, story: str, now: int) -> None:
        live = self.live(now)
        for k in nv.probe_keys(sig):
            if k not in live or (live[k][0] == story and live[k][1] < now):
                self.entries[k] = (story, now)
        self.entries = {k: v for k, v in self.entries.items() if v[1] > now - self.window}
        while len(self.entries) > self.max:
            del self.entries[min(self.entries, key=lambda k: (self.entries[k][1], k))]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 400)), min_size=1, max_size=40),
    st.integers(nv.BANDS, 3 * nv.BANDS),
)
def test_index_matches_the_reference_rules(ops: list[tuple[int, int]], max_keys: int) -> None:
    index, ref = nv.StoryIndex(1_000, max_keys), ReferenceIndex(1_000, max_keys)
    now = 0
    for n, (which, step) in enumerate(ops):
        now += step  # event-time order, as the aggregator releases events
        sig = KEYS[which]
        assert index.lookup(sig, now) == ref.lookup(sig, now)
        story = index.lookup(sig, now) or f"item{n}"
        index.add(sig, story, now)
        ref.add(sig, story, now)
        assert index.to_dict() == {k: f"{ms}:{s}" for k, (s, ms) in sorted(ref.entries.items())}
        rebuilt = nv.StoryIndex.from_dict(index.to_dict(), window_ms=1_000, max_keys=max_keys)
        assert rebuilt.to_dict() == index.to_dict()


def test_story_ids_expire_with_the_window_and_are_the_first_items_id() -> None:
    index = nv.StoryIndex(WINDOW)
    first, copy = nv.signatures(
        ["Tesla recalls 2 million vehicles", "TESLA RECALLS 2 MILLION VEHICLES - Reuters"]
    )
    assert index.observe(first, "a", 0) == ("a", False)
    assert index.observe(copy, "b", WINDOW - 1) == ("a", True)  # and refreshes the story
    assert index.observe(copy, "c", 2 * WINDOW - 2) == ("a", True)
    assert index.observe(copy, "d", 3 * WINDOW - 2) == ("d", False)  # a window of silence


def test_index_serialises_to_a_redis_shaped_dict() -> None:
    index = nv.StoryIndex(WINDOW)
    index.add(KEYS[0], "id:with:colons", 1_700_000_000_000)
    data = index.to_dict()
    assert len(data) == nv.BANDS
    assert set(data.values()) == {"1700000000000:id:with:colons"}
    as_bytes = {k.encode(): v.encode() for k, v in data.items()}
    assert nv.StoryIndex.from_dict(as_bytes, window_ms=WINDOW).to_dict() == data
    with pytest.raises(ValueError, match="bad story index entry"):
        nv.StoryIndex.from_dict({"0abc": "not-a-number:x"}, window_ms=WINDOW)
    with pytest.raises(ValueError, match="window_ms > 0"):
        nv.StoryIndex(0)


@given(st.text(max_size=90))
def test_wire_forms_round_trip_and_garbage_is_refused(junk: str) -> None:
    for sig in nv.signatures(["Tesla recalls 2 million vehicles", "Tesla", "", "!!!"]):
        assert nv.Signature.from_wire(sig.wire) == sig
    if junk not in {s.wire for s in KEYS}:
        try:
            parsed = nv.Signature.from_wire(junk)
        except ValueError:
            return
        assert len(parsed.slots()) in {0, nv.SLOTS}


def test_committed_test_data_and_vocab_match_their_generators() -> None:
    from tests.data.novelty import make_synthetic

    committed = (PAIRS / "synthetic_pairs.jsonl").read_text(encoding="utf-8")
    assert committed == make_synthetic.render(make_synthetic.generate())
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "novelty_vocab.py"), "--check"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
