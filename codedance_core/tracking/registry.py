"""Registering models and moving the `challenger` / `champion` aliases: the one place promotion is decided.

A trained checkpoint becomes a model version whose source is its store URI and whose run is the
training run (so the version leads back through lineage to the data). It gets the alias
`challenger`, and tags with its score and the digest of the benchmark data it was scored on. It is
made `champion` only when it beats the current champion ON THE SAME BENCHMARK: scores on different
data say nothing about which model is better, so then the version stays registered, not promoted,
and the reason is recorded on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

CHALLENGER = "challenger"
CHAMPION = "champion"
BENCHMARK_TAG = "benchmark"
PROMOTION_TAG = "promotion"


def register_checkpoint(
    tracking_uri: str, name: str, source_uri: str, run_id: str, alias: str = CHALLENGER, tags: dict[str, str] | None = None
) -> str:
    """Register a checkpoint as a new version of `name` with `alias`; returns the version."""
    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise
    version = client.create_model_version(name, source=source_uri, run_id=run_id, tags=tags or {})
    client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def version_for_alias(tracking_uri: str, name: str, alias: str) -> str | None:
    """The version that holds an alias, or None when no version does (or no such model)."""
    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def record_score(tracking_uri: str, name: str, version: str, metric: str, score: float, benchmark: str) -> None:
    """Tag a version with its score on a benchmark (the digest of the benchmark's data)."""
    client = MlflowClient(tracking_uri=tracking_uri)
    client.set_model_version_tag(name, version, metric, str(score))
    client.set_model_version_tag(name, version, BENCHMARK_TAG, benchmark)


@dataclass(frozen=True)
class PromotionDecision:
    promoted: bool
    champion: str | None  # the champion before the decision
    champion_score: float | None
    reason: str


def promote_if_better(tracking_uri: str, name: str, version: str, metric: str) -> PromotionDecision:
    """Make `version` the champion when there is none, or when its recorded `metric` beats the
    champion's on the same benchmark; the decision and its reason are tagged on the version."""
    client = MlflowClient(tracking_uri=tracking_uri)
    candidate = client.get_model_version(name, version).tags
    score, benchmark = _score(candidate, metric), candidate.get(BENCHMARK_TAG)
    champion = version_for_alias(tracking_uri, name, CHAMPION)
    champion_score: float | None = None
    if score is None or benchmark is None:
        decision = PromotionDecision(False, champion, None, f"v{version} has no recorded {metric} on a benchmark")
    elif champion == version:
        decision = PromotionDecision(False, champion, score, f"v{version} is the champion already")
    elif champion is None:
        decision = PromotionDecision(True, None, None, "there was no champion")
    else:
        held = client.get_model_version(name, champion).tags
        champion_score = _score(held, metric)
        if held.get(BENCHMARK_TAG) != benchmark:
            decision = PromotionDecision(False, champion, champion_score, (
                f"champion v{champion} was scored on other data (benchmark {str(held.get(BENCHMARK_TAG))[:19]}, "
                f"this one {benchmark[:19]}): evaluate both on the same benchmark to compare them"))
        elif champion_score is None:
            decision = PromotionDecision(True, champion, None, f"champion v{champion} has no recorded {metric}")
        elif score > champion_score:
            decision = PromotionDecision(True, champion, champion_score,
                                         f"{metric} {score:.4f} beats v{champion}'s {champion_score:.4f}")
        else:
            decision = PromotionDecision(False, champion, champion_score,
                                         f"{metric} {score:.4f} does not beat v{champion}'s {champion_score:.4f}")
    if decision.promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, PROMOTION_TAG, decision.reason)
    return decision


def _score(tags: dict[str, str], metric: str) -> float | None:
    try:
        value = float(tags[metric])
    except (KeyError, ValueError):
        return None
    return None if math.isnan(value) else value
