"""Self-contained, verifiable model directories.

A model dir holds ``model.safetensors`` (all weights), ``config.json`` (``MultiTaskConfig``),
the tokenizer files and ``manifest.json`` (version, labels, provenance, metrics and the
sha256 of every other file). Loading checks all of that before building anything, never
unpickles (no ``torch.load``) and never runs code from the directory, so a model dir
from elsewhere is data, not a program.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.base_model import base_short_name
from models.errors import ModelDirError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from models.architecture import MultiTaskConfig, MultiTaskModel

__all__ = [
    "CONFIG_FILE",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "WEIGHTS_FILE",
    "LoadedModel",
    "Manifest",
    "load_model",
    "read_manifest",
    "save_model",
]

FORMAT_VERSION: Final[int] = 1
WEIGHTS_FILE: Final[str] = "model.safetensors"
CONFIG_FILE: Final[str] = "config.json"
MANIFEST_FILE: Final[str] = "manifest.json"
_PICKLE_SUFFIXES: Final[tuple[str, ...]] = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
_CHUNK: Final[int] = 1 << 20


class Manifest(BaseModel):
    """What a model dir is, where it came from and how well it did; the dir's table of contents."""

    model_config = ConfigDict(extra="forbid")

    format_version: int
    model_version: str
    created_at: datetime
    base_model: str
    sentiment_labels: tuple[str, ...]
    topic_labels: tuple[str, ...]
    metadata: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    files: dict[str, str] = Field(description="relative path -> sha256 hex, manifest excluded")


@dataclass(frozen=True)
class LoadedModel:
    model: MultiTaskModel
    tokenizer: PreTrainedTokenizerBase
    manifest: Manifest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_json_atomic(path: Path, payload: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(payload)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _model_version(base_model: str, created_at: datetime, weights_sha: str) -> str:
    stamp = created_at.astimezone(UTC).strftime("%Y%m%d%H%M%S")
    return f"finpulse-{base_short_name(base_model)}-{stamp}-{weights_sha[:8]}"


def save_model(
    out_dir: str | os.PathLike[str],
    model: MultiTaskModel,
    tokenizer: PreTrainedTokenizerBase,
    *,
    metadata: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    base_model: str | None = None,
) -> Manifest:
    """Write a complete model dir (weights as float32 safetensors) and return its manifest.

    ``base_model`` names the base for the version string; it defaults to
    ``metadata["base_model"]``. The manifest is written last, so a dir without one is an
    interrupted save and ``load_model`` refuses it.
    """
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST_FILE).unlink(missing_ok=True)
    base = base_model or str(metadata.get("base_model") or "unknown")

    state = {
        k: (v.detach().float() if v.is_floating_point() else v.detach()).contiguous().cpu()
        for k, v in model.state_dict().items()
    }
    save_file(state, str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    _write_json_atomic(out / CONFIG_FILE, model.cfg.model_dump_json(indent=2))
    tokenizer.save_pretrained(str(out))

    files = {
        p.relative_to(out).as_posix(): _sha256(p)
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != MANIFEST_FILE and not p.name.startswith(".")
    }
    created_at = datetime.now(UTC).replace(microsecond=0)
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        model_version=_model_version(base, created_at, files[WEIGHTS_FILE]),
        created_at=created_at,
        base_model=base,
        sentiment_labels=model.cfg.sentiment_labels,
        topic_labels=model.cfg.topic_labels,
        metadata=metadata,
        metrics=metrics,
        files=files,
    )
    _write_json_atomic(out / MANIFEST_FILE, manifest.model_dump_json(indent=2))
    return manifest


