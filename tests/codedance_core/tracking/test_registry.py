"""The model registry on SQLite: challenger on registration, champion only when better on the same data."""

from __future__ import annotations

from pathlib import Path

from codedance_core.tracking import (
    CHALLENGER,
    CHAMPION,
    RunTracker,
    promote_if_better,
    record_score,
    register_checkpoint,
    version_for_alias,
)


def test_register_then_promote_only_when_better_on_the_same_benchmark(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = RunTracker.start(uri, "exp", "rl")
    v1 = register_checkpoint(uri, "codedance-tiny", "file:///store/ckpt/1", run.run_id)
    assert version_for_alias(uri, "codedance-tiny", CHALLENGER) == v1
    assert version_for_alias(uri, "codedance-tiny", CHAMPION) is None
    assert not promote_if_better(uri, "codedance-tiny", v1, "accuracy").promoted  # no score recorded yet
    record_score(uri, "codedance-tiny", v1, "accuracy", 0.4, "sha256:suite")
    assert promote_if_better(uri, "codedance-tiny", v1, "accuracy").promoted

    v2 = register_checkpoint(uri, "codedance-tiny", "file:///store/ckpt/2", run.run_id)
    record_score(uri, "codedance-tiny", v2, "accuracy", 0.3, "sha256:suite")
    assert not promote_if_better(uri, "codedance-tiny", v2, "accuracy").promoted
    record_score(uri, "codedance-tiny", v2, "accuracy", 0.5, "sha256:other")
    decision = promote_if_better(uri, "codedance-tiny", v2, "accuracy")
    assert not decision.promoted and "other data" in decision.reason
    assert version_for_alias(uri, "codedance-tiny", CHAMPION) == v1
    record_score(uri, "codedance-tiny", v2, "accuracy", 0.5, "sha256:suite")
    decision = promote_if_better(uri, "codedance-tiny", v2, "accuracy")
    assert decision.promoted and (decision.champion, decision.champion_score) == (v1, 0.4)
    assert version_for_alias(uri, "codedance-tiny", CHAMPION) == v2
    assert version_for_alias(uri, "no-such-model", CHAMPION) is None
