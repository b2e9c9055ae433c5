"""Weak-to-strong filtering: drop what a weak model always solves, bucket the rest by difficulty.

    from codedance_core.filtering import FilterConfig, filter_dataset, local_weak_model
    result = filter_dataset("rl.parquet", "filtered.parquet", local_weak_model("weak/"),
                            FilterConfig(k=8), report_dir="reports/")

`scoring` turns a shard of rows into pass rates, `pipeline` streams a file through it with
checkpointed shards, `report` summarises per data_source, `weak_model` trains the tiny
profile's weak model.
"""

from codedance_core.config.filtering import FilterConfig
from codedance_core.filtering.pipeline import FilterResult, filter_dataset, input_digest, work_key
from codedance_core.filtering.report import FilterReport
from codedance_core.filtering.scoring import (
    WeakModel,
    bucket_for,
    checkpoint_id,
    endpoint_weak_model,
    local_weak_model,
    score_shard,
)
from codedance_core.filtering.weak_model import train_weak_model

__all__ = [
    "FilterConfig",
    "FilterReport",
    "FilterResult",
    "WeakModel",
    "bucket_for",
    "checkpoint_id",
    "endpoint_weak_model",
    "filter_dataset",
    "input_digest",
    "local_weak_model",
    "score_shard",
    "train_weak_model",
    "work_key",
]
