"""Self-contained, verifiable model directories.

A model dir holds ``model.safetensors`` (all weights), ``config.json`` (``MultiTaskConfig``),
the tokenizer files, ``reference.json`` (the prediction distribution drift is measured
against) and ``manifest.json`` (version, labels, calibrated temperatures, provenance,
metrics and the sha256 of every other file). A model dir from elsewhere is data, not a
program: loading never unpickles (no ``torch.load``), never runs code from the directory,
and checks, in this order, before anything is allocated:

1. the manifest parses and every listed file matches its checksum;
2. no file that the tokenizer loader would read is present without being listed (an
   unlisted ``special_tokens_map.json`` would change predictions under the same
   ``model_version``); the tokenizer is then read from a private copy of the listed files;
3. the config is valid and its labels match the manifest's;
4. the tensor names and shapes in the safetensors *header* match what the config implies,
   worked out on the ``meta`` device (no memory), so an edited ``config.json`` with an
   updated checksum cannot make the loader allocate 47 GB;
5. only then the network is built and the weights read.

Format 2 adds ``temperatures`` (per head, applied by the predictor); format 1 dirs load
with temperature 1.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import struct
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from models.base_model import base_short_name
from models.errors import ModelDirError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from models.architecture import MultiTaskConfig, MultiTaskModel
    from models.reference import ReferenceDistribution

__all__ = [
    "CONFIG_FILE",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "READABLE_FORMATS",
    "WEIGHTS_FILE",
    "LoadedModel",
    "Manifest",
    "check_writable",
    "load_model",
    "read_manifest",
    "save_model",
]

FORMAT_VERSION: Final[int] = 2
READABLE_FORMATS: Final[tuple[int, ...]] = (1, 2)
WEIGHTS_FILE: Final[str] = "model.safetensors"
CONFIG_FILE: Final[str] = "config.json"
MANIFEST_FILE: Final[str] = "manifest.json"
_PICKLE_SUFFIXES: Final[tuple[str, ...]] = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
_CHUNK: Final[int] = 1 << 20
_MAX_HEADER: Final[int] = 100 << 20  # a safetensors header larger than this is not ours
# Files Hugging Face tokenizers (and AutoConfig) may read from a model dir, by exact name
# or pattern: present but unlisted, they are refused.
_LOADER_FILES: Final[re.Pattern[str]] = re.compile(
    r"(tokenizer(_config)?\.json|special_tokens_map\.json|added_tokens\.json|vocab\.(txt|json)"
    r"|merges\.txt|.*\.model|chat_template\.(jinja|json)|.*\.tiktoken|tokenizer\..*"
    r"|preprocessor_config\.json|generation_config\.json|.*\.safetensors(\.index\.json)?)"
)


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
    temperatures: dict[str, float] = Field(
        default_factory=dict, description="per head: logits are divided by this (default 1)"
    )
    files: dict[str, str] = Field(description="relative path -> sha256 hex, manifest excluded")

    @field_validator("temperatures")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        for head, t in value.items():
            if not (math.isfinite(t) and 0.01 <= t <= 100):
                raise ValueError(f"temperature of {head!r} must be in [0.01, 100], got {t}")
        return value


@dataclass(frozen=True)
class LoadedModel:
    model: MultiTaskModel
    tokenizer: PreTrainedTokenizerBase
    manifest: Manifest
    reference: ReferenceDistribution | None = None  # reference.json, when the dir has one


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


def check_writable(out_dir: str | os.PathLike[str]) -> None:
    """Create ``out_dir`` if needed and prove a file can be written there (before training)."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-check.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ModelDirError(f"cannot write the model to {out}: {exc.strerror or exc}") from None


