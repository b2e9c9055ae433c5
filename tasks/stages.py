"""The lifecycle's stages as Prefect tasks: each one line over the stage function that does the work."""

from __future__ import annotations

from codedance_core import stages
from tasks.common import stage_task

base_model = stage_task(stages.base_model)
suite_split = stage_task(stages.suite_split)
merge_sources = stage_task(stages.merge_sources)
validate_rows = stage_task(stages.validate_rows)
weak_model = stage_task(stages.weak_model)
filter_rows = stage_task(stages.filter_rows)
synthesize = stage_task(stages.synthesize)
text_only_copy = stage_task(stages.text_only_copy)
train_sft = stage_task(stages.train_sft)
train_rl = stage_task(stages.train_rl)
evaluate = stage_task(stages.evaluate)
register_and_promote = stage_task(stages.register_and_promote)
