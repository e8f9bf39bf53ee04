"""Headlines that are distinct stories, for tests whose items must not be near-duplicates.

The worker counts syndicated copies once (``stream_app.core.novelty``): "crash deepens 1",
"crash deepens 2", ... are one story told twelve times, so a test that needs twelve
negative *stories* uses these instead: each headline is built from its own seeded words.
"""

from __future__ import annotations

import random

__all__ = ["story"]

_CONSONANTS = "bcdfghjklmnpqrstvwxz"


def story(i: int, lead: str = "") -> str:
    """A headline of its own for item ``i``: ``lead`` then five invented words."""
    rng = random.Random(f"story-{i}")
    words = ["".join(rng.choices(_CONSONANTS, k=6)) for _ in range(5)]
    return " ".join([lead, *words]).strip()
