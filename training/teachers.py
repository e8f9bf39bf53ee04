"""Teacher targets for self-training and distillation: what an ensemble of saved models says.

``TrainConfig.teachers`` names model dirs (usually the same recipe trained with other
seeds). Each teacher scores every text once, with its own ``max_length`` and text
normalisation; its logits are cached on disk (safetensors, keyed by the teacher's
``model_version`` and a hash of the texts), so three student seeds pay for the teachers
once. From the logits:

* ``confident``: the ensemble's calibrated probabilities (each teacher's logits divided by
  the temperature in its manifest, then averaged), used to pick pseudo-labels: a text of
  the *other* dataset (the 17k topic tweets have no sentiment label, the 9.5k sentiment
  tweets no topic label) joins a head's training set with the ensemble's arg-max as its
  label when the ensemble's top probability reaches ``pseudo_label_threshold``;
* ``soft``: the mean of the teachers' ``softmax(logits / distill_temperature)``, the
  distillation target (Hinton et al. 2015) for every example the student trains on.

The deployed model stays one MiniLM: teachers are only read here, at training time.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from models.runtime import encode
from training.data import Head
from training.inference import HeadLogits, predict_logits

__all__ = ["TeacherOutputs", "default_cache_dir", "teacher_outputs"]

log = logging.getLogger(__name__)
HEADS: tuple[Head, Head] = ("sentiment", "topic")


@dataclass(frozen=True)
class TeacherOutputs:
    """Per head, one row per input text: calibrated ensemble probabilities and soft targets."""

    confident: dict[Head, torch.Tensor]
    soft: dict[Head, torch.Tensor]


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "finpulse" / "teacher-logits"


def _cache_key(version: str, max_length: int, normalization: str, texts: Sequence[str]) -> str:
    digest = hashlib.sha256(f"{version}|{max_length}|{normalization}|".encode())
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()[:32]


def _teacher_logits(
    teacher_dir: Path,
    texts: Sequence[str],
    *,
    device: str,
    batch_size: int,
    cache_dir: Path | None,
    progress: bool,
) -> tuple[HeadLogits, dict[Head, float]]:
    from safetensors.torch import load_file, save_file

    from models.checkpoint import load_model, read_manifest

    manifest = read_manifest(teacher_dir)
    meta = manifest.metadata
    max_length = int(meta.get("max_length", 128))
    normalization = str(meta.get("text_normalization", "none"))
    temperatures: dict[Head, float] = {h: manifest.temperatures.get(h, 1.0) for h in HEADS}
    key = _cache_key(manifest.model_version, max_length, normalization, texts)
    cached = cache_dir / f"{key}.safetensors" if cache_dir is not None else None
    if cached is not None and cached.is_file():
        stored = load_file(str(cached))
        if all(stored[h].shape[0] == len(texts) for h in HEADS):
            log.info("teacher %s: cached logits %s", manifest.model_version, cached)
            return {h: stored[h] for h in HEADS}, temperatures
    loaded = load_model(teacher_dir, device=device)
    tokenizer = loaded.tokenizer
    pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
    logits = predict_logits(
        loaded.model,
        encode(tokenizer, texts, max_length, normalization),
        pad_id=pad_id,
        batch_size=batch_size,
        device=device,
        progress=progress,
        desc=f"teacher {teacher_dir.name}",
    )
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        save_file({h: logits[h].contiguous() for h in HEADS}, str(tmp))
        os.replace(tmp, cached)
    return logits, temperatures


def teacher_outputs(
    teacher_dirs: Sequence[str | Path],
    texts: Sequence[str],
    *,
    distill_temperature: float,
    device: str,
    batch_size: int = 128,
    cache_dir: Path | None = None,
    progress: bool = False,
) -> TeacherOutputs:
    """Ensemble probabilities of ``teacher_dirs`` on ``texts`` for both heads."""
    if not teacher_dirs:
        raise ValueError("no teachers given")
    confident = {h: torch.zeros(0) for h in HEADS}
    soft = {h: torch.zeros(0) for h in HEADS}
    for k, teacher in enumerate(teacher_dirs):
        logits, temps = _teacher_logits(
            Path(teacher),
            texts,
            device=device,
            batch_size=batch_size,
            cache_dir=cache_dir,
            progress=progress,
        )
        for h in HEADS:
            calibrated = torch.softmax(logits[h] / temps[h], dim=-1)
            tempered = torch.softmax(logits[h] / distill_temperature, dim=-1)
            confident[h] = calibrated if k == 0 else confident[h] + calibrated
            soft[h] = tempered if k == 0 else soft[h] + tempered
    n = len(teacher_dirs)
    return TeacherOutputs(
        confident={h: confident[h] / n for h in HEADS},
        soft={h: soft[h] / n for h in HEADS},
    )
