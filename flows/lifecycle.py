"""The CodeDance lifecycle as one Prefect flow: a list of steps, each a cached stage task.

    base model -> RL rows -> validate -> weak-to-strong filtering -> verified trajectories
    -> SFT rows -> SFT -> evaluate -> RL rounds (GRPO + BAT), each evaluated -> register, promote if better

The RL rows are `filter.sources` (the task suite by default; the released CodeDance-RL files in the
paper profile), the SFT rows `synthesis.sources` (the verified trajectories, plus the released
CodeDance-SFT rows in the paper profile): several sources are merged into one file in the store.

A rerun with nothing changed is all cache hits; a change to one stage's config (or to the code it
runs) reruns that stage and what follows. Each stage launches its own work on Ray as its config plans
(stages/launch.py); every stage is a child MLflow run of the lifecycle's run.

    python -m flows.lifecycle --profile tiny               # what `make demo` runs
    python -m flows.lifecycle --profile paper --dry-run    # what each stage would launch
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from prefect import flow

from codedance_core.config.data import SUITE_TRAIN, SYNTHESIZED, DataConfig
from codedance_core.errors import entry_point
from codedance_core.stages.plan import print_plan
from codedance_core.stages.sources import merges, resolve_inputs
from codedance_core.storage import ArtifactRef
from flows.common import LifecycleParameters, Steps, announce_registered, flow_run
from tasks import stages


@flow(name="lifecycle", log_prints=True)
def lifecycle(params: LifecycleParameters | None = None) -> dict:
    """Run the whole lifecycle for one profile; returns the artifacts, evaluations and promotion."""
    params = params or LifecycleParameters()
    profile = params.load()
    if params.dry_run:
        return {"plan": print_plan(profile, params.rl_rounds)}
    tiny = profile.tiny_model if profile.builds_tiny_model else None
    with flow_run(profile, "lifecycle") as (run, ctx):
        step = Steps(ctx)
        base = step("base model", stages.base_model, profile.model, tiny)
        suite_train = {SUITE_TRAIN: lambda: step("suite: train", stages.suite_split, profile.data, "train")}
        train = rows_from(step, "RL sources", "rl", profile.filter.sources, suite_train, profile.data)
        test = step("suite: test", stages.suite_split, profile.data, "test")
        step("validate train", stages.validate_rows, train, "rl", profile.data)
        step("validate test", stages.validate_rows, test, "rl", profile.data)
        # At paper scale the base checkpoint (Qwen2.5-VL-7B) is the weak model, as in the paper.
        weak = step("weak model", stages.weak_model, profile.filter, train, profile.seed) if tiny is not None else base
        kept = step("weak-to-strong filter", stages.filter_rows, profile.filter, profile.rollout_for("filter"),
                    profile.rewards, profile.sandbox, profile.engine, train, weak).kept
        synthesized = {SYNTHESIZED: lambda: step("synthesize trajectories", stages.synthesize, profile.synthesis_config(),
                                                 kept).rows}
        sft_rows = rows_from(step, "SFT sources", "sft", profile.synthesis.sources, synthesized, profile.data)
        policy = step("SFT", stages.train_sft, profile.sft, sft_rows, base).model
        evaluate = (profile.evaluation, profile.rollout_for("evaluation"), profile.rewards, profile.sandbox,
                    profile.engine, profile.pixel_bounds())
        latest = step("evaluate SFT", stages.evaluate, *evaluate, policy, test, "sft")
        for index in range(1, params.rl_rounds + 1):
            policy = step(f"RL round {index}", stages.train_rl, profile.grpo, profile.rollout_for("rl"), profile.rewards,
                          profile.sandbox, profile.engine, index, kept, policy, test).model
            latest = step(f"evaluate RL {index}", stages.evaluate, *evaluate, policy, test, f"rl-{index}")
        promotion = step("register + promote", stages.register_and_promote, latest, profile.registry_name,
                         profile.evaluation.promote_metric, profile.name)
        if "register + promote" not in step.cached:
            announce_registered(promotion, profile.name, params.model_dump_json())
        run.log_metrics({"final_accuracy": float(latest.stats.get("accuracy", 0.0))})
        step.report("lifecycle", run.run_id, profile)
        return {"base": base, "train": train, "test": test, "kept": kept, "sft_rows": sft_rows, "policy": policy,
                "evaluation": latest, "promotion": promotion}


def rows_from(step: Steps, name: str, schema: str, sources: list[str], made: dict[str, Callable[[], ArtifactRef]],
              data: DataConfig) -> ArtifactRef:
    """A stage's input rows from its sources: what the lifecycle made, as is when it is the only
    source; else every source merged into one file in the store."""
    if not merges(sources):
        return made[sources[0]]()
    inputs = resolve_inputs(sources, made)
    return step(name, stages.merge_sources, inputs, schema, data.batch_rows, data.shard_rows)


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the CodeDance lifecycle flow.")
    parser.add_argument("--profile", default="tiny", help="profile name or YAML path")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="dotted override, repeatable")
    parser.add_argument("--rl-rounds", type=int, default=1, help="RL rounds, each starting from the last")
    parser.add_argument("--dry-run", action="store_true", help="print what each stage would launch, run nothing")
    entry_point(parser, _run)


def _run(args: argparse.Namespace) -> dict:
    params = LifecycleParameters(profile=args.profile, overrides=args.overrides, rl_rounds=args.rl_rounds,
                                 dry_run=args.dry_run)
    params.load()  # a bad profile is reported before Prefect starts
    return lifecycle(params)


if __name__ == "__main__":
    main()
