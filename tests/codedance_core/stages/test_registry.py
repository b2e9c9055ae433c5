"""Registration and promotion: a challenger becomes champion only by beating it on the same benchmark."""

from __future__ import annotations

from mlflow import MlflowClient

from codedance_core.stages import StageContext, register_and_promote
from codedance_core.stages.results import Evaluation
from codedance_core.storage import ArtifactRef
from codedance_core.tracking import CHAMPION, RunTracker, version_for_alias

SUITE = ArtifactRef(uri="/store/test.parquet", digest="sha256:" + "1" * 64, size=1, rows=10)
OTHER = ArtifactRef(uri="/store/other.parquet", digest="sha256:" + "2" * 64, size=1, rows=10)


def evaluation(label: str, accuracy: float, benchmark: ArtifactRef = SUITE) -> Evaluation:
    model = ArtifactRef(uri=f"/store/models/{label}", digest="sha256:" + label.encode().hex().ljust(64, "0"), size=1)
    results = ArtifactRef(uri=f"/store/eval/{label}", digest="sha256:" + "9" * 64, size=1)
    return Evaluation(label=label, model=model, benchmark=benchmark, stats={"accuracy": accuracy}, results=results)


def test_promotion_needs_a_better_score_on_the_same_benchmark(ctx: StageContext) -> None:
    parent = RunTracker.start(ctx.tracking.tracking_uri, "stages", "lifecycle")
    ctx = StageContext(ctx.store_root, ctx.tracking.model_copy(update={"parent_run_id": parent.run_id}))
    uri = ctx.tracking.tracking_uri

    first = register_and_promote(evaluation("a", 0.4), "codedance", "accuracy", "tiny", ctx)
    assert first.promoted and first.reason == "there was no champion"
    worse = register_and_promote(evaluation("b", 0.3), "codedance", "accuracy", "tiny", ctx)
    assert not worse.promoted and "does not beat" in worse.reason
    elsewhere = register_and_promote(evaluation("c", 0.9, OTHER), "codedance", "accuracy", "tiny", ctx)
    assert not elsewhere.promoted and "other data" in elsewhere.reason
    assert version_for_alias(uri, "codedance", CHAMPION) == first.version
    better = register_and_promote(evaluation("d", 0.5), "codedance", "accuracy", "tiny", ctx)
    assert better.promoted and better.champion == first.version and better.champion_score == 0.4
    assert version_for_alias(uri, "codedance", CHAMPION) == better.version
    tags = MlflowClient(uri).get_model_version("codedance", elsewhere.version).tags
    assert "other data" in tags["promotion"] and tags["benchmark"] == OTHER.digest
