"""save_model / load_model: faithful round trip, and a precise refusal for every bad dir."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from models.checkpoint import (
    CONFIG_FILE,
    MANIFEST_FILE,
    WEIGHTS_FILE,
    load_model,
    read_manifest,
    save_model,
)
from models.errors import ModelDirError
from tests.support.oracles import update_metrics
from tests.support.tiny_model import make_tiny_model


@pytest.fixture
def model_copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the session's tiny model dir that a test may damage."""
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))


def _rehash(model_dir: Path) -> None:
    """Make the manifest's checksums match the files again, so a later check is reached."""
    manifest = json.loads((model_dir / MANIFEST_FILE).read_text())
    for rel in manifest["files"]:
        manifest["files"][rel] = hashlib.sha256((model_dir / rel).read_bytes()).hexdigest()
    (model_dir / MANIFEST_FILE).write_text(json.dumps(manifest))


def _edit_json(path: Path, edit: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_round_trip_gives_identical_logits(tmp_path: Path) -> None:
    model, tokenizer = make_tiny_model(seed=7)
    save_model(tmp_path / "m", model, tokenizer, metadata={"base_model": "tiny", "seed": 7})
    loaded = load_model(tmp_path / "m")
    texts = ["Tesla shares slump 8% after recall", "ECB holds rates", "🚀 $GME to the moon"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    assert loaded.tokenizer(texts, padding=True)["input_ids"] == batch["input_ids"].tolist()
    with torch.inference_mode():
        before = model(batch["input_ids"], batch["attention_mask"])
        after = loaded.model(batch["input_ids"], batch["attention_mask"])
    assert torch.equal(before.sentiment_logits, after.sentiment_logits)
    assert torch.equal(before.topic_logits, after.topic_logits)
    assert not loaded.model.training


def test_manifest_describes_the_dir(tmp_path: Path) -> None:
    model, tokenizer = make_tiny_model()
    metadata = {"base_model": "sentence-transformers/all-MiniLM-L6-v2", "seed": 0}
    manifest = save_model(tmp_path / "m", model, tokenizer, metadata=metadata, metrics={"f1": 0.5})
    weights_sha = hashlib.sha256((tmp_path / "m" / WEIGHTS_FILE).read_bytes()).hexdigest()
    assert re.fullmatch(r"finpulse-all-minilm-l6-v2-\d{14}-[0-9a-f]{8}", manifest.model_version)
    assert manifest.model_version.endswith(weights_sha[:8])
    assert manifest.model_version.split("-")[-2] == manifest.created_at.strftime("%Y%m%d%H%M%S")
    assert {WEIGHTS_FILE, CONFIG_FILE, "tokenizer.json"} <= set(manifest.files)
    assert MANIFEST_FILE not in manifest.files
    assert manifest.metadata == metadata
    assert read_manifest(tmp_path / "m") == manifest
    assert not list((tmp_path / "m").glob("*.bin"))


def test_update_metrics_keeps_the_dir_loadable(model_copy: Path) -> None:
    version = read_manifest(model_copy).model_version
    update_metrics(model_copy, {"sentiment_macro_f1": 0.81})
    loaded = load_model(model_copy)
    assert loaded.manifest.metrics == {"sentiment_macro_f1": 0.81}
    assert loaded.manifest.model_version == version


def test_load_never_unpickles(model_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.load must not be called")

    monkeypatch.setattr(torch, "load", forbidden)
    assert load_model(model_copy).model is not None


def test_refuses_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(ModelDirError, match="does not exist"):
        load_model(tmp_path / "nope")


def test_refuses_a_file_as_dir(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ModelDirError, match="not a directory"):
        load_model(tmp_path / "f")


def test_refuses_missing_manifest(model_copy: Path) -> None:
    (model_copy / MANIFEST_FILE).unlink()
    with pytest.raises(ModelDirError, match=r"no manifest\.json"):
        load_model(model_copy)


@pytest.mark.parametrize("name", [WEIGHTS_FILE, CONFIG_FILE, "tokenizer.json"])
def test_refuses_missing_file(model_copy: Path, name: str) -> None:
    (model_copy / name).unlink()
    with pytest.raises(ModelDirError, match=f"missing {re.escape(name)}"):
        load_model(model_copy)


# Every file a saved model dir holds (tokenizer files as the packaged MiniLM's tokenizer
# saves them); the tamper test below runs once per file.
LISTED = [
    "config.json",
    "model.safetensors",
    "reference.json",
    "tokenizer.json",
    "tokenizer_config.json",
]


def test_every_file_is_listed(model_copy: Path) -> None:
    on_disk = {p.name for p in model_copy.iterdir()} - {MANIFEST_FILE}
    assert set(read_manifest(model_copy).files) == on_disk == set(LISTED)


@pytest.mark.parametrize("name", LISTED)
def test_refuses_a_change_to_any_listed_file(model_copy: Path, name: str) -> None:
    target = model_copy / name
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, in the middle
    target.write_bytes(bytes(data))
    with pytest.raises(ModelDirError, match=f"checksum mismatch for .*{re.escape(name)}"):
        load_model(model_copy)


@pytest.mark.parametrize(
    "name", ["special_tokens_map.json", "added_tokens.json", "vocab.txt", "tokenizer.model"]
)
def test_refuses_a_loader_file_the_manifest_does_not_list(model_copy: Path, name: str) -> None:
    (model_copy / name).write_text(json.dumps({"unk_token": "[MASK]", "pad_token": "[UNK]"}))
    with pytest.raises(ModelDirError, match=f"{re.escape(name)} is not listed in manifest.json"):
        load_model(model_copy)


def test_unlisted_files_the_loader_ignores_are_allowed(model_copy: Path) -> None:
    (model_copy / "eval").mkdir()
    (model_copy / "eval" / "report.json").write_text("{}")
    (model_copy / "NOTES.md").write_text("trained on tuesday")
    assert load_model(model_copy).model is not None


def test_special_tokens_file_would_change_the_tokenizer(model_copy: Path) -> None:
    """Why the refusal matters: Hugging Face's loader reads this file and obeys it."""
    from transformers import AutoTokenizer

    (model_copy / "special_tokens_map.json").write_text(json.dumps({"unk_token": "[MASK]"}))
    assert AutoTokenizer.from_pretrained(model_copy, local_files_only=True).unk_token == "[MASK]"
    with pytest.raises(ModelDirError, match="not listed"):
        load_model(model_copy)


def test_oversized_config_is_refused_from_the_header_without_allocating(model_copy: Path) -> None:
    # 30522 x 393216 fp32 embeddings alone would be 48 GB; built first, this test would be
    # killed or take minutes. The header check refuses it before anything is allocated.
    _edit_json(
        model_copy / CONFIG_FILE,
        lambda c: c["encoder"].update(hidden_size=393_216, intermediate_size=1_572_864),
    )
    _rehash(model_copy)
    with pytest.raises(
        ModelDirError, match=r"shape \(30522, 32\), config implies \(30522, 393216\)"
    ):
        load_model(model_copy)


def test_absurd_layer_count_is_refused_before_building(model_copy: Path) -> None:
    _edit_json(model_copy / CONFIG_FILE, lambda c: c["encoder"].update(num_hidden_layers=10**9))
    _rehash(model_copy)
    with pytest.raises(ModelDirError, match="num_hidden_layers 1000000000 cannot match"):
        load_model(model_copy)


def test_format_1_dirs_load_with_temperature_one(model_copy: Path) -> None:
    def downgrade(m: dict) -> None:
        m.update(format_version=1)
        del m["temperatures"]

    _edit_json(model_copy / MANIFEST_FILE, downgrade)
    assert load_model(model_copy).manifest.temperatures == {}


@pytest.mark.parametrize("bad", [0.0, -1.0, 1e9])
def test_refuses_a_temperature_out_of_range(model_copy: Path, bad: float) -> None:
    _edit_json(model_copy / MANIFEST_FILE, lambda m: m.update(temperatures={"sentiment": bad}))
    with pytest.raises(ModelDirError, match="temperature of 'sentiment'"):
        load_model(model_copy)


def test_refuses_unknown_format_version(model_copy: Path) -> None:
    _edit_json(model_copy / MANIFEST_FILE, lambda m: m.update(format_version=99))
    with pytest.raises(ModelDirError, match="format_version 99"):
        load_model(model_copy)


def test_refuses_corrupt_manifest(model_copy: Path) -> None:
    (model_copy / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(ModelDirError, match="not readable JSON"):
        load_model(model_copy)


def test_refuses_manifest_path_outside_dir(model_copy: Path) -> None:
    _edit_json(model_copy / MANIFEST_FILE, lambda m: m["files"].update({"../outside": "00"}))
    with pytest.raises(ModelDirError, match="outside"):
        load_model(model_copy)


def test_refuses_pickle_only_dir(tmp_path: Path) -> None:
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelDirError, match=r"only pickle weights \(pytorch_model.bin\)"):
        load_model(tmp_path)


def test_refuses_labels_disagreeing_between_manifest_and_config(model_copy: Path) -> None:
    _edit_json(model_copy / MANIFEST_FILE, lambda m: m.update(sentiment_labels=["bad", "good"]))
    with pytest.raises(ModelDirError, match="sentiment labels differ"):
        load_model(model_copy)


def test_refuses_labels_inconsistent_with_head_size(model_copy: Path) -> None:
    four = ["negative", "neutral", "positive", "mixed"]
    _edit_json(model_copy / CONFIG_FILE, lambda c: c.update(sentiment_labels=four))
    _edit_json(model_copy / MANIFEST_FILE, lambda m: m.update(sentiment_labels=four))
    _rehash(model_copy)
    with pytest.raises(ModelDirError, match="sentiment_head has 3 outputs but the config names 4"):
        load_model(model_copy)


def test_refuses_weights_missing_a_key(model_copy: Path) -> None:
    state = load_file(str(model_copy / WEIGHTS_FILE))
    del state["topic_head.bias"]
    save_file(state, str(model_copy / WEIGHTS_FILE))
    _rehash(model_copy)
    with pytest.raises(ModelDirError, match=r"missing keys \['topic_head.bias'\]"):
        load_model(model_copy)


def test_refuses_weights_with_extra_key(model_copy: Path) -> None:
    state = load_file(str(model_copy / WEIGHTS_FILE))
    state["backdoor.weight"] = torch.zeros(2)
    save_file(state, str(model_copy / WEIGHTS_FILE))
    _rehash(model_copy)
    with pytest.raises(ModelDirError, match=r"unexpected keys \['backdoor.weight'\]"):
        load_model(model_copy)


def test_refuses_weight_shapes_not_matching_config(model_copy: Path) -> None:
    _edit_json(model_copy / CONFIG_FILE, lambda c: c["encoder"].update(intermediate_size=48))
    _rehash(model_copy)
    with pytest.raises(ModelDirError, match=r"has shape \(64, 32\), config implies \(48, 32\)"):
        load_model(model_copy)


def test_refuses_invalid_config(model_copy: Path) -> None:
    _edit_json(model_copy / CONFIG_FILE, lambda c: c.update(pooling="cls"))
    _rehash(model_copy)
    with pytest.raises(ModelDirError, match="not a valid MultiTaskConfig"):
        load_model(model_copy)


def test_refuses_unknown_encoder_type(model_copy: Path) -> None:
    _edit_json(model_copy / CONFIG_FILE, lambda c: c["encoder"].update(model_type="no-such-arch"))
    _rehash(model_copy)
    with pytest.raises(ModelDirError, match="cannot build the encoder"):
        load_model(model_copy)


def test_refuses_truncated_weights(model_copy: Path) -> None:
    weights = model_copy / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:100])
    _rehash(model_copy)
    with pytest.raises(ModelDirError, match="not a readable safetensors file"):
        load_model(model_copy)


def test_refuses_tokenizer_larger_than_embeddings(tmp_path: Path) -> None:
    from models.architecture import MultiTaskConfig, MultiTaskModel
    from tests.support.tiny_model import TINY_ENCODER

    _, tokenizer = make_tiny_model()
    small = MultiTaskModel(MultiTaskConfig(encoder={**TINY_ENCODER, "vocab_size": 1000}))
    save_model(tmp_path / "m", small, tokenizer, metadata={"base_model": "tiny"})
    with pytest.raises(ModelDirError, match=r"has 30522 tokens but the encoder embeds"):
        load_model(tmp_path / "m")


def test_reference_distribution_is_loaded_and_validated(model_copy: Path) -> None:
    loaded = load_model(model_copy)
    assert loaded.reference is not None
    assert set(loaded.reference.heads) == {"sentiment", "topic"}
    _edit_json(model_copy / "reference.json", lambda r: r["heads"]["topic"].update(n=0))
    _rehash(model_copy)
    with pytest.raises(ModelDirError, match="not a valid reference distribution"):
        load_model(model_copy)