def read_manifest(model_dir: str | os.PathLike[str]) -> Manifest:
    """Parse and version-check ``manifest.json`` alone (cheap: no weights, no torch)."""
    root = Path(model_dir)
    if not root.exists():
        raise ModelDirError(f"model dir {root} does not exist")
    if not root.is_dir():
        raise ModelDirError(f"model dir {root} is not a directory")
    path = root / MANIFEST_FILE
    if not path.is_file():
        pickles = sorted(p.name for p in root.iterdir() if p.suffix in _PICKLE_SUFFIXES)
        if pickles and not (root / WEIGHTS_FILE).is_file():
            raise ModelDirError(
                f"model dir {root} holds only pickle weights ({', '.join(pickles)}); finpulse "
                f"loads safetensors only and never unpickles. Re-save it with save_model"
            )
        raise ModelDirError(
            f"model dir {root} has no {MANIFEST_FILE}: not a finpulse model dir, or its save "
            "was interrupted"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelDirError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ModelDirError(f"{path} must hold a JSON object")
    version = raw.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelDirError(
            f"{path} has format_version {version!r}; this finpulse reads only "
            f"format_version {FORMAT_VERSION}"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise ModelDirError(f"{path} is not a valid manifest: {exc}") from None


def _verify_files(root: Path, manifest: Manifest) -> None:
    for required in (WEIGHTS_FILE, CONFIG_FILE):
        if required not in manifest.files:
            raise ModelDirError(f"{root / MANIFEST_FILE} does not list required file {required}")
    for rel, expected in manifest.files.items():
        path = (root / rel).resolve()
        if not path.is_relative_to(root.resolve()):
            raise ModelDirError(f"manifest lists {rel!r}, which points outside {root}")
        if not path.is_file():
            raise ModelDirError(f"model dir {root} is missing {rel} (listed in the manifest)")
        actual = _sha256(path)
        if actual != expected:
            raise ModelDirError(
                f"checksum mismatch for {root / rel}: manifest says sha256 {expected[:12]}…, "
                f"file has {actual[:12]}…; the file was modified or corrupted"
            )


def _read_config(root: Path, manifest: Manifest) -> MultiTaskConfig:
    from models.architecture import MultiTaskConfig

    path = root / CONFIG_FILE
    try:
        cfg = MultiTaskConfig.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise ModelDirError(f"{path} is not a valid MultiTaskConfig: {exc}") from None
    for name, in_manifest, in_config in (
        ("sentiment", manifest.sentiment_labels, cfg.sentiment_labels),
        ("topic", manifest.topic_labels, cfg.topic_labels),
    ):
        if tuple(in_manifest) != tuple(in_config):
            raise ModelDirError(
                f"{name} labels differ between {MANIFEST_FILE} {list(in_manifest)} and "
                f"{CONFIG_FILE} {list(in_config)}"
            )
    return cfg


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelDirError(f"{path} is not a readable safetensors file: {exc}") from None


def _check_weights(
    root: Path, cfg: MultiTaskConfig, model: MultiTaskModel, state: dict[str, torch.Tensor]
) -> None:
    heads = (("sentiment_head", cfg.sentiment_labels), ("topic_head", cfg.topic_labels))
    for head, labels in heads:
        weight = state.get(f"{head}.weight")
        if weight is not None and weight.shape[0] != len(labels):
            raise ModelDirError(
                f"{root / WEIGHTS_FILE}: {head} has {weight.shape[0]} outputs but the config "
                f"names {len(labels)} labels"
            )
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ModelDirError(
            f"{root / WEIGHTS_FILE} does not match {CONFIG_FILE}: missing keys {missing[:5]}"
            f"{'…' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}"
            f"{'…' if len(unexpected) > 5 else ''}"
        )
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise ModelDirError(
                f"{root / WEIGHTS_FILE}: tensor {key} has shape {tuple(state[key].shape)}, "
                f"config implies {tuple(tensor.shape)}"
            )


def load_model(model_dir: str | os.PathLike[str], device: str = "cpu") -> LoadedModel:
    """Verify, then load a model dir in eval mode on ``device``.

    Raises ``ModelDirError`` naming the exact problem: missing dir or file, checksum
    mismatch, unknown format, labels or weights that disagree with the config, pickle-only
    weights, or a tokenizer that does not fit the embeddings.
    """
    from transformers import AutoTokenizer

    from models.architecture import MultiTaskModel

    root = Path(model_dir)
    manifest = read_manifest(root)
    _verify_files(root, manifest)
    cfg = _read_config(root, manifest)
    state = _read_weights(root / WEIGHTS_FILE)
    try:
        model = MultiTaskModel(cfg)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelDirError(f"{root / CONFIG_FILE}: cannot build the encoder: {exc}") from None
    _check_weights(root, cfg, model, state)
    model.load_state_dict(state, strict=True)
    model.eval().to(device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(root), local_files_only=True, trust_remote_code=False
        )
    except (OSError, ValueError) as exc:
        raise ModelDirError(f"tokenizer files in {root} cannot be loaded: {exc}") from None
    vocab_size = int(cfg.encoder.get("vocab_size", 0))
    if len(tokenizer) > vocab_size:
        raise ModelDirError(
            f"tokenizer in {root} has {len(tokenizer)} tokens but the encoder embeds only "
            f"{vocab_size}; tokenizer and weights do not belong together"
        )
    return LoadedModel(model=model, tokenizer=tokenizer, manifest=manifest)
