"""Mini-CodeDance end to end, in its smoke size: five arms trained, evaluated, reported, logged, resumable.

About 1-2 minutes on 2 cores: the real tiny model, suite, synthesis (sandbox with isolation on),
SFT, GRPO and evaluation, only small. The numbers mean nothing at this size; the test checks the
machinery: every arm x seed result, the report, MLflow's parent and children, and that a rerun
reuses the saved results instead of training again.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from codedance_core.cli.experiment import app
from codedance_core.experiments.mini import ARMS, MiniConfig, SeedRunner, run_mini
from codedance_core.experiments.results import result_path
from codedance_core.tracking.runs import source_commit

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def test_smoke(tmp_path: Path) -> None:
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["mini", "--smoke", "--out", str(tmp_path / "out"), "--work-dir", str(tmp_path / "work"),
            "--tracking-uri", tracking, "--artifact-root", str(tmp_path / "mlartifacts"), "--json"]
    outcome = CliRunner().invoke(app, args)
    assert outcome.exit_code == 0, outcome.output
    assert "[seed 0] tool_sft: SFT" in outcome.output  # progress lines keep their seed
    printed = json.loads(outcome.stdout.strip().splitlines()[-1])
    assert set(printed["arms"]) == set(ARMS)
    assert {claim["verdict"] for claim in printed["claims"]} <= {"holds", "inconclusive", "does not hold"}

    for arm in ARMS:
        saved = json.loads(result_path(tmp_path / "out", arm, 0).read_text())
        assert saved["families"]["all"]["items"] == 10
        assert {"count", "search", "chart", "math", "direct", "visual"} <= saved["families"].keys()
        assert len(saved["items"]) == 10
    report = (tmp_path / "out" / "README.md").read_text()
    assert "codedance experiment mini --smoke" in report and "transformers" in report
    # The base model's pretraining checked the copy probe (once, at its 5th and last text step).
    assert "## Base model: copy probe" in report and "| 5 |" in report and "end, with the image" in report
    assert (tmp_path / "out" / "accuracy_by_family.png").exists()

    client = MlflowClient(tracking)
    parent = client.search_runs([client.get_experiment_by_name("mini-codedance").experiment_id],
                                filter_string="tags.`codedance.flow` = 'mini-codedance'")[0]
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert len(children) == len(ARMS)
    assert all("all.accuracy" in child.data.metrics for child in children)
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"README.md", "plots"}
    assert (tmp_path / "mlartifacts").is_dir()

    # A rerun trains nothing: every (arm, seed) result is reused.
    started = time.perf_counter()
    lines: list[str] = []
    config = MiniConfig(smoke=True, seeds=[0], out_dir=str(tmp_path / "out"), work_dir=str(tmp_path / "work"), corpus_rows=60)
    rerun = run_mini(config, command="rerun", log=lines.append)
    assert len(rerun.results) == len(ARMS)
    assert all("reusing" in line for line in lines)
    assert time.perf_counter() - started < 30


def test_unknown_arms_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown arms"):
        MiniConfig(arms=["tool_sft", "magic"])


def test_a_different_config_does_not_reuse_results(tmp_path: Path) -> None:
    small = MiniConfig(smoke=True, out_dir=str(tmp_path))
    larger = MiniConfig(smoke=True, out_dir=str(tmp_path), overrides=["grpo.max_steps=3"])
    assert small.experiment_digest() != larger.experiment_digest()
    assert MiniConfig(smoke=True, seeds=[0, 1]).experiment_digest() == small.experiment_digest()


def test_a_result_made_by_other_code_is_reused_with_a_warning(tmp_path: Path) -> None:
    config = MiniConfig(smoke=True, seeds=[0], out_dir=str(tmp_path / "out"), work_dir=str(tmp_path / "work"))
    digest = config.experiment_digest()
    path = result_path(tmp_path / "out", "text_sft", 0)
    path.parent.mkdir(parents=True)
    lines: list[str] = []
    runner = SeedRunner(config, 0, digest, lines.append)
    for commit, warned in (("0123abc", True), (source_commit(), False)):
        path.write_text(json.dumps({"arm": "text_sft", "seed": 0, "config_digest": digest, "commit": commit}))
        assert runner.result(ARMS["text_sft"])["commit"] == commit
        assert ("made at commit 0123abc" in lines[-1]) is warned and "reusing" in lines[-1]
