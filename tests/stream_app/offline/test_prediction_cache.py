"""Prediction cache: hits skip the model, versions never mix, values round-trip exactly."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from models.predictor import Prediction
from stream_app.offline.prediction_cache import (
    CachingPredictor,
    PredictionCache,
    PredictionCacheError,
)


class CountingPredictor:
    """A deterministic stand-in model that records every text it is asked about."""

    def __init__(self, version: str) -> None:
        self.model_version = version
        self.seen: list[str] = []

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        self.seen.extend(texts)
        return [
            Prediction(
                sentiment="negative" if "down" in t else "neutral",
                sentiment_probs={"negative": len(t) / 1000, "neutral": 0.5, "positive": 0.1},
                topic="Markets",
                topic_prob=0.25,
                model_version=self.model_version,
            )
            for t in texts
        ]


def _caching(cache: PredictionCache, inner: CountingPredictor) -> CachingPredictor:
    loads: list[int] = []

    def load() -> Any:
        loads.append(1)
        return inner

    return CachingPredictor(cache, inner.model_version, load)


def test_second_run_is_all_hits_and_identical(tmp_path: Path) -> None:
    texts = ["a down day", "flat", "a down day", "rally"]
    inner = CountingPredictor("v1")
    first = _caching(PredictionCache.in_dir(tmp_path), inner).predict(texts)
    assert inner.seen == ["a down day", "flat", "rally"]  # duplicates predicted once

    inner2 = CountingPredictor("v1")
    warm = _caching(PredictionCache.in_dir(tmp_path), inner2)  # a new process, same file
    again = warm.predict(texts)
    assert inner2.seen == []
    assert (warm.hits, warm.misses) == (4, 0)
    assert again == first
    assert again == inner.predict(texts)


def test_model_versions_are_separate(tmp_path: Path) -> None:
    cache = PredictionCache.in_dir(tmp_path)
    _caching(cache, CountingPredictor("v1")).predict(["x", "y"])
    v2 = CountingPredictor("v2")
    out = _caching(cache, v2).predict(["x", "z"])
    assert v2.seen == ["x", "z"]
    assert {p.model_version for p in out} == {"v2"}
    assert cache.count("v1") == 2
    assert cache.count("v2") == 2


def test_partial_hits_only_predict_misses(tmp_path: Path) -> None:
    cache = PredictionCache.in_dir(tmp_path)
    inner = CountingPredictor("v1")
    cp = _caching(cache, inner)
    cp.predict(["a", "b"])
    inner.seen.clear()
    cp.predict(["b", "c", "a", "d"])
    assert inner.seen == ["c", "d"]
    assert (cp.hits, cp.misses) == (2, 4)  # first call: 2 misses; second: 2 hits, 2 misses


def test_model_is_not_loaded_when_all_hit(tmp_path: Path) -> None:
    cache = PredictionCache.in_dir(tmp_path)
    _caching(cache, CountingPredictor("v1")).predict(["a"])

    def refuse() -> Any:
        raise AssertionError("model loaded although every text was cached")

    assert CachingPredictor(cache, "v1", refuse).predict(["a"])[0].topic == "Markets"


def test_version_mismatch_between_manifest_and_model(tmp_path: Path) -> None:
    cp = CachingPredictor(PredictionCache.in_dir(tmp_path), "v1", lambda: CountingPredictor("v9"))  # type: ignore[arg-type,return-value]
    with pytest.raises(PredictionCacheError, match="v9"):
        cp.predict(["a"])


def test_corrupt_value_is_a_clear_error(tmp_path: Path) -> None:
    cache = PredictionCache.in_dir(tmp_path)
    from stream_app.offline.prediction_cache import text_key

    cache.put_many("v1", {text_key("a"): {"unexpected": 1}})
    with pytest.raises(PredictionCacheError, match="not a prediction"):
        CachingPredictor(cache, "v1", lambda: CountingPredictor("v1")).predict(["a"])  # type: ignore[arg-type,return-value]


def test_unopenable_cache_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(PredictionCacheError):
        PredictionCache(blocker / "sub" / "p.sqlite3")


class DistinctPredictor:
    """Every text gets its own output (probabilities from a hash of the text), so a result
    handed to the wrong position cannot go unnoticed."""

    model_version = "v1"

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        import zlib

        out = []
        for t in texts:
            neg = (zlib.crc32(t.encode()) % 997) / 1000
            out.append(
                Prediction(
                    sentiment="negative" if neg > 0.5 else "neutral",
                    sentiment_probs={"negative": neg, "neutral": 1 - neg, "positive": 0.0},
                    topic=f"topic-{len(t)}",
                    topic_prob=neg / 2,
                    model_version=self.model_version,
                )
            )
        return out


def test_mixed_cached_and_new_batch_keeps_input_order(tmp_path: Path) -> None:
    """Cached and fresh predictions interleaved (and repeated) come back in input order,
    equal to asking the model one text at a time."""
    cache = PredictionCache.in_dir(tmp_path)
    cp = CachingPredictor(cache, "v1", DistinctPredictor)  # type: ignore[arg-type]
    cp.predict(["warm b", "warm d"])
    texts = ["new a", "warm b", "new c", "warm d", "new a", "new e", "warm b"]
    got = cp.predict(texts)
    one_by_one = [DistinctPredictor().predict([t])[0] for t in texts]
    assert len({p.sentiment_probs["negative"] for p in one_by_one}) == 5  # all distinct
    assert got == one_by_one
    assert (cp.hits, cp.misses) == (3, 6)  # first call 2 misses; then 3 hits, 4 misses
