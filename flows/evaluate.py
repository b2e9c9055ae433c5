"""Evaluate a registered model version on the profile's benchmark; promote it if it is better.

Run on demand from the Prefect UI, or by the `evaluate-checkpoint` deployment's trigger when the
lifecycle registers a new model (event `codedance.model.registered`). The score is recorded on the
version with the benchmark's digest, and promotion is decided where the lifecycle decides it
(`tracking/registry.py`): only against a champion scored on the same benchmark.

    python -m flows.evaluate --profile tiny [--version 3]     # default: the `challenger`
"""

from __future__ import annotations

import argparse

from mlflow import MlflowClient
from prefect import flow

from codedance_core.errors import entry_point
from codedance_core.stages.registry import promote
from codedance_core.stages.results import Promotion
from codedance_core.tracking import CHALLENGER, version_for_alias
from flows.common import ProfileParameters, Steps, flow_run
from tasks import stages


@flow(name="evaluate-checkpoint", log_prints=True)
def evaluate_checkpoint(
    params: ProfileParameters | None = None, model_version: str | None = None, params_json: str | None = None
) -> Promotion:
    """Evaluate one version of the registered model (default: the challenger); returns the decision.

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
    with flow_run(profile, "evaluate-checkpoint") as (run, ctx):
        source = MlflowClient(ctx.tracking.tracking_uri).get_model_version(name, version).source
        model = ctx.store().ref(source.removeprefix(ctx.store().root).strip("/"))
        if model is None:
            raise FileNotFoundError(f"model version {version} points at {source}, which is not in the store")
        step = Steps(ctx)
        test = step("suite: test", stages.suite_split, profile.data, "test")
        evaluation = step(f"evaluate v{version}", stages.evaluate, profile.evaluation, profile.rollout_for("evaluation"),
                          profile.rewards, profile.sandbox, profile.engine, profile.pixel_bounds(), model, test,
                          f"v{version}")
        promotion = promote(ctx.tracking.tracking_uri, name, version, evaluation, profile.evaluation.promote_metric, print)
        run.log_metrics({profile.evaluation.promote_metric: promotion.score})
        return promotion


def main() -> None:
    parser = argparse.ArgumentParser(description="Evaluate a registered CodeDance model version.")
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--version", default=None, help="model version (default: the challenger)")
    entry_point(parser, _run)


def _run(args: argparse.Namespace) -> Promotion:
    params = ProfileParameters(profile=args.profile, overrides=args.overrides)
    params.load()  # a bad profile is reported before Prefect starts
    return evaluate_checkpoint(params, args.version)


if __name__ == "__main__":
    main()