def save_model(
    out_dir: str | os.PathLike[str],
    model: MultiTaskModel,
    tokenizer: PreTrainedTokenizerBase,
    *,
    metadata: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    base_model: str | None = None,
    temperatures: dict[str, float] | None = None,
    extra_files: dict[str, str] | None = None,
) -> Manifest:
    """Write a complete model dir (weights as float32 safetensors) and return its manifest.

    ``base_model`` names the base for the version string; it defaults to
    ``metadata["base_model"]``. ``extra_files`` (name -> text, e.g. the reference
    distribution) are written and listed like the others. The manifest is written last,
    so a dir without one is an interrupted save and ``load_model`` refuses it.
    """
    from safetensors.torch import save_file

    out = Path(out_dir)
    check_writable(out)
    (out / MANIFEST_FILE).unlink(missing_ok=True)
    base = base_model or str(metadata.get("base_model") or "unknown")

    state = {
        k: (v.detach().float() if v.is_floating_point() else v.detach()).contiguous().cpu()
        for k, v in model.state_dict().items()
    }
    save_file(state, str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    _write_json_atomic(out / CONFIG_FILE, model.cfg.model_dump_json(indent=2))
    for name, text in (extra_files or {}).items():
        _write_json_atomic(out / name, text)
    tokenizer.save_pretrained(str(out))

    files = {
        p.relative_to(out).as_posix(): _sha256(p)
        for p in sorted(out.iterdir())
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
        temperatures=dict(temperatures or {}),
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
    if version not in READABLE_FORMATS:
        raise ModelDirError(
            f"{path} has format_version {version!r}; this finpulse reads format_version "
            f"{' and '.join(map(str, READABLE_FORMATS))}"
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


def _refuse_unlisted(root: Path, manifest: Manifest) -> None:
    """Step 2: a file the tokenizer or config loader would read must be in the manifest."""
    for path in sorted(root.iterdir()):
        name = path.name
        if name == MANIFEST_FILE or name in manifest.files or name.startswith("."):
            continue
        if path.is_file() and _LOADER_FILES.fullmatch(name):
            raise ModelDirError(
                f"{path} is not listed in {MANIFEST_FILE} but the loader would read it "
                "(it could change predictions under the same model_version); remove it, "
                "or re-save the model dir"
            )


def _header_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from the safetensors header alone (8-byte length + JSON)."""
    try:
        with path.open("rb") as fh:
            prefix = fh.read(8)
            if len(prefix) != 8:
                raise ValueError("shorter than a safetensors header")
            (length,) = struct.unpack("<Q", prefix)
            size = path.stat().st_size
            if length > min(_MAX_HEADER, size - 8):
                raise ValueError(f"header length {length} does not fit a {size}-byte file")
            header = json.loads(fh.read(length))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
        shapes: dict[str, tuple[int, ...]] = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            shape = info["shape"] if isinstance(info, dict) else None
            if not isinstance(shape, list) or not all(isinstance(d, int) for d in shape):
                raise ValueError(f"tensor {name!r} has no valid shape")
            shapes[name] = tuple(shape)
    except (OSError, ValueError, KeyError, UnicodeDecodeError, struct.error) as exc:
        raise ModelDirError(f"{path} is not a readable safetensors file: {exc}") from None
    return shapes


def _check_shapes(root: Path, cfg: MultiTaskConfig, stored: dict[str, tuple[int, ...]]) -> None:
    """Step 4: the config's implied tensors, built on the meta device, against the header."""
    import torch

    from models.architecture import MultiTaskModel

    heads = (("sentiment_head", cfg.sentiment_labels), ("topic_head", cfg.topic_labels))
    for head, labels in heads:
        shape = stored.get(f"{head}.weight")
        if shape is not None and shape[0] != len(labels):
            raise ModelDirError(
                f"{root / WEIGHTS_FILE}: {head} has {shape[0]} outputs but the config "
                f"names {len(labels)} labels"
            )
    layers = cfg.encoder.get("num_hidden_layers", 0)
    if not isinstance(layers, int) or not 0 <= layers <= len(stored):
        raise ModelDirError(
            f"{root / CONFIG_FILE}: num_hidden_layers {layers!r} cannot match the "
            f"{len(stored)} tensors in {WEIGHTS_FILE}"
        )
    try:
        with torch.device("meta"):
            skeleton = MultiTaskModel(cfg)
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise ModelDirError(f"{root / CONFIG_FILE}: cannot build the encoder: {exc}") from None
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    if missing or unexpected:
        raise ModelDirError(
            f"{root / WEIGHTS_FILE} does not match {CONFIG_FILE}: missing keys {missing[:5]}"
            f"{'…' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}"
            f"{'…' if len(unexpected) > 5 else ''}"
        )
    for key, shape in expected.items():
        if stored[key] != shape:
            raise ModelDirError(
                f"{root / WEIGHTS_FILE}: tensor {key} has shape {stored[key]}, "
                f"config implies {shape}"
            )


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelDirError(f"{path} is not a readable safetensors file: {exc}") from None


def _load_tokenizer(root: Path, manifest: Manifest) -> PreTrainedTokenizerBase:
    """The tokenizer from a private copy of the listed files, so nothing else can be read."""
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory(prefix="finpulse-tokenizer-") as private:
        for rel in manifest.files:
            if rel not in (WEIGHTS_FILE, CONFIG_FILE) and "/" not in rel:
                shutil.copyfile(root / rel, Path(private) / rel)
        try:
            return AutoTokenizer.from_pretrained(
                private, local_files_only=True, trust_remote_code=False
            )
        except (OSError, ValueError) as exc:
            raise ModelDirError(f"tokenizer files in {root} cannot be loaded: {exc}") from None


def load_model(model_dir: str | os.PathLike[str], device: str = "cpu") -> LoadedModel:
    """Verify (see the module docstring), then load a model dir in eval mode on ``device``.

    Raises ``ModelDirError`` naming the exact problem: missing dir or file, checksum
    mismatch, unlisted loader file, unknown format, labels or weights that disagree with
    the config, pickle-only weights, or a tokenizer that does not fit the embeddings.
    """
    from models.architecture import MultiTaskModel

    root = Path(model_dir)
    manifest = read_manifest(root)
    _verify_files(root, manifest)
    _refuse_unlisted(root, manifest)
    cfg = _read_config(root, manifest)
    _check_shapes(root, cfg, _header_shapes(root / WEIGHTS_FILE))
    tokenizer = _load_tokenizer(root, manifest)
    vocab_size = int(cfg.encoder.get("vocab_size", 0))
    if len(tokenizer) > vocab_size:
        raise ModelDirError(
            f"tokenizer in {root} has {len(tokenizer)} tokens but the encoder embeds only "
            f"{vocab_size}; tokenizer and weights do not belong together"
        )
    reference = _read_reference(root, manifest)
    state = _read_weights(root / WEIGHTS_FILE)
    model = MultiTaskModel(cfg)
    model.load_state_dict(state, strict=True)
    model.eval().to(device)
    return LoadedModel(model=model, tokenizer=tokenizer, manifest=manifest, reference=reference)


def _read_reference(root: Path, manifest: Manifest) -> ReferenceDistribution | None:
    """The listed (so checksummed) reference distribution; None for dirs without one."""
    from models.reference import REFERENCE_FILE, ReferenceDistribution

    if REFERENCE_FILE not in manifest.files:
        return None
    path = root / REFERENCE_FILE
    try:
        return ReferenceDistribution.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise ModelDirError(f"{path} is not a valid reference distribution: {exc}") from None
