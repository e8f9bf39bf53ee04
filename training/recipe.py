"""A whole recipe in one call: teachers first when the config asks for them, then the model.

``TrainConfig.teacher_seeds`` (used by the ``full`` profile) means "distil an ensemble
of these seeds": each teacher is the same recipe without teacher options, trained into
``<output>-teachers/seed-<N>`` (kept, so a later run can reuse them with ``teachers``),
then the student trains against their ensemble. With ``teachers`` given, or no teacher
options at all, this is just ``train``. The wall time of every step is logged and saved
in the student's metadata (``recipe_seconds``; the student's own is ``wall_seconds``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from training.config import TrainConfig
from training.trainer import TrainResult, train

__all__ = ["run_recipe", "teacher_config"]

log = logging.getLogger(__name__)


def teacher_config(cfg: TrainConfig, seed: int) -> TrainConfig:
    """The teacher of seed ``seed``: the recipe itself, minus everything about teachers."""
    plain = {
        **cfg.model_dump(),
        "seed": seed,
        "epochs": cfg.teacher_epochs or cfg.epochs,
        "teachers": (),
        "teacher_seeds": (),
        "teacher_epochs": None,
        "distill_weight": 0.0,
        "pseudo_label_threshold": None,
        "pseudo_label_limit": None,
    }
    return TrainConfig.model_validate(plain)


def run_recipe(
    cfg: TrainConfig,
    output_dir: Path,
    *,
    data_dir: Path | None = None,
    progress: bool = True,
    teacher_cache: Path | None = None,
) -> TrainResult:
    """Train the teachers ``cfg`` asks for (if any), then the model; save it to ``output_dir``."""
    steps: dict[str, float] = {}
    if cfg.teacher_seeds and not cfg.teachers and cfg.uses_teachers:
        root = output_dir.with_name(f"{output_dir.name}-teachers")
        dirs: list[str] = []
        for seed in cfg.teacher_seeds:
            started = time.perf_counter()
            target = root / f"seed-{seed}"
            log.info(
                "recipe: teacher %d of %d -> %s", len(dirs) + 1, len(cfg.teacher_seeds), target
            )
            train(teacher_config(cfg, seed), target, data_dir=data_dir, progress=progress)
            steps[f"teacher seed {seed}"] = round(time.perf_counter() - started, 1)
            dirs.append(str(target))
        cfg = cfg.with_overrides(teachers=tuple(dirs))
    if steps:
        log.info("recipe: teachers done %s, now the student", steps)
    return train(
        cfg,
        output_dir,
        data_dir=data_dir,
        progress=progress,
        teacher_cache=teacher_cache,
        extra_metadata={"recipe_seconds": steps} if steps else None,
    )
