"""Mini-CodeDance as a Prefect flow: arms x seeds over the lifecycle's own stages.

Every step is the same cached stage task the lifecycle runs, so the experiment shares their launch,
their cache and their MLflow scheme: a rerun (or a retry of the flow) recomputes only what changed,
and each stage is a child run of the experiment's run, labelled with its seed and arm. What the
experiment is (arms, overrides) and how its results become the report live in
codedance_core/experiments/mini.py.

    python -m flows.experiment --smoke          # or `codedance experiment mini`, or the deployment
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import BaseModel, Field

from codedance_core.errors import entry_point
from codedance_core.experiments.mini import ARMS, Arm, MiniConfig, arm_result, finish, flat_metrics
from codedance_core.experiments.results import rl_training_curve
from codedance_core.stages import StageContext
from codedance_core.stages.evaluation import result_rows
from codedance_core.stages.results import TrainedModel
from flows.common import Steps, flow_run
from tasks import stages


class MiniParameters(BaseModel):
    """The deployment's form: what `codedance experiment mini` takes."""

    profile: str = Field("tiny", description="Profile name (configs/NAME.yaml) or a YAML path.")
    overrides: list[str] = Field(default_factory=list, description="Dotted profile overrides, e.g. ['grpo.max_steps=16'].")
    seeds: int = Field(3, ge=1, le=10, description="Number of seeds (0 .. seeds-1).")
    arms: list[str] = Field(default_factory=lambda: list(ARMS), description="Arms to run.")
    smoke: bool = Field(False, description="1 seed, tiny data, few steps.")
    out_dir: str = Field("docs/mini-codedance", description="Report, plots and per-arm results.")
    store_root: str | None = Field(None, description="Artifact store; None: the profile's.")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI; None: the profile's.")
    artifact_root: str | None = Field(None, description="MLflow artifact root; None: the profile's.")

    def config(self) -> MiniConfig:
        return MiniConfig(
            profile=self.profile, overrides=self.overrides, seeds=list(range(1 if self.smoke else self.seeds)),
            arms=self.arms, smoke=self.smoke, out_dir=self.out_dir, store_root=self.store_root,
            tracking_uri=self.tracking_uri, artifact_root=self.artifact_root,
        )


@flow(name="mini-codedance", log_prints=True)
def mini_experiment(params: MiniParameters | None = None, command: str = "") -> dict:
    """Run (or resume) Mini-CodeDance; returns the report's path, the claims' inputs and the time."""
    params = params or MiniParameters()
    config = params.config()
    started = time.perf_counter()
    base_profile = config.base_profile()
    with flow_run(base_profile, "mini-codedance") as (run, ctx):
        step = Steps(ctx)
        base = step("base model", stages.base_model, base_profile.model, base_profile.tiny_model)
        results = [result for seed in config.seeds for result in run_seed(config, seed, base, step, ctx)]
        for result in results:
            with ctx.with_labels(seed=str(result["seed"]), arm=result["arm"]).stage_run("result") as child:
                if child is not None:
                    child.log_metrics(flat_metrics(result))
        report = finish(config, results, ctx.store().local_directory(base), command or _command(params),
                        time.perf_counter() - started)
        run.log_artifact(report)
        for plot in sorted(report.parent.glob("*.png")):
            run.log_artifact(plot, "plots")
        step.report("mini-codedance", run.run_id, base_profile)
    create_markdown_artifact(report.read_text(), key="mini-codedance-report", description="Mini-CodeDance report")
    rows = [{"arm": r["arm"], "seed": r["seed"], "accuracy": r["stats"].get("accuracy")} for r in results]
    create_table_artifact(rows, key="mini-codedance-arms", description="Accuracy per arm and seed")
    return {"report": str(report), "seconds": time.perf_counter() - started, "results": results}


def run_seed(config: MiniConfig, seed: int, base: Any, step: Steps, parent: StageContext) -> list[dict[str, Any]]:
    """Every arm of one seed: its suite and trajectories once, the SFT policies, the RL arms from tool SFT."""
    profile, ctx = config.seed_profile(seed), parent.with_labels(seed=str(seed))
    train = step(f"seed {seed}: suite train", stages.suite_split, profile.data, "train", ctx=ctx)
    test = step(f"seed {seed}: suite test", stages.suite_split, profile.data, "test", ctx=ctx)
    tool_rows = step(f"seed {seed}: synthesize", stages.synthesize, profile.synthesis_config(), train, ctx=ctx).rows
    sft_rows = {"tool": tool_rows}
    if any(ARMS[name].sft_data == "text" for name in config.arms):
        sft_rows["text"] = step(f"seed {seed}: text-only copy", stages.text_only_copy, tool_rows, ctx=ctx)
    trained: dict[str, TrainedModel] = {}

    def policy(arm: Arm) -> TrainedModel:
        """The arm's policy (tool SFT's also when an RL arm needs it as its start)."""
        if arm.name not in trained:
            actx = ctx.with_labels(arm=arm.name)
            if arm.sft_data is not None:
                trained[arm.name] = step(f"seed {seed}: {arm.name}", stages.train_sft, profile.sft,
                                         sft_rows[arm.sft_data], base, ctx=actx)
            else:
                start = policy(ARMS["tool_sft"]).model
                trained[arm.name] = step(f"seed {seed}: {arm.name}", stages.train_rl, profile.grpo,
                                         profile.rollout_for("rl"), arm.rewards(profile.rewards), profile.sandbox,
                                         profile.engine, 1, train, start, test, ctx=actx)
        return trained[arm.name]

    results = []
    for arm in config.ordered_arms():
        started = time.perf_counter()
        model = policy(arm)
        evaluation = step(f"seed {seed}: evaluate {arm.name}", stages.evaluate, profile.evaluation,
                          profile.rollout_for("evaluation"), profile.rewards, profile.sandbox, profile.engine,
                          profile.pixel_bounds(), model.model, test, arm.name, ctx=ctx.with_labels(arm=arm.name))
        curve = rl_training_curve(ctx.store().read_bytes(model.metrics.uri).decode()) if (
            arm.sft_data is None and model.metrics is not None) else None
        results.append(arm_result(arm, seed, result_rows(ctx.store(), evaluation), evaluation.stats,
                                  time.perf_counter() - started, curve))
        print(f"[seed {seed}] {arm.name}: accuracy {evaluation.stats.get('accuracy', 0):.3f}")
    return results


def _command(params: MiniParameters) -> str:
    return f"prefect deployment mini-codedance {params.model_dump_json()}"


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the Mini-CodeDance experiment flow.")
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", default="docs/mini-codedance")
    entry_point(parser, _run)


def _run(args: argparse.Namespace) -> dict:
    params = MiniParameters(profile=args.profile, overrides=args.overrides, seeds=args.seeds, smoke=args.smoke,
                            out_dir=args.out)
    params.config().base_profile()  # a bad profile or override is reported before Prefect starts
    return mini_experiment(params)


if __name__ == "__main__":
    main()
