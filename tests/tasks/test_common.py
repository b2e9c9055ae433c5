"""The one task decorator: a stage's own key is its cache key, locked so concurrent flow runs compute
it once; retries only for faults of the outside world."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from prefect import flow

from codedance_core.stages import StageContext
from codedance_core.stages.faults import is_infrastructure_fault
from codedance_core.stages.keys import stage, stage_key
from tasks.common import artifact_key, configured, stage_task

CALLS: list[int] = []


@stage("slow-square")
def slow_square(value: int, ctx: StageContext) -> int:
    """A stage whose work takes long enough for a second flow run to arrive while it runs."""
    CALLS.append(value)
    ctx.log(f"squaring {value}")
    time.sleep(2)
    return value * value


slow_square_task = stage_task(slow_square)


@flow
def square_flow(value: int, store_root: str) -> int:
    return configured(slow_square_task, store_root)(value, ctx=StageContext(store_root))


@pytest.fixture(scope="module")
def prefect(tmp_path_factory: pytest.TempPathFactory):
    import os

    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


def test_the_cache_key_is_the_stage_key() -> None:
    policy = configured(slow_square_task, "/tmp/store").cache_policy
    ctx = StageContext("/tmp/store")
    key = policy.compute_key(task_ctx=None, inputs={"value": 3, "ctx": ctx}, flow_parameters={})
    assert key == stage_key(slow_square, {"value": 3, "ctx": ctx})
    assert slow_square_task.name == "slow_square"


def test_two_flow_runs_reaching_the_same_stage_at_once_compute_it_once(prefect, tmp_path: Path) -> None:
    CALLS.clear()
    results: list[int] = []
    runs = [threading.Thread(target=lambda: results.append(square_flow(7, str(tmp_path / "store")))) for _ in range(2)]
    for run in runs:
        run.start()
        time.sleep(0.3)
    for run in runs:
        run.join(timeout=120)
    assert results == [49, 49]
    assert CALLS == [7]  # the second run waited for the lock, then read the first one's result
    assert square_flow(7, str(tmp_path / "store")) == 49 and CALLS == [7]
    assert square_flow(8, str(tmp_path / "store")) == 64 and CALLS == [7, 8]


def test_only_faults_of_the_outside_world_are_retried() -> None:
    assert is_infrastructure_fault(ConnectionError("reset by peer"))
    wrapped = RuntimeError("the stage failed")
    wrapped.__cause__ = TimeoutError("read timed out")
    assert is_infrastructure_fault(wrapped)
    assert not is_infrastructure_fault(ValueError("no valid rows"))
    assert not is_infrastructure_fault(KeyError("accuracy"))


def test_artifact_keys_are_what_prefect_accepts() -> None:
    assert artifact_key("eval-rl_bat seed0") == "eval-rl-bat-seed0"
