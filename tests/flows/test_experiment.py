"""The mini-codedance flow's parameters: the deployment's form turns into the runner's config."""

from __future__ import annotations

from flows.experiment import MiniParameters


def test_smoke_parameters_run_one_seed_with_the_profile_tracking() -> None:
    config = MiniParameters(smoke=True, seeds=3, tracking_uri="sqlite:///x.db").config()
    assert config.seeds == [0] and config.smoke and config.tracking_uri == "sqlite:///x.db"


def test_full_parameters_log_to_the_profile_mlflow_by_default() -> None:
    config = MiniParameters(seeds=3, overrides=["tracking.tracking_uri=sqlite:///elsewhere.db"]).config()
    assert config.seeds == [0, 1, 2]
    assert config.tracking_uri == "sqlite:///elsewhere.db"
