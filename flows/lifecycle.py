"""The CodeDance lifecycle as one Prefect flow.

    build or register the base model -> synthesise the task suite -> validate it
    -> weak-to-strong filtering -> synthesise verified trajectories -> SFT -> evaluate
    -> RL rounds (GRPO + BAT), each evaluated -> register the final policy, promote if better

Each step is a cached task: a rerun with nothing changed is all cache hits, and a change to one
stage's config reruns that stage and what follows it. Heavy steps run on Ray; every stage is a
child MLflow run of the lifecycle's run.

    python -m flows.lifecycle --profile tiny        # what `make demo` runs
"""

from __future__ import annotations

import argparse
import time

from prefect import flow
from prefect.artifacts import create_table_artifact
from rich.console import Console
from rich.table import Table

from flows.common import LifecycleParameters, lifecycle_run
from tasks.common import result_storage
from tasks.data import synthesise_suite, validate_dataset
from tasks.evaluate import evaluate_checkpoint_task, register_and_promote
from tasks.filtering import filter_rows, train_weak_model_task
from tasks.models import build_tiny_model, register_checkpoint_folder
from tasks.synthesis import synthesize_trajectories
from tasks.train import train_rl_round, train_sft_stage


@flow(name="lifecycle", log_prints=True)
def lifecycle(params: LifecycleParameters | None = None) -> dict:
    """Run the whole lifecycle for one profile; returns the artifacts, evaluations and promotion."""
    params = params or LifecycleParameters()
    profile = params.load()
    store_root = profile.store.root
    steps: list[tuple[str, float, str]] = []
    with lifecycle_run(profile, "lifecycle") as (run, tracking):
        opts = {"result_storage": result_storage(store_root)}

        def step(name, task, *args):
            started = time.perf_counter()
            result = task.with_options(**opts)(*args)
            steps.append((name, time.perf_counter() - started, _describe(result)))
            return result

        if profile.device == "cpu":
            base = step("base model (tiny)", build_tiny_model, profile.tiny_model, 400, profile.seed, store_root)
        else:
            base = step("base model", register_checkpoint_folder, profile.model, store_root)
        train = step("suite: train", synthesise_suite, profile.data, "train", store_root, tracking)
        test = step("suite: test", synthesise_suite, profile.data, "test", store_root, tracking)
        step("validate train", validate_dataset, train, "rl", profile.data, store_root)
        step("validate test", validate_dataset, test, "rl", profile.data, store_root)
        if profile.device == "cpu":
            weak = step("weak model (tiny)", train_weak_model_task, profile.filter, profile.tiny_model, train, profile.seed, store_root)
        else:
            weak = base  # at paper scale the base checkpoint (Qwen2.5-VL-7B) is the weak model, as in the paper
        kept = step("weak-to-strong filter", filter_rows, profile.filter, profile.rewards, profile.sandbox, train, weak, store_root, tracking)
        sft_rows = step("synthesize trajectories", synthesize_trajectories, profile.synthesis_config(), kept, store_root, tracking)
        policy = step("SFT", train_sft_stage, profile.sft, sft_rows, base, store_root, tracking)
        evaluate = (profile.evaluation, profile.rewards, profile.sandbox, profile.pixel_bounds())
        latest = step("evaluate SFT", evaluate_checkpoint_task, *evaluate, policy, test, store_root, "sft", tracking)
        for index in range(1, params.rl_rounds + 1):
            policy = step(
                f"RL round {index}", train_rl_round, profile.grpo, profile.rollout, profile.rewards,
                profile.sandbox, profile.engine, index, kept, policy, store_root, tracking,
            )
            latest = step(f"evaluate RL {index}", evaluate_checkpoint_task, *evaluate, policy, test, store_root, f"rl-{index}", tracking)
        promotion = step(
            "register + promote", register_and_promote, tracking, profile.registry_name, latest,
            profile.evaluation.promote_metric, profile.name, params.model_dump_json(),
        )
        run.log_metrics({"final_accuracy": float(latest["stats"].get("accuracy", 0.0))})
        _report(steps, run.run_id, profile)
        return {"base": base, "train": train, "test": test, "kept": kept, "sft_rows": sft_rows, "policy": policy,
                "evaluation": latest["stats"], "promotion": promotion}


def _describe(result) -> str:
    if hasattr(result, "uri"):
        rows = f", {result.rows} rows" if result.rows is not None else ""
        return f"{result.uri} ({result.short_digest}{rows})"
    if isinstance(result, dict) and "stats" in result:
        stats = result["stats"]
        return f"accuracy {stats.get('accuracy', 0):.3f} on {stats.get('items', '?')} items; tool calls per trajectory {stats.get('tool_calls_per_trajectory', 0):.2f}"
    if isinstance(result, dict) and "version" in result:
        return f"version {result['version']} score {result['score']:.3f}" + (" -> champion" if result["promoted"] else "")
    if isinstance(result, dict) and "good_rows" in result:
        return f"{result['good_rows']} valid, {result['bad_rows']} quarantined"
    return str(result)[:80]


def _report(steps: list[tuple[str, float, str]], run_id: str, profile) -> None:
    """What the lifecycle did, as a table in the log and in the Prefect UI, and where to look."""
    create_table_artifact(
        [{"step": name, "seconds": round(seconds, 1), "result": result} for name, seconds, result in steps],
        key="lifecycle-steps", description=f"Lifecycle steps; MLflow run {run_id}",
    )
    table = Table(title=f"CodeDance lifecycle ({profile.name})")
    for column in ("step", "seconds", "result"):
        table.add_column(column)
    for name, seconds, result in steps:
        table.add_row(name, f"{seconds:.1f}", result)
    console = Console(width=160)
    console.print(table)
    console.print(f"MLflow: run {run_id} in experiment {profile.tracking.experiment!r} ({profile.tracking.tracking_uri})")
    console.print("Look at it: `make ui`, then the Prefect UI (flow runs, artifacts) and the MLflow UI (runs, models).")


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the CodeDance lifecycle flow.")
    parser.add_argument("--profile", default="tiny", help="profile name or YAML path")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="dotted override, repeatable")
    parser.add_argument("--rl-rounds", type=int, default=1, help="RL rounds, each starting from the last")
    args = parser.parse_args()
    lifecycle(LifecycleParameters(profile=args.profile, overrides=args.overrides, rl_rounds=args.rl_rounds))


if __name__ == "__main__":
    main()
