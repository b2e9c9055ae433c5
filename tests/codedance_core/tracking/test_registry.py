"""The model registry on SQLite: challenger on registration, champion only when better."""

from __future__ import annotations

from pathlib import Path

from codedance_core.tracking import (
    CHALLENGER,
    CHAMPION,
    RunTracker,
    promote_if_better,
    register_checkpoint,
    version_for_alias,
)


def test_register_then_promote_only_when_better(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = RunTracker.start(uri, "exp", "rl")
    v1 = register_checkpoint(uri, "codedance-tiny", "file:///store/ckpt/1", run.run_id)
    assert version_for_alias(uri, "codedance-tiny", CHALLENGER) == v1
    assert version_for_alias(uri, "codedance-tiny", CHAMPION) is None
    assert promote_if_better(uri, "codedance-tiny", v1, score=0.4, champion_score=None)
    v2 = register_checkpoint(uri, "codedance-tiny", "file:///store/ckpt/2", run.run_id)
    assert not promote_if_better(uri, "codedance-tiny", v2, score=0.3, champion_score=0.4)
    assert version_for_alias(uri, "codedance-tiny", CHAMPION) == v1
    assert promote_if_better(uri, "codedance-tiny", v2, score=0.5, champion_score=0.4)
    assert version_for_alias(uri, "codedance-tiny", CHAMPION) == v2
    assert version_for_alias(uri, "no-such-model", CHAMPION) is None
