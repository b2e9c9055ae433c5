"""The last stage: register the evaluated policy, and promote it when it beats the champion.

It runs in the calling process (it only talks to the tracking server). The decision itself lives
in `tracking/registry.py`, which the `evaluate-checkpoint` flow uses too: a challenger is compared
with the champion only on the same benchmark data.
"""

from __future__ import annotations

from collections.abc import Callable

from codedance_core.stages.context import StageContext
from codedance_core.stages.keys import stage
from codedance_core.stages.launch import LaunchPlan
from codedance_core.stages.results import Evaluation, Promotion

REGISTER_PLAN = LaunchPlan(stage="register", entry_point="codedance_core.stages.registry:register_and_promote",
                           kind="in-process", cpus_per_worker=0)


@stage("register")
def register_and_promote(
    evaluation: Evaluation, registry_name: str, metric: str, profile_name: str, ctx: StageContext
) -> Promotion:
    """Register the evaluated checkpoint as `challenger`; make it `champion` if it beats the current
    one on the same benchmark. Cached on the evaluation: an unchanged rerun registers nothing new."""
    from codedance_core.tracking import register_checkpoint

    if ctx.tracking is None:
        raise ValueError("registering a model needs a tracking server: the context has no tracking")
    version = register_checkpoint(
        ctx.tracking.tracking_uri, registry_name, evaluation.model.uri, ctx.tracking.parent_run_id or "",
        tags={"digest": evaluation.model.digest, "profile": profile_name},
    )
    return promote(ctx.tracking.tracking_uri, registry_name, version, evaluation, metric, ctx.log)


def promote(
    tracking_uri: str, name: str, version: str, evaluation: Evaluation, metric: str, log: Callable[[str], None]
) -> Promotion:
    """Record the version's score on the evaluation's benchmark, then promote it if it beats the
    champion there (what the lifecycle and the evaluate-checkpoint flow both do)."""
    from codedance_core.tracking import promote_if_better, record_score

    score = evaluation.score(metric)
    record_score(tracking_uri, name, version, metric, score, evaluation.benchmark.digest)
    decision = promote_if_better(tracking_uri, name, version, metric)
    log(f"{name} v{version}: {metric} {score:.4f} on {evaluation.label}; "
        + ("now the champion" if decision.promoted else "not promoted") + f" ({decision.reason})")
    return Promotion(name=name, version=version, score=score, champion=decision.champion,
                     champion_score=decision.champion_score, promoted=decision.promoted, reason=decision.reason)
