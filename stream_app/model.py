"""How the stream app gets its model: the worker, the backtest and ``explain`` load it alike.

One function maps ``Settings`` (model dir, device, quantisation, batch size) onto
``models.predictor.load_predictor``, so an offline backtest scores with exactly the
predictor a live worker would use. It imports no Faust: offline tools call it too.
"""

from __future__ import annotations

from typing import Any

from stream_app.config import Settings

__all__ = ["MODEL_HINT", "load_worker_predictor"]

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
            quantize="auto" if settings.quantize == "auto" else settings.quantize == "on",
            batch_size=settings.batch_size,
        )
    except ModelDirError as exc:
        raise ModelDirError(f"{exc}; {MODEL_HINT}") from exc
