"""A real Prefect server for the flow tests (Prefect's own test harness: a local server on SQLite)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Module-scoped: Prefect's event and result workers bind to the server of the first context
    they run in, so the harness must be gone before another test starts a server of its own."""
    import os

    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield
    import ray

    ray.shutdown()  # the flows started a local Ray in this process; later tests may want another


@pytest.fixture(scope="module")
def tiny_overrides(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Overrides that keep a lifecycle run small and inside a folder of the test module's: the
    module's lifecycle runs share its store, so a later one reruns only what its overrides change."""
    tmp_path = tmp_path_factory.mktemp("lifecycle")
    return [
        f"store.root={tmp_path / 'store'}",
        f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"tracking.artifact_root={tmp_path / 'mlartifacts'}",
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
        # A one-epoch model writes noise to the limit: the profile's 1024 tokens would double the time.
        "evaluation.rollout.max_new_tokens=512",
        "rollout.max_new_tokens=512",
    ]
