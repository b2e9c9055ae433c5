"""Stage results: typed records a flow's table describes, and the score promotion reads."""

from __future__ import annotations

import pytest

from codedance_core.stages.results import Evaluation, Promotion, TrainedModel, describe
from codedance_core.storage import ArtifactRef

REF = ArtifactRef(uri="/store/models/sft", digest="sha256:" + "ab" * 32, size=3, rows=None)


def test_each_result_has_a_one_line_description() -> None:
    assert describe(REF) == "/store/models/sft (abababababab)"
    assert describe(TrainedModel(model=REF, steps=8)).endswith("8 steps")
    evaluation = Evaluation(label="sft", model=REF, benchmark=REF, stats={"accuracy": 0.25, "items": 4}, results=REF)
    assert describe(evaluation).startswith("accuracy 0.250 on 4 items")
    kept = Promotion(name="m", version="2", score=0.3, champion="1", champion_score=0.4, promoted=False, reason="worse")
    assert describe(kept) == "m v2 score 0.300: not promoted (worse)"


def test_an_evaluation_scores_only_numeric_stats() -> None:
    evaluation = Evaluation(label="sft", model=REF, benchmark=REF, stats={"accuracy": 0.5, "model": "x"}, results=REF)
    assert evaluation.score("accuracy") == 0.5
    with pytest.raises(KeyError, match="no numeric 'model'"):
        evaluation.score("model")
