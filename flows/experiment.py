"""Mini-CodeDance as a Prefect flow: the library's runner, wrapped so it can be deployed.

The experiment is one long, resumable computation whose stages share artifacts within a seed
(the suite, the trajectories, the tool-SFT checkpoint that every RL arm starts from), so it
runs as one flow calling `run_mini` rather than as a graph of cached tasks: a retry of the flow
reuses every (arm, seed) result already saved in the output folder.

    python -m flows.experiment --smoke                    # or the `mini-codedance` deployment
"""

from __future__ import annotations

import argparse

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import BaseModel, Field

from codedance_core.experiments.mini import ARMS, MiniConfig, run_mini


class MiniParameters(BaseModel):
    """The deployment's form: what `codedance experiment mini` takes."""

    profile: str = Field("tiny", description="Profile name (configs/NAME.yaml) or a YAML path.")
    overrides: list[str] = Field(default_factory=list, description="Dotted profile overrides, e.g. ['grpo.max_steps=16'].")
    seeds: int = Field(3, ge=1, le=10, description="Number of seeds (0 .. seeds-1).")
    arms: list[str] = Field(default_factory=lambda: list(ARMS), description="Arms to run.")
    smoke: bool = Field(False, description="1 seed, tiny data, few steps.")
    out_dir: str = Field("docs/mini-codedance", description="Report, plots and per-arm results.")
    work_dir: str = Field(".codedance/experiments/mini", description="Models, data and evaluation outputs.")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI; None: the profile's.")

    def config(self) -> MiniConfig:
        tracking = self.profile_tracking()
        return MiniConfig(
            profile=self.profile, overrides=self.overrides, seeds=list(range(1 if self.smoke else self.seeds)),
            arms=self.arms, smoke=self.smoke, out_dir=self.out_dir, work_dir=self.work_dir,
            corpus_rows=60 if self.smoke else 400, tracking_uri=self.tracking_uri or tracking.tracking_uri,
            artifact_root=tracking.artifact_root,
        )

    def profile_tracking(self):
        """The profile's MLflow settings (used when no tracking URI is given)."""
        from codedance_core.config import load_profile

        return load_profile(self.profile, self.overrides).tracking


@flow(name="mini-codedance", log_prints=True)
def mini_experiment(params: MiniParameters | None = None) -> dict:
    """Run (or resume) Mini-CodeDance; returns the claims and where the report is."""
    params = params or MiniParameters()
    config = params.config()
    outcome = run_mini(config, command=f"prefect deployment mini-codedance {params.model_dump_json()}")
    report = outcome.report.read_text() if outcome.report else ""
    create_markdown_artifact(report, key="mini-codedance-report", description="Mini-CodeDance report")
    rows = [{"arm": r["arm"], "seed": r["seed"], "accuracy": r["stats"].get("accuracy")} for r in outcome.results]
    create_table_artifact(rows, key="mini-codedance-arms", description="Accuracy per arm and seed")
    return {"report": str(outcome.report), "seconds": outcome.seconds, "results": len(outcome.results)}


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the Mini-CodeDance experiment flow.")
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", default="docs/mini-codedance")
    args = parser.parse_args()
    mini_experiment(MiniParameters(profile=args.profile, overrides=args.overrides, seeds=args.seeds,
                                   smoke=args.smoke, out_dir=args.out))


if __name__ == "__main__":
    main()
