"""Evaluate a registered model version on the profile's benchmark; promote it if it is better.

Run on demand from the Prefect UI, or by the `evaluate-checkpoint` deployment's trigger when the
lifecycle registers a new model (event `codedance.model.registered`).

    python -m flows.evaluate --profile tiny [--version 3]     # default: the `challenger`
"""

from __future__ import annotations

import argparse

from mlflow import MlflowClient
from prefect import flow

from codedance_core.storage import ArtifactStore
from codedance_core.tracking import CHALLENGER, CHAMPION, promote_if_better, version_for_alias
from flows.common import ProfileParameters, lifecycle_run
from tasks.common import result_storage
from tasks.data import synthesise_suite
from tasks.evaluate import evaluate_checkpoint_task


@flow(name="evaluate-checkpoint", log_prints=True)
def evaluate_checkpoint(
    params: ProfileParameters | None = None, model_version: str | None = None, params_json: str | None = None
) -> dict:
    """Evaluate one version of the registered model (default: the challenger); returns its stats.

    `params_json` is how the deployment's trigger passes the lifecycle's own parameters (profile and
    overrides, so the same store and tracking server) from the `codedance.model.registered` event."""
    if params_json:
        params = ProfileParameters.model_validate_json(params_json)
    params = params or ProfileParameters()
    profile = params.load()
    uri, name = profile.tracking.tracking_uri, profile.registry_name
    version = model_version or version_for_alias(uri, name, CHALLENGER)
    if version is None:
        raise ValueError(f"no version of {name!r} to evaluate: run the lifecycle first or pass model_version")
    record = MlflowClient(uri).get_model_version(name, version)
    store = ArtifactStore(profile.store.root)
    relpath = record.source.removeprefix(store.root).strip("/")
    model = store.ref(relpath)
    if model is None:
        raise FileNotFoundError(f"model version {version} points at {record.source}, which is not in the store")
    with lifecycle_run(profile, "evaluate-checkpoint") as (run, tracking):
        opts = {"result_storage": result_storage(profile.store.root)}
        test = synthesise_suite.with_options(**opts)(profile.data, "test", profile.store.root, tracking)
        evaluation = evaluate_checkpoint_task.with_options(**opts)(
            profile.evaluation, profile.rewards, profile.sandbox, profile.pixel_bounds(),
            model, test, profile.store.root, f"v{version}", tracking,
        )
        metric = profile.evaluation.promote_metric
        score = float(evaluation["stats"].get(metric, 0.0))
        champion = version_for_alias(uri, name, CHAMPION)
        champion_score = None
        if champion is not None and champion != version:
            champion_score = float(MlflowClient(uri).get_model_version(name, champion).tags.get(metric, "nan"))
        promoted = promote_if_better(uri, name, version, score, champion_score) if champion != version else False
        run.log_metrics({metric: score})
        print(f"{name} v{version}: {metric} {score:.3f} (champion {champion}: {champion_score}); promoted: {promoted}")
        return {"version": version, "score": score, "promoted": promoted, "stats": evaluation["stats"]}


def main() -> None:
    parser = argparse.ArgumentParser(description="Evaluate a registered CodeDance model version.")
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--version", default=None, help="model version (default: the challenger)")
    args = parser.parse_args()
    evaluate_checkpoint(ProfileParameters(profile=args.profile, overrides=args.overrides), args.version)


if __name__ == "__main__":
    main()
