"""Registering models and moving the `challenger` / `champion` aliases.

A trained checkpoint becomes a model version whose source is its store URI and whose run is
the training run (so the version leads back through lineage to the data). It gets the alias
`challenger`; evaluation promotes it to `champion` only when it beats the current champion.
"""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

CHALLENGER = "challenger"
CHAMPION = "champion"


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
    return version.version


def version_for_alias(tracking_uri: str, name: str, alias: str) -> str | None:
    """The version that holds an alias, or None when no version does (or no such model)."""
    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        return client.get_model_version_by_alias(name, alias).version
    except MlflowException:
        return None


def promote_if_better(
    tracking_uri: str, name: str, version: str, score: float, champion_score: float | None
) -> bool:
    """Give `version` the champion alias when there is no champion or it scores higher."""
    if champion_score is not None and score <= champion_score:
        return False
    MlflowClient(tracking_uri=tracking_uri).set_registered_model_alias(name, CHAMPION, version)
    return True
