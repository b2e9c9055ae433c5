"""The cheap look at a model directory: every way its files can be wrong, told by name, no load."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from codedance_core.models.check import ModelDirError, check_model_dir


@pytest.fixture
def model(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """A copy of the tiny model that a test may break."""
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))


def test_a_complete_model_passes(tiny_model_dir: Path):
    assert check_model_dir(tiny_model_dir) == tiny_model_dir


def test_a_missing_directory_or_config(tmp_path: Path, model: Path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_model_dir(tmp_path / "nothing")
    (model / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        check_model_dir(model)


def test_absent_weights(model: Path):
    (model / "model.safetensors").unlink()
    with pytest.raises(ModelDirError, match="has no weights"):
        check_model_dir(model)


@pytest.mark.parametrize("damage", ["truncated", "random", "tiny"])
def test_damaged_weights_are_named(model: Path, damage: str):
    weights = model / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(
        {"truncated": data[: len(data) // 2], "random": os.urandom(len(data)), "tiny": data[:5]}[damage]
    )
    with pytest.raises(ModelDirError, match=r"model\.safetensors is truncated or corrupt"):
        check_model_dir(model)


def test_a_missing_shard_of_a_sharded_checkpoint(model: Path):
    (model / "model.safetensors").rename(model / "model-00001-of-00002.safetensors")
    weight_map = {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}
    (model / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(ModelDirError, match="model-00002-of-00002.safetensors"):
        check_model_dir(model)


def test_a_config_that_is_not_json(model: Path):
    (model / "config.json").write_text("{oops")
    with pytest.raises(ModelDirError, match="config.json is not valid JSON"):
        check_model_dir(model)
