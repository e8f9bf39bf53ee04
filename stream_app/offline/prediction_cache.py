"""A persistent cache of model predictions, so a threshold sweep runs the model once.

Keyed by (model version, sha256 of the exact text the predictor sees): a new model version
never reads another version's predictions, and an edited text is a miss. Values are JSON
in a small SQLite file (stdlib ``sqlite3``; no pickle, so a cache file from elsewhere can
at worst hold wrong numbers, never code). ``CachingPredictor`` has the Predictor interface
and loads the real model lazily: a fully warm re-run never imports torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.errors import FinpulseError

if TYPE_CHECKING:
    from models.predictor import Prediction, Predictor

__all__ = ["CachingPredictor", "PredictionCache", "PredictionCacheError", "default_cache_dir"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    model_version TEXT NOT NULL,
    text_sha256 TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model_version, text_sha256)
) WITHOUT ROWID
"""
_CHUNK = 500  # host parameters per SELECT, well below SQLite's limit


class PredictionCacheError(FinpulseError):
    """The cache file cannot be opened or holds a value that is not a prediction."""


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "finpulse"


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class PredictionCache:
    """SQLite-backed map (model version, text) -> Prediction JSON."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # The backtest predicts in a worker thread; calls are serialised by _lock.
            self._db = sqlite3.connect(str(path), check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            self._db.commit()
        except (OSError, sqlite3.Error) as exc:
            raise PredictionCacheError(f"cannot open prediction cache {path}: {exc}") from exc

    @classmethod
    def in_dir(cls, cache_dir: Path | None = None) -> PredictionCache:
        return cls((cache_dir or default_cache_dir()) / "predictions.sqlite3")

    def get_many(self, model_version: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        with self._lock:
            return self._get_many(model_version, keys)

    def _get_many(self, model_version: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), _CHUNK):
            chunk = unique[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                "SELECT text_sha256, value FROM predictions "
                f"WHERE model_version = ? AND text_sha256 IN ({marks})",
                [model_version, *chunk],
            )
            for key, value in rows:
                found[key] = json.loads(value)
        return found

    def put_many(self, model_version: str, values: dict[str, dict[str, Any]]) -> None:
        rows = [(model_version, k, json.dumps(v, separators=(",", ":"))) for k, v in values.items()]
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO predictions VALUES (?, ?, ?)", rows)
            self._db.commit()

    def count(self, model_version: str | None = None) -> int:
        if model_version is None:
            row = self._db.execute("SELECT COUNT(*) FROM predictions").fetchone()
        else:
            row = self._db.execute(
                "SELECT COUNT(*) FROM predictions WHERE model_version = ?", (model_version,)
            ).fetchone()
        return int(row[0])

    def close(self) -> None:
        self._db.close()


def _to_prediction(value: dict[str, Any]) -> Prediction:
    from models.predictor import Prediction

    try:
        return Prediction(**value)
    except TypeError as exc:
        raise PredictionCacheError(f"cached value is not a prediction: {exc}") from exc


class CachingPredictor:
    """The Predictor interface over a cache; misses go to the real predictor in one call.

    ``model_version`` must be known up front (from the model manifest) so a warm run never
    needs the model; ``load`` builds the real predictor the first time a text misses.
    ``namespace`` (default: the model version) is the cache key's first part.
    """

    def __init__(
        self,
        cache: PredictionCache,
        model_version: str,
        load: Callable[[], Predictor],
        *,
        namespace: str | None = None,
    ) -> None:
        self.cache = cache
        self.model_version = model_version
        # Predictions of one model can differ by device/quantisation: keep those apart.
        self.namespace = namespace or model_version
        self._load = load
        self._inner: Predictor | None = None
        self.hits = 0
        self.misses = 0

    @property
    def inner(self) -> Predictor:
        if self._inner is None:
            self._inner = self._load()
            if self._inner.model_version != self.model_version:
                raise PredictionCacheError(
                    f"model reports version {self._inner.model_version!r}, "
                    f"manifest said {self.model_version!r}"
                )
        return self._inner

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        keys = [text_key(t) for t in texts]
        found = self.cache.get_many(self.namespace, keys)
        missing = [k for k in dict.fromkeys(keys) if k not in found]
        if missing:
            first_text = {k: t for k, t in zip(keys, texts, strict=True) if k not in found}
            fresh = self.inner.predict([first_text[k] for k in missing])
            computed = {k: p.to_dict() for k, p in zip(missing, fresh, strict=True)}
            self.cache.put_many(self.namespace, computed)
            found.update(computed)
        missed = set(missing)
        n_missed = sum(1 for k in keys if k in missed)
        self.misses += n_missed
        self.hits += len(keys) - n_missed
        return [_to_prediction(found[k]) for k in keys]
