"""Offline augmentation keeps what decides the label and changes what should not matter."""

from __future__ import annotations

import random
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from training.augment import augment_text, cashtag_pool

POOL = ["$AAPL", "$KO", "$TSLA", "$XOM"]


def test_cashtags_are_swapped_for_cashtags_of_the_pool() -> None:
    rng = random.Random(3)
    outs = {
        augment_text("$TSLA falls after recall of 2 million cars", POOL, rng) for _ in range(30)
    }
    outs.discard(None)
    assert outs
    for out in outs:
        assert out is not None
        tags = re.findall(r"\$[A-Z]+", out)
        assert tags
        assert all(t in POOL for t in tags)
        assert "falls after recall of" in out


def test_urls_and_leading_ticker_tags_are_removed() -> None:
    text = "$BYND - JPMorgan reels in expectations on Beyond Meat https://t.co/bd0xbFGjkT"
    out = augment_text(text, ["$BYND"], random.Random(0))
    assert out == "JPMorgan reels in expectations on Beyond Meat"


def test_numbers_are_scaled_within_bounds_in_their_own_format() -> None:
    seen = set()
    for seed in range(40):
        out = augment_text("Middlefield Banc declares $0.15 dividend", [], random.Random(seed))
        if out is None:
            continue
        value = re.search(r"\$(\d+\.\d\d) dividend", out)
        assert value, out
        assert 0.07 <= float(value.group(1)) <= 0.30
        seen.add(out)
    assert len(seen) > 3


@settings(max_examples=200, deadline=None)
@given(text=st.text(min_size=1, max_size=120), seed=st.integers(0, 10_000))
def test_words_survive_and_output_is_new_and_non_empty(text: str, seed: int) -> None:
    sentence = f"Revenue did not grow and margins never recovered {text}"
    out = augment_text(sentence, POOL, random.Random(seed))
    if out is None:
        return
    assert out != sentence
    assert out.strip()
    assert "Revenue did not grow and margins never recovered" in out


def test_same_seed_same_copy() -> None:
    text = "$AAPL beats estimates by 12% https://t.co/x"
    a = [augment_text(text, POOL, random.Random(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]


def test_pool_is_sorted_and_distinct() -> None:
    assert cashtag_pool(["$tsla up", "$AAPL and $TSLA", "no tags"]) == ["$AAPL", "$TSLA"]
