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
