"""The lifecycle flow against a real Prefect server: it runs, logs lineage, and reruns from cache."""

from __future__ import annotations

from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from codedance_core.config import load_profile
from codedance_core.storage import ArtifactStore
from codedance_core.tracking import RunTracker
from flows.common import LifecycleParameters
from flows.lifecycle import lifecycle


def task_states(flow_run_id) -> dict[str, str]:
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.name: run.state.name for run in runs}


def test_lifecycle_runs_logs_lineage_then_reruns_from_cache(prefect_server, tiny_overrides) -> None:
    params = LifecycleParameters(profile="tiny", overrides=tiny_overrides)
    first = lifecycle(params, return_state=True)
    assert first.is_completed()
    outputs = first.result()
    assert outputs["train"].rows == 20 and outputs["test"].rows == 10
    assert set(task_states(first.state_details.flow_run_id).values()) == {"Completed"}
    check_lineage(tiny_overrides)

    second = lifecycle(params, return_state=True)
    assert second.is_completed()
    assert set(task_states(second.state_details.flow_run_id).values()) == {"Cached"}
    assert second.result() == outputs


def check_lineage(tiny_overrides: list[str]) -> None:
    from mlflow import MlflowClient

    profile = load_profile("tiny", tiny_overrides)
    client = MlflowClient(profile.tracking.tracking_uri)
    experiment = client.get_experiment_by_name(profile.tracking.experiment)
    [parent] = client.search_runs([experiment.experiment_id], filter_string="tags.`codedance.flow` = 'lifecycle'")
    children = RunTracker(profile.tracking.tracking_uri, parent.info.run_id).children()
    names = sorted(client.get_run(run_id).info.run_name for run_id in children)
    assert names == sorted(["base-model", "suite-train", "suite-test", "filter", "synthesize", "sft", "evaluate-sft",
                            "rl-round-1", "evaluate-rl-1"])
    train_run = next(r for r in children if client.get_run(r).info.run_name == "suite-train")
    [dataset] = RunTracker(profile.tracking.tracking_uri, train_run).datasets()
    assert dataset["context"] == "output" and "train.parquet" in dataset["source"]


def test_a_bad_config_fails_before_any_task(prefect_server, tiny_overrides) -> None:
    state = lifecycle(LifecycleParameters(profile="tiny", overrides=[*tiny_overrides, "data.bogus=1"]), return_state=True)
    assert state.is_failed()
    assert "data.bogus: unknown key" in str(state.result(raise_on_failure=False))
    assert task_states(state.state_details.flow_run_id) == {}


def test_two_workers_in_each_training_stage_run_under_ray_train(prefect_server, tiny_overrides) -> None:
    overrides = [*tiny_overrides, "sft.num_workers=2", "grpo.num_workers=2"]
    state = lifecycle(LifecycleParameters(profile="tiny", overrides=overrides), return_state=True)
    assert state.is_completed(), state.message

    from mlflow import MlflowClient

    profile = load_profile("tiny", overrides)
    client = MlflowClient(profile.tracking.tracking_uri)
    experiment = client.get_experiment_by_name(profile.tracking.experiment).experiment_id
    [parent] = client.search_runs([experiment], filter_string="tags.`codedance.flow` = 'lifecycle'",
                                  order_by=["attributes.start_time DESC"], max_results=1)
    stages = {client.get_run(run_id).data.tags["codedance.stage"]: client.get_run(run_id)
              for run_id in RunTracker(profile.tracking.tracking_uri, parent.info.run_id).children()}
    # Upstream of SFT nothing changed: this run reused the first one's data, filter and trajectories.
    assert set(stages) == {"sft", "evaluate-sft", "rl-round-1", "evaluate-rl-1"}
    for stage in ("sft", "rl-round-1"):
        ranks = {name.split("/", 1)[0] for name in stages[stage].data.metrics if name.startswith("rank")}
        assert ranks == {"rank0", "rank1"}, (stage, sorted(stages[stage].data.metrics))


def test_the_evaluate_checkpoint_flow_scores_the_challenger_on_the_same_benchmark(prefect_server, tiny_overrides) -> None:
    from mlflow import MlflowClient

    from flows.common import ProfileParameters
    from flows.evaluate import evaluate_checkpoint

    promotion = evaluate_checkpoint(ProfileParameters(profile="tiny", overrides=tiny_overrides))
    profile = load_profile("tiny", tiny_overrides)
    tags = MlflowClient(profile.tracking.tracking_uri).get_model_version(profile.registry_name, promotion.version).tags
    test_split = ArtifactStore(profile.store.root).ref("data/suite/0/test.parquet")
    assert tags["benchmark"] == test_split.digest and float(tags["accuracy"]) == promotion.score
    assert not promotion.promoted and tags["promotion"] == promotion.reason
