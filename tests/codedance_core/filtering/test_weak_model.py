"""The tiny profile's weak model: trained briefly without tools, it passes `direct` items more
often than visual ones, so filtering with it removes more of the former."""

from __future__ import annotations

import pytest

from codedance_core.config.agent import RolloutOverrides
from codedance_core.config.data import SuiteSpec
from codedance_core.data.suite import generate_rows, write_suite
from codedance_core.filtering import FilterConfig, filter_dataset, local_weak_model, train_weak_model
from codedance_core.filtering.weak_model import direct_answer_text

VISUAL = ("suite_count", "suite_search", "suite_chart")


def test_the_weak_model_target_is_a_direct_answer() -> None:
    assert direct_answer_text("blue").endswith("<answer>blue</answer>")
    with pytest.raises(ValueError, match="at least one"):
        train_weak_model([], "unused")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_filtering_with_the_trained_weak_model_drops_more_direct_items_than_visual_ones(tmp_path) -> None:
    # Direct-heavy training data: a mixed suite plus direct items, three quarters of each batch direct.
    rows = list(generate_rows(SuiteSpec(n=150, seed=1, difficulty="easy")))
    rows += list(generate_rows(SuiteSpec(n=450, seed=3, families=["direct"], difficulty="easy")))
    weak_dir = train_weak_model(rows, tmp_path / "weak", steps=250, direct_share=0.75)
    candidates = str(tmp_path / "candidates.parquet")
    # 30 candidates a family: with 12, one item moved a family's drop rate by 0.08 and the comparison was noise.
    write_suite(SuiteSpec(n=150, seed=2, difficulty="easy"), candidates)

    rollout = RolloutOverrides(max_turns=1, max_new_tokens=32)  # no tools: one turn
    config = FilterConfig(k=8, rollout=rollout, trivial_threshold=0.75, hard_max_pass_rate=0.25)
    result = filter_dataset(
        candidates, str(tmp_path / "kept.parquet"), local_weak_model(weak_dir, device="cpu"), config,
        work_root=str(tmp_path / "work"),
    )
    by_source = result.report.to_dict()["by_source"]
    dropped = {source: row["trivial"] / row["rows"] for source, row in by_source.items()}
    assert dropped["suite_direct"] > max(dropped[source] for source in VISUAL), by_source
    # The weak model passes direct items more often than counting and chart items. Not more often
    # than `search` ones (measured 0.44 vs 0.49): their yes/no and colour questions are guessed
    # from the text about half the time, but rarely 6 times in 8, so few of them are dropped.
    direct_rate = by_source["suite_direct"]["mean_pass_rate"]
    assert direct_rate > max(by_source[source]["mean_pass_rate"] for source in ("suite_count", "suite_chart")), by_source
