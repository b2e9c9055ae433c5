"""Filtering end to end with a weak model whose answers are known (see conftest).

Greedy decoding makes each pass rate exactly 0 or 1: gold '7' rows are trivial and dropped,
the others are kept as hard, a row with a broken image is quarantined with its reason.
Generation is counted by a wrapper that delegates to the real HFEngine, to prove that a rerun
reuses the scored shards and that an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import polars as pl
import pytest

from codedance_core.config.agent import RolloutOverrides, RolloutSettings
from codedance_core.engines.base import Completion, GenerationEngine, GenerationRequest, SamplingParams
from codedance_core.filtering import FilterConfig, WeakModel, filter_dataset, local_weak_model

from .conftest import broken_image_row, candidate_row, write_candidates

GREEDY = FilterConfig(k=2, rollout=RolloutOverrides(temperature=0, max_turns=1, max_new_tokens=24), shard_rows=3)


class CountingEngine(GenerationEngine):
    """The real engine, with a count of the requests it was asked to continue."""

    def __init__(self, inner: GenerationEngine) -> None:
        self.inner = inner
        self.requests = 0

    def generate(self, requests: Sequence[GenerationRequest], params: SamplingParams) -> list[Completion]:
        self.requests += len(requests)
        return self.inner.generate(requests, params)


@pytest.fixture
def counting_weak(fixed_answer_model_dir) -> WeakModel:
    weak = local_weak_model(fixed_answer_model_dir, device="cpu")
    return WeakModel(CountingEngine(weak.engine), weak.model_id, weak.bundle)


@pytest.fixture
def candidates(tmp_path) -> str:
    rows = [
        candidate_row(0, "7"),
        candidate_row(1, "8"),
        candidate_row(2, "7", data_source="suite_direct"),
        broken_image_row(3),
        candidate_row(4, "12"),
        candidate_row(5, "7"),
        candidate_row(6, "3", data_source="suite_direct"),
    ]
    return write_candidates(tmp_path / "rl.parquet", rows)


def test_known_pass_rates_give_the_right_buckets(candidates, counting_weak, tmp_path) -> None:
    out = str(tmp_path / "filtered.parquet")
    result = filter_dataset(
        candidates, out, counting_weak, GREEDY, work_root=str(tmp_path / "work"), report_dir=str(tmp_path / "report")
    )
    kept = pl.read_parquet(out)
    assert kept["extra_info"].struct.field("index").to_list() == [1, 4, 6]
    assert kept["pass_rate"].to_list() == [0.0, 0.0, 0.0]
    assert kept["bucket"].to_list() == ["hard", "hard", "hard"]
    assert [json.loads(a) for a in kept["weak_answers"]] == [["7", "7"]] * 3
    # Every input column is kept as it was.
    original = pl.read_parquet(candidates)
    assert kept.columns == original.columns + ["pass_rate", "bucket", "weak_answers"]
    assert kept["prompt"].to_list() == original["prompt"].to_list()[:3]

    quarantined = pl.read_parquet(result.quarantine.uri)
    assert quarantined["extra_info"].struct.field("index").to_list() == [3]
    assert quarantined["reason"][0].startswith("ImageDecodeError") or "image" in quarantined["reason"][0].lower()

    report = json.loads((tmp_path / "report" / "filter_report.json").read_text())
    assert report["by_source"]["suite_count"] | {"histogram": None} == report["by_source"]["suite_count"] | {
        "rows": 5, "kept": 2, "trivial": 2, "hard": 2, "medium": 0, "quarantined": 1, "histogram": None,
    }
    assert report["by_source"]["suite_direct"]["histogram"] == [1, 0, 1]
    assert report["total"]["rows"] == 7
    assert (tmp_path / "report" / "filter_pass_rates.png").read_bytes()[:4] == b"\x89PNG"
    assert "| suite_direct | 2 | 1 |" in (tmp_path / "report" / "filter_report.md").read_text()


def test_a_rerun_reuses_every_scored_shard(candidates, counting_weak, tmp_path) -> None:
    work = str(tmp_path / "work")
    first = filter_dataset(candidates, str(tmp_path / "a.parquet"), counting_weak, GREEDY, work_root=work)
    generated = counting_weak.engine.requests
    assert generated == 6 * GREEDY.k and (first.shards_scored, first.shards_reused) == (3, 0)

    second = filter_dataset(candidates, str(tmp_path / "b.parquet"), counting_weak, GREEDY, work_root=work)
    assert counting_weak.engine.requests == generated  # nothing generated the second time
    assert (second.shards_scored, second.shards_reused) == (0, 3)
    assert pl.read_parquet(tmp_path / "b.parquet").equals(pl.read_parquet(tmp_path / "a.parquet"))

    # Other bucket edges reuse the scores; another sampling config does not.
    edges = GREEDY.model_copy(update={"trivial_threshold": 0.9})
    assert filter_dataset(candidates, str(tmp_path / "c.parquet"), counting_weak, edges, work_root=work).shards_reused == 3
    other = GREEDY.model_copy(update={"k": 1})
    assert filter_dataset(candidates, str(tmp_path / "d.parquet"), counting_weak, other, work_root=work).shards_scored == 3

    # An inherited loop setting counts as much as the filter's own; one the filter overrides does not.
    def run(name: str, inherited: RolloutSettings):
        out = str(tmp_path / name)
        return filter_dataset(candidates, out, counting_weak, GREEDY, work_root=work, rollout=inherited)

    assert run("e.parquet", RolloutSettings(max_new_tokens=999)).shards_reused == 3
    assert run("f.parquet", RolloutSettings(observation_max_chars=1000)).shards_scored == 3


def test_an_interrupted_run_resumes_at_the_next_unscored_shard(candidates, counting_weak, tmp_path) -> None:
    work = str(tmp_path / "work")

    def killed_after_first_shard(shard_index: int, rows: int, reused: bool) -> None:
        raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        filter_dataset(
            candidates, str(tmp_path / "out.parquet"), counting_weak, GREEDY, work_root=work,
            on_shard=killed_after_first_shard,
        )
    assert counting_weak.engine.requests == 3 * GREEDY.k
    assert not (tmp_path / "out.parquet").exists()

    resumed = filter_dataset(candidates, str(tmp_path / "out.parquet"), counting_weak, GREEDY, work_root=work)
    assert (resumed.shards_scored, resumed.shards_reused) == (2, 1)
    assert counting_weak.engine.requests == 6 * GREEDY.k  # the 6 readable rows, each answered k times once
    assert pl.read_parquet(tmp_path / "out.parquet").height == 3


def test_bucket_edges_split_medium_from_hard() -> None:
    from codedance_core.filtering import bucket_for

    config = FilterConfig(trivial_threshold=0.875, hard_max_pass_rate=0.25)
    assert [bucket_for(rate, config) for rate in (0.0, 0.25, 0.375, 0.75, 0.875, 1.0)] == [
        "hard", "hard", "medium", "medium", "trivial", "trivial"
    ]
    with pytest.raises(ValueError, match="hard_max_pass_rate"):
        FilterConfig(trivial_threshold=0.5, hard_max_pass_rate=0.5)


def test_the_weak_model_can_be_an_endpoint(candidates, fixed_answer_model_dir, tmp_path) -> None:
    """The same filter through `codedance serve` (the tiny model over HTTP) gives the same rows."""
    from codedance_core.filtering import endpoint_weak_model
    from codedance_core.models.images import pixel_bounds
    from codedance_core.serve import ServerThread, create_app

    local = local_weak_model(fixed_answer_model_dir, device="cpu")
    low, high = pixel_bounds(local.bundle.image_processor)
    config = GREEDY.model_copy(update={"min_pixels": low, "max_pixels": high})
    with ServerThread(create_app(local.bundle, "weak")) as base_url:
        weak = endpoint_weak_model(base_url, "weak")
        result = filter_dataset(candidates, str(tmp_path / "http.parquet"), weak, config, work_root=str(tmp_path / "w"))
        weak.engine.close()
    kept = pl.read_parquet(result.output.uri)
    assert kept["extra_info"].struct.field("index").to_list() == [1, 4, 6]
    assert kept["bucket"].to_list() == ["hard"] * 3
    assert result.quarantine is not None and result.quarantine.rows == 1
