"""A model's shape without loading it: from its config.json, from a published size in its name, or the tiny config."""

from __future__ import annotations

import json
import shutil

from codedance_core.config.model import TinyModelConfig
from codedance_core.train.model_shape import KNOWN_SHAPES, known_shape, model_shape


def test_counts_from_config_json_match_the_loaded_model_parameter_for_parameter(tiny_model_dir, tiny_bundle) -> None:
    shape = model_shape(str(tiny_model_dir))
    model = tiny_bundle.model
    visual = model.model.visual
    assert shape.source == f"{tiny_model_dir}/config.json"
    assert shape.total_params == sum(p.numel() for p in model.parameters())
    assert shape.merger_params == sum(p.numel() for p in visual.merger.parameters())
    assert shape.vision_tower_params + shape.merger_params == sum(p.numel() for p in visual.parameters())
    assert shape.kv_bytes_per_token() == 2 * shape.layers * model.config.text_config.num_key_value_heads * shape.head_dim * 2


def test_published_sizes_give_the_hub_parameter_counts() -> None:
    assert KNOWN_SHAPES["7b"].total_params == 8_292_166_656
    assert KNOWN_SHAPES["3b"].total_params == 3_754_622_976
    assert round(KNOWN_SHAPES["32b"].total_params / 1e9, 1) == 33.4
    assert round(KNOWN_SHAPES["72b"].total_params / 1e9, 1) == 73.4
    # 7B in bf16: 16.6 GB, 15.4 GiB of weights; 56 KiB of KV cache a token (28 layers, 4 kv heads of 128).
    assert round(KNOWN_SHAPES["7b"].total_params * 2 / 2**30, 1) == 15.4
    assert KNOWN_SHAPES["7b"].kv_bytes_per_token() == 56 * 1024


def test_a_size_is_matched_in_paths_and_names() -> None:
    assert known_shape("/models/Qwen2.5-VL-7B-Instruct").name == "Qwen2.5-VL-7B"
    assert known_shape("s3://bucket/qwen2_5_vl_72b_instruct").name == "Qwen2.5-VL-72B"
    assert known_shape("Qwen2.5-VL-32B").name == "Qwen2.5-VL-32B"
    assert known_shape("Qwen2.5-VL-3B-Instruct").name == "Qwen2.5-VL-3B"
    assert known_shape("/models/Qwen2-VL-7B-Instruct") is None
    assert known_shape("runs/sft/model") is None


def test_config_json_wins_over_the_name_and_the_tiny_config_comes_last(tiny_model_dir, tmp_path) -> None:
    named_7b = tmp_path / "Qwen2.5-VL-7B-Instruct"
    named_7b.mkdir()
    shutil.copy(tiny_model_dir / "config.json", named_7b / "config.json")
    assert model_shape(str(named_7b)).hidden_size == 64  # what the file says, not what the name says
    assert model_shape(str(tmp_path / "absent"), str(tmp_path / "Qwen2.5-VL-7B")).hidden_size == 3584
    assert model_shape(str(tmp_path / "absent")) is None
    assert model_shape(str(tmp_path / "absent"), tiny=TinyModelConfig()).name == "tiny"


def test_a_config_json_of_another_architecture_is_passed_over(tmp_path) -> None:
    other = tmp_path / "Qwen2.5-VL-3B-Instruct"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 4096}))
    assert model_shape(str(other)).name == "Qwen2.5-VL-3B"
