"""MLflow helpers: runs with explicit parents, lineage as dataset inputs, the model registry."""

from codedance_core.tracking.registry import (
    CHALLENGER,
    CHAMPION,
    PromotionDecision,
    promote_if_better,
    record_score,
    register_checkpoint,
    version_for_alias,
)
from codedance_core.tracking.runs import RunTracker, flatten, tracked_run

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "PromotionDecision",
    "RunTracker",
    "flatten",
    "promote_if_better",
    "record_score",
    "register_checkpoint",
    "tracked_run",
    "version_for_alias",
]
