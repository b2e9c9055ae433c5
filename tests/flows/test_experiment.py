"""Mini-CodeDance end to end, in its smoke size, as `codedance experiment mini` runs it: a Prefect flow
over the lifecycle's stages, every arm trained, evaluated, reported and logged; a rerun is all cache.

A few minutes on 2 cores: the real tiny model, suite, synthesis (sandbox with isolation on), SFT,
GRPO and evaluation, only small. The numbers mean nothing at this size; the test checks the machinery.
"""

from __future__ import annotations

import json
from pathlib import Path

from mlflow import MlflowClient
from typer.testing import CliRunner

from codedance_core.cli.experiment import app
from codedance_core.experiments.mini import ARMS
from codedance_core.experiments.results import result_path
from flows.experiment import MiniParameters, mini_experiment
from tests.flows.test_lifecycle import task_states


def test_smoke(prefect_server, tmp_path: Path) -> None:
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["mini", "--smoke", "--out", str(tmp_path / "out"), "--store", str(tmp_path / "store"),
            "--tracking-uri", tracking, "--artifact-root", str(tmp_path / "mlartifacts"), "--json"]
    outcome = CliRunner().invoke(app, args)
    assert outcome.exit_code == 0, outcome.output
    printed = json.loads(outcome.stdout.strip().splitlines()[-1])
    assert set(printed["arms"]) == set(ARMS)
    assert {claim["verdict"] for claim in printed["claims"]} <= {"holds", "inconclusive", "does not hold"}

    for arm in ARMS:
        saved = json.loads(result_path(tmp_path / "out", arm, 0).read_text())
        assert saved["families"]["all"]["items"] == 10
        assert {"count", "search", "chart", "math", "direct", "visual"} <= saved["families"].keys()
        assert len(saved["items"]) == 10
        assert bool(saved["rl_training"]) is (ARMS[arm].sft_data is None)
        if ARMS[arm].sft_data is None:  # held out during RL: the test split, before training and after its step
            heldout = [point for point in saved["rl_training"] if "heldout/accuracy" in point]
            assert [point["step"] for point in heldout] == [0, 1]
    report = (tmp_path / "out" / "README.md").read_text()
    assert "codedance experiment mini --smoke" in report and "transformers" in report
    # The base model's pretraining checked the copy probe (once, at its 5th and last text step).
    assert "## Base model: copy probe" in report and "| 5 |" in report and "end, with the image" in report
    assert (tmp_path / "out" / "accuracy_by_family.png").exists() and (tmp_path / "out" / "rl_training.png").exists()

    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("mini-codedance").experiment_id
    [parent] = client.search_runs([experiment], filter_string="tags.`codedance.flow` = 'mini-codedance'")
    children = client.search_runs([experiment], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    results = [child for child in children if child.data.tags["codedance.stage"] == "result"]
    assert len(results) == len(ARMS) and all("all.accuracy" in child.data.metrics for child in results)
    stages = {child.data.tags["codedance.stage"] for child in children}
    assert {"base-model", "synthesize", "sft", "rl-round-1", "evaluate-tool_sft"} <= stages
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"README.md", "plots"}

    # A rerun trains nothing: every stage is a cache hit, and the results are the same.
    first = {arm: json.loads(result_path(tmp_path / "out", arm, 0).read_text())["stats"] for arm in ARMS}
    params = MiniParameters(smoke=True, out_dir=str(tmp_path / "out"), store_root=str(tmp_path / "store"),
                            tracking_uri=tracking, artifact_root=str(tmp_path / "mlartifacts"))
    rerun = mini_experiment(params, command="rerun", return_state=True)
    assert {result["arm"]: result["stats"] for result in rerun.result()["results"]} == first
    assert set(task_states(rerun.state_details.flow_run_id).values()) == {"Cached"}
