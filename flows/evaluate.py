"""Evaluate a registered model version on the profile's benchmark; promote it if it is better. And
evaluate one checkpoint on the profile's list of benchmarks (`evaluation.benchmarks`): a summary
table beside the paper's numbers (`evaluate-benchmarks`).

Run on demand from the Prefect UI, or by the `evaluate-checkpoint` deployment's trigger when the
lifecycle registers a new model (event `codedance.model.registered`). The score is recorded on the
version with the benchmark's digest, and promotion is decided where the lifecycle decides it
(`tracking/registry.py`): only against a champion scored on the same benchmark.

    python -m flows.evaluate --profile tiny [--version 3]     # default: the `challenger`
    python -m flows.evaluate --profile paper --benchmarks [--version 3 | --model-uri DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from prefect import flow
from prefect.artifacts import create_markdown_artifact

from codedance_core.errors import UserError, entry_point
from codedance_core.evaluation.summary import log_summary, summary_markdown
from codedance_core.stages import StageContext
from codedance_core.stages.evaluation import benchmark_ref, summarize_benchmarks
from codedance_core.stages.registry import promote
from codedance_core.stages.results import Promotion
from codedance_core.storage import ArtifactRef
from codedance_core.storage.uris import normalize_uri
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
        model = registered_checkpoint(ctx, name, version)
        step = Steps(ctx)
        test = step("suite: test", stages.suite_split, profile.data, "test")
        evaluation = step(f"evaluate v{version}", stages.evaluate, profile.evaluation, profile.rollout_for("evaluation"),
                          profile.rewards, profile.sandbox, profile.engine, profile.pixel_bounds(), model, test,
                          f"v{version}")
        promotion = promote(ctx.tracking.tracking_uri, name, version, evaluation, profile.evaluation.promote_metric, print)
        run.log_metrics({profile.evaluation.promote_metric: promotion.score})
        return promotion


@flow(name="evaluate-benchmarks", log_prints=True)
def evaluate_benchmarks(
    params: ProfileParameters | None = None, model_version: str | None = None, model_uri: str | None = None
) -> dict[str, Any]:
    """Evaluate one checkpoint on every benchmark of `evaluation.benchmarks`; returns the summary table.

    The checkpoint: `model_uri` (a model folder, in the store or not), else a version of the registered
    model (default: the challenger). One child run per benchmark under this flow's run, which holds
    the summary (each benchmark's accuracy and 95% interval beside the paper's)."""
    params = params or ProfileParameters()
    profile = params.load()
    specs = profile.evaluation.benchmarks
    if not specs:
        raise UserError("evaluation.benchmarks is empty", "list {name, path} entries in the profile")
    with flow_run(profile, "evaluate-benchmarks") as (run, ctx):
        model, label = checkpoint(ctx, profile.tracking.tracking_uri, profile.registry_name, model_version, model_uri)
        step = Steps(ctx)
        evaluations = [
            step(f"evaluate {spec.name}", stages.evaluate, profile.evaluation.for_benchmark(spec),
                 profile.rollout_for("evaluation"), profile.rewards, profile.sandbox, profile.engine,
                 profile.pixel_bounds(), model, benchmark_ref(ctx.store(), spec), f"{label}-{spec.name}")
            for spec in specs
        ]
        summary, paths = summarize_benchmarks(ctx.store(), evaluations, label)
        log_summary(run, summary, paths)
        create_markdown_artifact(summary_markdown(summary), key="benchmark-summary", description=f"{label} on benchmarks")
        step.report("evaluate-benchmarks", run.run_id, profile)
        return summary


def registered_checkpoint(ctx: StageContext, name: str, version: str) -> ArtifactRef:
    """The stored checkpoint a registered model version points at."""
    source = MlflowClient(ctx.tracking.tracking_uri).get_model_version(name, version).source
    model = ctx.store().ref(source.removeprefix(ctx.store().root).strip("/"))
    if model is None:
        raise FileNotFoundError(f"model version {version} points at {source}, which is not in the store")
    return model


def checkpoint(
    ctx: StageContext, tracking_uri: str, name: str, version: str | None, model_uri: str | None
) -> tuple[ArtifactRef, str]:
    """The checkpoint to evaluate and its label: a model folder (stored if it is not yet), or a
    registered version (default: the challenger)."""
    if model_uri:
        store, uri = ctx.store(), normalize_uri(model_uri)
        stored = store.ref(uri.removeprefix(store.root).strip("/")) if uri.startswith(store.root) else None
        label = Path(uri).name
        return stored or store.write_directory(f"models/evaluated/{label}", uri), label
    version = version or version_for_alias(tracking_uri, name, CHALLENGER)
    if version is None:
        raise ValueError(f"no version of {name!r} to evaluate: run the lifecycle first or pass a model")
    return registered_checkpoint(ctx, name, version), f"v{version}"


def main() -> None:
    parser = argparse.ArgumentParser(description="Evaluate a registered CodeDance model version.")
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--version", default=None, help="model version (default: the challenger)")
    parser.add_argument("--benchmarks", action="store_true", help="evaluate on evaluation.benchmarks (no promotion)")
    parser.add_argument("--model-uri", default=None, help="with --benchmarks: a model folder instead of a version")
    entry_point(parser, _run)


def _run(args: argparse.Namespace) -> Promotion | dict[str, Any]:
    params = ProfileParameters(profile=args.profile, overrides=args.overrides)
    params.load()  # a bad profile is reported before Prefect starts
    if args.benchmarks:
        return evaluate_benchmarks(params, args.version, args.model_uri)
    return evaluate_checkpoint(params, args.version)


if __name__ == "__main__":
    main()
