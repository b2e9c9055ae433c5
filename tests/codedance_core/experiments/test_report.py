"""The report: pooled per-family numbers, paired verdicts on the claims, the markdown and the plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codedance_core.experiments.report import (
    Comparison,
    aggregate,
    compare,
    family_metrics,
    item_records,
    judge_claims,
    summarise,
    write_report,
)
from codedance_core.experiments.results import rl_training_curve


def records(family: str, correct: int, wrong: int, calls: int = 0, successes: int = 0, first: int = 0) -> list[dict]:
    """`correct` + `wrong` items of one family, each with the same tool use, numbered from `first`."""
    make = lambda i, acc: {"item_id": f"{family}-{first + i}", "family": family, "acc": acc, "tool_calls": calls,
                           "tool_successes": successes, "turns": 1 + calls}
    return [make(i, 1.0) for i in range(correct)] + [make(correct + i, 0.0) for i in range(wrong)]


def result(arm: str, seed: int, items: list[dict]) -> dict:
    return {"arm": arm, "title": arm.replace("_", " "), "seed": seed, "items": items,
            "families": family_metrics(items), "stats": {}}


def test_item_records_keep_what_the_report_needs_and_name_the_family() -> None:
    row = {"item_id": 7, "data_source": "suite_chart", "acc": 1.0, "tool_calls": 2, "tool_successes": 1, "turns": 3,
           "conversation": ["large"]}
    assert item_records([row]) == [
        {"item_id": "7", "family": "chart", "acc": 1.0, "tool_calls": 2, "tool_successes": 1, "turns": 3}
    ]


def test_summarise_counts_tool_use_and_gives_a_wilson_interval() -> None:
    values = summarise(records("count", 3, 1, calls=2, successes=1))
    assert values["items"] == 4 and values["accuracy"] == 0.75
    low, high = values["accuracy_ci95"]
    assert 0.2 < low < 0.75 < high < 1.0
    assert values["tool_calls_per_item"] == 2.0
    assert values["code_success_rate"] == 0.5
    assert values["turns"] == 3.0


def test_family_metrics_groups_visual_families_apart_from_direct() -> None:
    metrics = family_metrics(records("count", 2, 0, calls=1) + records("direct", 0, 2))
    assert metrics["visual"]["items"] == 2 and metrics["visual"]["tool_calls_per_item"] == 1.0
    assert metrics["direct"]["accuracy"] == 0.0 and metrics["direct"]["code_success_rate"] is None
    assert metrics["all"]["items"] == 4
    assert "chart" not in metrics


def test_aggregate_pools_items_over_seeds_and_keeps_each_seed() -> None:
    table = aggregate([result("tool_sft", 0, records("count", 4, 0)), result("tool_sft", 1, records("count", 0, 4))])
    pooled = table["tool_sft"]["groups"]["count"]
    assert pooled["items"] == 8 and pooled["accuracy"] == 0.5
    assert pooled["seed_accuracy"] == {"0": 1.0, "1": 0.0}


def test_compare_pairs_arms_item_by_item_within_each_seed() -> None:
    # Both arms right on the same 30 items and wrong on the same 30; A also right on 6 items that B
    # gets wrong. Two independent intervals would overlap; the paired one finds the difference.
    a = records("count", 36, 30)
    b = records("count", 30, 36)
    results = [result("tool_sft", 0, a), result("text_sft", 0, b)]
    comparison = Comparison("count accuracy", "tool_sft", "text_sft", "count", "accuracy", "higher")
    row = compare(results, comparison)
    assert (row["items"], row["a_better"], row["b_better"]) == (66, 6, 0)
    assert row["difference"] == pytest.approx(6 / 66) and row["ci95"][0] > 0
    assert row["p_value"] == pytest.approx(2 / 64) and row["verdict"] == "holds"
    assert summarise(a)["accuracy_ci95"][0] < summarise(b)["accuracy_ci95"][1]  # the old rule: inconclusive


def test_items_are_matched_by_seed_and_item_id() -> None:
    # The same item ids name different items in each seed's split: seed 1's items must not pair with seed 0's.
    tool = [result("tool_sft", 0, records("count", 10, 0)), result("tool_sft", 1, records("count", 0, 10))]
    text = [result("text_sft", 0, records("count", 0, 10)), result("text_sft", 1, records("count", 0, 10))]
    row = compare([*tool, *text], Comparison("count", "tool_sft", "text_sft", "count", "accuracy", "higher"))
    assert (row["items"], row["a_better"], row["b_better"]) == (20, 10, 0)


def test_claims_refuse_arms_that_answered_different_items() -> None:
    results = [result("tool_sft", 0, records("count", 5, 5)), result("text_sft", 0, records("count", 5, 5)),
               result("text_sft", 1, records("count", 5, 5))]  # text_sft ran a seed that tool_sft did not
    with pytest.raises(ValueError, match="tool_sft and text_sft .* did not answer the same items: 0 only in the first"):
        judge_claims(results)
    twice = [result("tool_sft", 0, records("count", 5, 5)), result("tool_sft", 0, records("count", 5, 5)),
             result("text_sft", 0, records("count", 5, 5))]
    with pytest.raises(ValueError, match="arm tool_sft has item count-0 of seed 0 twice"):
        judge_claims(twice)


def test_claims_are_judged_from_the_numbers() -> None:
    visual_tool = records("count", 40, 0, calls=1, successes=1)
    results = [
        result("text_sft", 0, records("count", 2, 38) + records("direct", 10, 0)),
        result("tool_sft", 0, visual_tool + records("direct", 10, 0)),
        result("rl_bat", 0, visual_tool + records("direct", 10, 0)),  # the same answers as tool SFT
        result("rl_no_bat", 0, visual_tool + records("direct", 10, 0, calls=1, successes=1)),
    ]
    verdicts = {claim["claim"].split()[0] + claim["claim"].split()[1]: claim["verdict"] for claim in judge_claims(results)}
    assert verdicts == {"toolSFT": "holds", "RL(GRPO": "inconclusive", "BATlowers": "holds"}


def test_a_few_fewer_calls_on_direct_items_is_inconclusive() -> None:
    visual = records("count", 20, 20, calls=1, successes=1)
    # The same 30 direct items: both arms call the tool on the first 10; without BAT also on 2 more.
    results = [
        result("rl_bat", 0, visual + records("direct", 10, 0, calls=1) + records("direct", 0, 20, first=10)),
        result("rl_no_bat", 0, visual + records("direct", 10, 0, calls=1) + records("direct", 0, 18, first=12)
               + records("direct", 2, 0, calls=1, first=10)),
    ]
    bat = next(claim for claim in judge_claims(results) if claim["claim"].startswith("BAT"))
    assert bat["verdict"] == "inconclusive", bat
    calls, visual_row = bat["comparisons"]
    assert (calls["items"], calls["a_mean"], calls["b_mean"], calls["a_better"], calls["b_better"]) == (30, 10 / 30, 12 / 30, 0, 2)
    assert calls["verdict"] == "inconclusive" and visual_row["verdict"] == "holds"
    assert "share of direct items with a tool call: rl bat vs rl no bat 0.333 vs 0.400, difference -0.067" in bat["numbers"]


def test_bat_that_loses_visual_accuracy_does_not_hold() -> None:
    results = [
        result("rl_bat", 0, records("count", 10, 30) + records("direct", 10, 0)),
        result("rl_no_bat", 0, records("count", 40, 0) + records("direct", 10, 0, calls=1)),
    ]
    bat = judge_claims(results)[0]
    assert [row["verdict"] for row in bat["comparisons"]] == ["holds", "does not hold"]
    assert bat["verdict"] == "does not hold"


def test_write_report_writes_markdown_summary_and_plots(tmp_path: Path) -> None:
    results = [result(arm, seed, records("count", 3, 1, calls=1, successes=1) + records("direct", 2, 0))
               for arm in ("text_sft", "tool_sft", "rl_bat", "rl_no_bat") for seed in (0, 1)]
    meta = {"command": "codedance experiment mini --seeds=2", "seeds": [0, 1], "arms": ["text_sft"],
            "config_digest": "abc123", "versions": {"torch": "2.13.0"}, "seconds": 90.0, "commit": "f8a8b66"}
    path = write_report(results, meta, tmp_path)
    text = path.read_text()
    assert "`codedance experiment mini --seeds=2` at commit `f8a8b66`" in text and "abc123" in text and "torch 2.13.0" in text
    assert "tool SFT beats text-only SFT" in text and "| rl bat |" in text
    assert (tmp_path / "accuracy_by_family.png").stat().st_size > 1000
    assert (tmp_path / "tool_calls.png").stat().st_size > 1000
    assert (tmp_path / "paired_differences.png").stat().st_size > 1000
    assert "paired bootstrap" in text and "| 1 | visual accuracy: tool_sft vs text_sft | 8 |" in text
    assert "two 95% intervals do not overlap" not in text
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["arms"]["tool_sft"]["groups"]["count"]["items"] == 8
    assert "## RL training" not in text and not (tmp_path / "rl_training.png").exists()  # no RL runs logged
    assert "wall time: 1.5 min\n" in text and "results were made at" not in text


def test_a_report_of_reused_results_says_when_and_by_what_they_were_made(tmp_path: Path) -> None:
    made = [{**result(arm, 0, records("count", 1, 1)), "seconds": 1200.0, "commit": "9ce8397"} for arm in ("text_sft", "tool_sft")]
    text = write_report(made, {"seconds": 6.0, "commit": "a1b2c3d"}, tmp_path).read_text()
    assert "at commit `a1b2c3d`; its results were made at `9ce8397`" in text
    assert "wall time: 0.1 min (reusing saved results, which took 40.0 min to make, base model included)" in text


def test_the_report_shows_how_rl_training_went_per_step(tmp_path: Path) -> None:
    # Two seeds' GRPO logs: the held-out evaluation at step 0 (alone) and step 2; seed 1 resumed from a
    # checkpoint and logged step 2 twice (the last counts).
    logs = {0: [(1, 0.25, None), (2, 0.5, 0.6)], 1: [(1, 0.75, None), (2, 0.0, 0.2), (2, 0.25, 0.4)]}
    curves = {}
    for seed, steps in logs.items():
        rows = [{"step": 0, "heldout/accuracy": 0.3}]
        rows += [{"step": step, "accuracy": acc, "tool_call_rate": 1.0, "sampling/informative_share": 0.5, "loss": 0.1,
                  **({"heldout/accuracy": held} if held is not None else {})} for step, acc, held in steps]
        curves[str(seed)] = rl_training_curve("".join(json.dumps(row) + "\n" for row in rows))
    assert curves["1"] == [
        {"step": 0, "heldout/accuracy": 0.3},
        {"step": 1, "accuracy": 0.75, "tool_call_rate": 1.0, "sampling/informative_share": 0.5},
        {"step": 2, "accuracy": 0.25, "tool_call_rate": 1.0, "sampling/informative_share": 0.5, "heldout/accuracy": 0.4},
    ]
    assert rl_training_curve("") == []

    results = [result(arm, 0, records("count", 1, 1)) for arm in ("tool_sft", "rl_bat")]
    path = write_report(results, {"seeds": [0, 1], "rl_training": {"rl_bat": curves}}, tmp_path / "out")
    text = path.read_text()
    # The held-out curve (mean over seeds at steps 0 and 2), then early against late training steps.
    assert "## RL training" in text and "| step 0 | step 2 |" in text and "| rl bat | 0.30 | 0.50 |" in text
    assert "| rl bat | 0.50 → 0.38 | 1.00 → 1.00 | n/a → n/a | 0.50 → 0.50 |" in text
    assert (tmp_path / "out" / "rl_training.png").stat().st_size > 1000
