"""Where finpulse's packaged data lives: the one module that knows the paths.

Vendored datasets, the sample feed with its ground truth and the Redis Lua scripts ship
inside the wheel as package data and are located through ``importlib.resources``, so an
installed finpulse works from any directory, exactly like a checkout. Callers ask for a
resource by meaning (``dataset_dir()``, ``sample_feed()``); nobody else builds these paths.

finpulse is installed as plain files (setuptools wheels are never zipped), so the
resources are real files on disk and are returned as ``Path`` objects that ``open``,
``csv`` and pyarrow can read directly.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = [
    "alias_files",
    "aliases_dir",
    "dashboard_asset",
    "dataset_dir",
    "lua_script",
    "sample_feed",
    "sample_prices",
    "sample_truth",
]

_DATA = "finpulse"  # package whose data/ folder holds the vendored files
_LUA = "stream_app.store"  # package whose lua/ folder holds the Redis scripts
_DASHBOARD = "stream_app.service.dashboard"  # package whose static/ folder holds the page


def _path(package: str, *parts: str) -> Path:
    resource = files(package).joinpath(*parts)
    path = Path(str(resource))
    if not path.exists():
        raise FileNotFoundError(f"packaged resource missing: {'/'.join(parts)} in {package}")
    return path


def dataset_dir() -> Path:
    """The vendored Twitter Financial News CSVs (sentiment/topic train/valid; MIT)."""
    return _path(_DATA, "data", "twitter-financial-news")


def aliases_dir() -> Path:
    """The company alias table of the linker (aliases.csv, overrides.csv, stoplist.csv)."""
    return _path(_DATA, "data", "aliases")


def sample_feed() -> Path:
    """The shipped sample feed (JSON Lines) that ``finpulse demo`` and the docs use."""
    return _path(_DATA, "data", "samples", "feed.jsonl")


def sample_truth() -> Path:
    """Ground truth of ``sample_feed()`` (injected events)."""
    return _path(_DATA, "data", "samples", "truth.json")


def alias_files() -> tuple[Path, Path, Path]:
    """The three files of ``aliases_dir()`` the linker reads: generated ``aliases.csv``,
    curated ``overrides.csv`` and ``stoplist.csv`` (``stream_app.model.load_linker``)."""
    return (
        _path(_DATA, "data", "aliases", "aliases.csv"),
        _path(_DATA, "data", "aliases", "overrides.csv"),
        _path(_DATA, "data", "aliases", "stoplist.csv"),
    )


def sample_prices() -> Path:
    """SYNTHETIC minute prices for the sample's tickers (scripts/sample_prices.py): made up."""
    return _path(_DATA, "data", "samples", "prices-SYNTHETIC.csv.gz")


def lua_script(name: str) -> str:
    """The source of one of the window store's Redis scripts (``window_read.lua``, ...)."""
    return _path(_LUA, "lua", name).read_text(encoding="utf-8")


def dashboard_asset(name: str) -> bytes:
    """A file of the desk dashboard's page (``index.html``, ``vendor/uplot/...``) as bytes."""
    return _path(_DASHBOARD, "static", *name.split("/")).read_bytes()
