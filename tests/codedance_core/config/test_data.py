"""The data config: strict, with a split-aware suite spec."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from codedance_core.config.data import DataConfig, SuiteSpec


def test_defaults_give_a_train_and_a_test_spec_from_one_seed():
    config = DataConfig(seed=5, train_size=40, test_size=10)
    train, test = config.suite_spec("train"), config.suite_spec("test")
    assert (train.n, test.n) == (40, 10)
    assert train.seed == test.seed == 5 and (train.split, test.split) == ("train", "test")
    assert train.digest() != test.digest()


def test_unknown_keys_and_bad_values_fail_with_their_path():
    with pytest.raises(ValidationError, match="image_limits.max_pixel"):
        DataConfig.model_validate({"image_limits": {"max_pixel": 10}})
    with pytest.raises(ValidationError, match="families"):
        SuiteSpec(families=["count", "poetry"])
    with pytest.raises(ValidationError, match="repeated"):
        SuiteSpec(families=["count", "count"])
    with pytest.raises(ValidationError, match="hard_fraction"):
        SuiteSpec(hard_fraction=1.5)


# -- sources ---------------------------------------------------------------------------------------
def test_a_hub_source_names_its_dataset_revision_and_files():
    from codedance_core.config.data import parse_source

    source = parse_source("hf://datasets/Peterwatwec/CodeDance-RL@0123abc/data/train-*.parquet")
    assert (source.scheme, source.repo, source.revision, source.path) == (
        "hf", "Peterwatwec/CodeDance-RL", "0123abc", "data/train-*.parquet")
    assert source.label == "CodeDance-RL" and source.is_glob
    assert parse_source("s3://bucket/rl/part-0.parquet").label == "part-0"
    assert parse_source("/data/CodeDance-SFT").scheme == "file"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("gs://bucket/rl.parquet", "unknown scheme 'gs'"),
        ("http://example.com/rl.parquet", "unknown scheme 'http'"),
        ("hf://datasets/Peterwatwec/CodeDance-RL/data/*.parquet", "names no revision"),
        ("hf://datasets/Peterwatwec/CodeDance-RL@main", "names no file"),
        ("hf://models/Qwen/Qwen2.5-VL-7B-Instruct@main/x.parquet", "only datasets"),
        ("suite://test", "the lifecycle makes only"),
        ("", "an empty source"),
    ],
)
def test_a_bad_source_says_which_forms_a_source_takes(source: str, message: str):
    from codedance_core.config.filtering import FilterConfig

    with pytest.raises(ValidationError, match=message) as caught:
        FilterConfig(sources=[source])
    assert caught.value.errors()[0]["loc"] == ("sources",)


def test_a_stage_needs_a_source_of_its_own_kind_once():
    from codedance_core.config.filtering import FilterConfig
    from codedance_core.config.synthesis import SynthesisConfig

    with pytest.raises(ValidationError, match="no source: filtering needs at least one"):
        FilterConfig(sources=[])
    with pytest.raises(ValidationError, match="'stage://synthesize' is not a source of filtering"):
        FilterConfig(sources=["stage://synthesize"])
    with pytest.raises(ValidationError, match="'suite://train' is not a source of SFT"):
        SynthesisConfig(sources=["suite://train"])
    with pytest.raises(ValidationError, match="repeated"):
        FilterConfig(sources=["suite://train", "/data/rl", "/data/rl"])
    assert FilterConfig().sources == ["suite://train"] and SynthesisConfig().sources == ["stage://synthesize"]


def test_sources_are_inputs_and_stay_out_of_a_section_digest():
    from codedance_core.config.filtering import FilterConfig
    from codedance_core.config.synthesis import SynthesisConfig

    released = ["suite://train", "hf://datasets/Peterwatwec/CodeDance-RL@main/data/*.parquet"]
    assert FilterConfig(sources=released).digest() == FilterConfig().digest()
    assert FilterConfig(sources=released).scoring_digest() == FilterConfig().scoring_digest()
    assert SynthesisConfig(sources=["stage://synthesize", "/data/sft"]).digest() == SynthesisConfig().digest()
    assert FilterConfig(sources=released, k=3).digest() != FilterConfig(k=4).digest()
