"""The lifecycle as people run it: a deployment triggered through the Prefect API, executed by a
process worker, its heavy stages on a two-node Ray cluster, tracked in an MLflow server, its
artifacts in S3. Then: lineage read back from MLflow, artifacts listed in the bucket, a rerun that
is all cache hits, and the two UIs rendered in headless Chromium.

Slow (minutes): the whole tiny lifecycle runs for real.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from dataclasses import dataclass

import httpx
import pytest
from mlflow import MlflowClient
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.deployments import run_deployment

from codedance_core.storage import ArtifactStore
from codedance_core.tracking import CHALLENGER, RunTracker
from tests.conftest import require_executable
from tests.integration.conftest import MlflowServer, PrefectServer, RayCluster, S3Bucket, Worker

pytestmark = pytest.mark.slow

# The stages that run as Ray tasks; SFT and RL run two Ray Train workers each (see the overrides).
RAY_TASK_STAGES = {"base-model", "suite", "validate", "weak-model", "filter", "synthesize", "evaluate"}


@dataclass
class LifecycleRun:
    flow_run_id: str
    overrides: list[str]
    experiment: str
    store_root: str


def lifecycle_overrides(bucket: S3Bucket, mlflow: MlflowServer, experiment: str) -> list[str]:
    return [
        f"store.root=s3://{bucket.name}/store",
        f"tracking.tracking_uri={mlflow.url}",
        f"tracking.artifact_root={mlflow.artifact_root}",
        f"tracking.experiment={experiment}",
        "data.train_size=20",
        "data.test_size=10",
        "tiny_model.vocab_size=1200",
        "sft.epochs=1",
        "grpo.max_steps=2",
        "grpo.prompts_per_step=2",
        "grpo.samples_per_prompt=2",
        "filter.k=2",
        "filter.rollout.max_turns=1",
        "filter.rollout.max_new_tokens=32",
        "filter.weak_train_steps=20",
        "evaluation.rollout.max_new_tokens=512",  # a one-epoch model writes noise to the limit
        "rollout.max_new_tokens=512",
        # Two training workers in each training stage, on the cluster's one-CPU worker node.
        "sft.num_workers=2",
        "sft.cpus_per_worker=0.5",
        "grpo.num_workers=2",
        "grpo.cpus_per_worker=0.5",
    ]


def run_lifecycle(overrides: list[str]):
    """Trigger the `lifecycle/lifecycle` deployment through the API and wait for its end."""
    params = {"params": {"profile": "tiny", "overrides": overrides, "rl_rounds": 1}}
    return run_deployment("lifecycle/lifecycle", parameters=params, timeout=900, poll_interval=2)


def task_states(flow_run_id) -> dict[str, str]:
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.name: run.state.name for run in runs}


@pytest.fixture(scope="module")
def lifecycle_run(prefect_worker: Worker, bucket: S3Bucket, mlflow_server: MlflowServer) -> LifecycleRun:
    experiment = f"it-{uuid.uuid4().hex[:8]}"
    overrides = lifecycle_overrides(bucket, mlflow_server, experiment)
    flow_run = run_lifecycle(overrides)
    assert flow_run.state.is_completed(), f"{flow_run.state}\n{prefect_worker.service.tail(6000)}"
    return LifecycleRun(str(flow_run.id), overrides, experiment, f"s3://{bucket.name}/store")


def test_the_deployment_runs_every_stage(lifecycle_run: LifecycleRun, prefect_worker: Worker) -> None:
    assert "lifecycle" in prefect_worker.deploy_output
    states = task_states(lifecycle_run.flow_run_id)
    assert set(states.values()) == {"Completed"}
    assert any(name.startswith("train_rl") for name in states)


def test_heavy_stages_ran_on_the_worker_node(lifecycle_run: LifecycleRun, ray_cluster: RayCluster) -> None:
    from ray.util.state import list_actors, list_tasks

    finished = list_tasks(address=ray_cluster.dashboard_url, filters=[("state", "=", "FINISHED")], limit=1000)
    nodes = {task.name: task.node_id for task in finished if task.name in RAY_TASK_STAGES}
    assert set(nodes) == RAY_TASK_STAGES
    assert set(nodes.values()) == {ray_cluster.worker_node_id}
    # SFT and RL: a Ray Train run of two workers each, on the worker node.
    trainers = list_actors(address=ray_cluster.dashboard_url, filters=[("class_name", "=", "RayTrainWorker")],
                           limit=1000)
    assert len(trainers) >= 4 and {actor.node_id for actor in trainers} == {ray_cluster.worker_node_id}


def test_every_rank_of_the_training_stages_logged_to_mlflow(
    lifecycle_run: LifecycleRun, mlflow_server: MlflowServer
) -> None:
    client = MlflowClient(mlflow_server.url)
    experiment = client.get_experiment_by_name(lifecycle_run.experiment).experiment_id
    for stage in ("sft", "rl-round-1"):
        [run] = client.search_runs([experiment], filter_string=f"tags.`codedance.stage` = '{stage}'")
        assert {name.split("/", 1)[0] for name in run.data.metrics if name.startswith("rank")} == {"rank0", "rank1"}


def test_lineage_leads_from_the_registered_model_back_to_the_suite_data(
    lifecycle_run: LifecycleRun, mlflow_server: MlflowServer
) -> None:
    client = MlflowClient(mlflow_server.url)
    [registered] = [m for m in client.search_registered_models() if CHALLENGER in m.aliases]
    version = client.get_model_version_by_alias(registered.name, CHALLENGER)
    parent = client.get_run(version.run_id)
    assert parent.data.tags["codedance.flow"] == "lifecycle"

    children = {
        client.get_run(r).info.run_name: RunTracker(mlflow_server.url, r)
        for r in RunTracker(mlflow_server.url, parent.info.run_id).children()
    }
    assert {
        "base-model",
        "suite-train",
        "suite-test",
        "filter",
        "synthesize",
        "sft",
        "rl-round-1",
        "evaluate-sft",
        "evaluate-rl-1",
    } <= set(children)

    def datasets(stage: str, context: str) -> dict[str, dict]:
        return {d["name"]: d for d in children[stage].datasets() if d["context"] == context}

    # The suite's train split, digested in the store, is what filtering read; its kept rows are
    # what synthesis and RL read...
    suite = ArtifactStore(lifecycle_run.store_root).ref("data/suite/0/train.parquet")
    assert suite is not None
    suite_digest = suite.digest.split(":", 1)[-1][:36]
    assert datasets("suite-train", "output")["suite-train"]["digest"] == suite_digest
    assert datasets("filter", "input")["rl-rows"]["digest"] == suite_digest
    kept_digest = datasets("filter", "output")["filtered-rows"]["digest"]
    assert datasets("synthesize", "input")["rl-rows"]["digest"] == kept_digest
    assert datasets("rl-round-1", "input")["rl-data"]["digest"] == kept_digest
    # ...synthesis wrote what SFT trained on, SFT made the policy RL started from...
    assert (
        datasets("sft", "input")["sft-data"]["digest"]
        == datasets("synthesize", "output")["sft-rows"]["digest"]
    )
    assert (
        datasets("rl-round-1", "input")["policy"]["digest"]
        == datasets("sft", "output")["sft-model"]["digest"]
    )
    # ...and RL's output is the registered model.
    rl_model = datasets("rl-round-1", "output")["rl-model"]
    assert json.loads(rl_model["source"])["uri"] == version.source
    assert version.tags["digest"].split(":", 1)[-1].startswith(rl_model["digest"])


def test_artifacts_are_in_s3(
    lifecycle_run: LifecycleRun, bucket: S3Bucket, mlflow_server: MlflowServer
) -> None:
    keys = bucket.keys()
    store = [k for k in keys if k.startswith("store/")]
    # An artifact is its manifest and the version it names (the plain key holds nothing on S3).
    assert "store/data/suite/0/train.parquet.manifest.json" in store
    assert any(k.startswith("store/data/suite/0/train.parquet.versions/") for k in store)
    for folder in ("store/models/sft-", "store/models/rl-1-", "store/eval/sft-", "store/prefect-results/"):
        assert any(k.startswith(folder) for k in store), folder
    # MLflow's artifacts too: the parent run's profile and the evaluation viewer.
    mlartifacts = [k for k in keys if k.startswith("mlartifacts/")]
    assert any(k.endswith("config/profile.yaml") for k in mlartifacts)
    assert any("/evaluation/" in k for k in mlartifacts)


def test_a_rerun_is_all_cache_hits(lifecycle_run: LifecycleRun) -> None:
    rerun = run_lifecycle(lifecycle_run.overrides)
    assert rerun.state.is_completed()
    states = task_states(rerun.id)
    # Registration is an action, not a result: it runs again (a new version) every time.
    stages = {name: state for name, state in states.items() if not name.startswith("register_and_promote")}
    assert len(stages) == len(task_states(lifecycle_run.flow_run_id)) - 1
    assert set(stages.values()) == {"Cached"}


# -- the UIs, rendered by a real browser -----------------------------------------------------------
def rendered(url: str) -> str:
    """The DOM of `url` after its scripts ran, from headless Chromium."""
    chromium = require_executable("chromium")
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--virtual-time-budget=15000",
            "--dump-dom",
            url,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def served(url: str) -> str:
    """The page as the server sends it, before any script ran."""
    return httpx.get(url.split("#", 1)[0], timeout=30).text


def test_the_prefect_ui_lists_the_deployments(
    lifecycle_run: LifecycleRun, prefect_api: PrefectServer
) -> None:
    url = f"{prefect_api.ui_url}/deployments"
    page, static = rendered(url), served(url)
    for name in ("lifecycle", "weekly-retrain", "evaluate-checkpoint"):
        assert name in page and name not in static, name


def test_the_mlflow_ui_shows_the_lifecycle_run_and_its_stages(
    lifecycle_run: LifecycleRun, mlflow_server: MlflowServer
) -> None:
    client = MlflowClient(mlflow_server.url)
    experiment = client.get_experiment_by_name(lifecycle_run.experiment)
    [parent] = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.`codedance.flow` = 'lifecycle'",
        order_by=["attributes.start_time ASC"],
        max_results=1,
    )
    url = f"{mlflow_server.url}/#/experiments/{experiment.experiment_id}/runs/{parent.info.run_id}"
    page, static = rendered(url), served(url)
    child_names = [
        client.get_run(r).info.run_name for r in RunTracker(mlflow_server.url, parent.info.run_id).children()
    ]
    assert len(child_names) >= 8
    for name in ["lifecycle", *child_names]:
        assert name in page and name not in static, name
