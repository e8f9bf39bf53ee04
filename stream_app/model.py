"""How the stream app gets its model: the worker, the backtest and ``explain`` load it alike.

``load_linker`` does the same for the company linker (issue 10): the packaged alias table
plus ``Settings.aliases_file``, built once per process, so a backtest links exactly as
the worker does. A bad user alias file raises ``AliasFileError`` (file:line) at start-up.

One function maps ``Settings`` (model dir, device, batch size) onto
``models.predictor.load_predictor``, so an offline backtest scores with exactly the
predictor a live worker would use. It imports no Faust: offline tools call it too.
"""

from __future__ import annotations

from typing import Any

from stream_app.config import Settings

__all__ = ["MODEL_HINT", "load_linker", "load_worker_predictor", "make_scorer"]

MODEL_HINT = "train one: finpulse train --profile quick --output artifacts/model"


def load_worker_predictor(settings: Settings) -> Any:
    """The model of ``Settings.model_dir``, or a ``ModelDirError`` that says how to get one."""
    from models.errors import ModelDirError
    from models.predictor import load_predictor

    model_dir = settings.model_dir
    if not model_dir.is_dir():
        raise ModelDirError(f"no model at {model_dir} (FINPULSE_MODEL_DIR); {MODEL_HINT}")
    try:
        return load_predictor(
            model_dir,
            device=settings.device,
            batch_size=settings.batch_size,
        )
    except ModelDirError as exc:
        raise ModelDirError(f"{exc}; {MODEL_HINT}") from exc


def load_linker(settings: Settings) -> Any:
    """``CompanyLinker`` over the packaged aliases plus ``Settings.aliases_file``."""
    from finpulse.resources import alias_files
    from stream_app.core.linking import CompanyLinker

    table, overrides, stoplist = alias_files()
    return CompanyLinker.from_files(table, overrides, stoplist, settings.aliases_file)


def make_scorer(settings: Settings, predictor: Any, linker: Any | None = None) -> Any:
    """The ``Scorer`` the worker and the backtest use: same linker, same entity limits."""
    from stream_app.core.scoring import Scorer

    return Scorer(
        predictor,
        linker=linker if linker is not None else load_linker(settings),
        max_links=settings.max_tickers,
        min_relevance=settings.min_relevance,
    )
