"""Accuracy with its interval, avg@k, and failures kept in every denominator."""

from __future__ import annotations

import pytest

from codedance_core.evaluation.stats import accuracy_summary, bootstrap_interval, run_stats, wilson_interval


def row(item: str, acc: float, sample: int = 0, status: str = "scored", **extra) -> dict:
    return {
        "item_id": item,
        "sample_index": sample,
        "acc": acc,
        "status": status,
        "turns": 2,
        "tool_calls": 1,
        "tool_successes": 1,
        **extra,
    }


def test_wilson_matches_the_textbook_values() -> None:
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 20) == pytest.approx((0.0, 0.1611), abs=1e-4)  # never below 0
    assert wilson_interval(191, 191)[1] == 1.0 and wilson_interval(191, 191)[0] > 0.98
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_bootstrap_brackets_the_mean_and_is_reproducible() -> None:
    values = [0.0, 1.0] * 50
    low, high = bootstrap_interval(values, resamples=1000)
    assert low < 0.5 < high and high - low < 0.25
    assert bootstrap_interval(values, resamples=1000) == (low, high)


def test_one_sample_uses_wilson_and_k_samples_use_an_item_bootstrap() -> None:
    single = accuracy_summary([row("a", 1.0), row("b", 0.0), row("c", 1.0)])
    assert single["ci_method"] == "wilson" and single["accuracy"] == pytest.approx(2 / 3)
    assert single["accuracy_ci95"] == pytest.approx(list(wilson_interval(2, 3)))
    rows = [row("a", 1.0, 0), row("a", 0.0, 1), row("b", 1.0, 0), row("b", 1.0, 1)]
    several = accuracy_summary(rows, resamples=500)
    assert several["ci_method"].startswith("bootstrap") and several["items"] == 2
    assert several["avg@2"] == pytest.approx(0.75) and several["pass@2"] == 1.0


def test_failures_count_as_wrong_in_every_denominator() -> None:
    rows = [
        row("a", 1.0),
        row("b", 0.0, status="rollout_error", tool_calls=0, tool_successes=0, turns=0),
        row("c", 0.0, status="judge_error"),
        row("d", 1.0, tool_calls=2, tool_successes=1, judge_score=1.0),
    ]
    stats = run_stats(rows)
    assert stats["items"] == 4 and stats["accuracy"] == 0.5
    assert stats["failures"] == 2 and stats["statuses"] == {"scored": 2, "rollout_error": 1, "judge_error": 1}
    assert stats["tool_call_rate"] == 0.75 and stats["code_success_rate"] == pytest.approx(3 / 4)
    assert stats["judge_score"] == 1.0 and stats["judged_trajectories"] == 1
    assert stats["turns"] == pytest.approx(6 / 4)


def test_accuracy_is_broken_down_by_data_source() -> None:
    rows = [row("a", 1.0, data_source="chart"), row("b", 0.0, data_source="count")]
    by_source = run_stats(rows)["by_data_source"]
    assert by_source["chart"]["accuracy"] == 1.0 and by_source["count"]["items"] == 1


def test_plot_survives_all_wrong_and_all_right_groups(tmp_path) -> None:
    from codedance_core.evaluation.plots import plot_accuracy

    rows = [{"item_id": str(i), "acc": 0.0, "data_source": "a", "tool_calls": 0, "status": "scored"} for i in range(7)]
    rows += [{"item_id": f"b{i}", "acc": 1.0, "data_source": "b", "tool_calls": 1, "status": "scored"} for i in range(3)]
    path = plot_accuracy(rows, tmp_path / "plot.png")
    assert path.stat().st_size > 1000
