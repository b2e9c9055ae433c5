"""What Mini-CodeDance is: its arms, its per-seed profiles and how a stage's output becomes a result."""

from __future__ import annotations

import pytest

from codedance_core.experiments.mini import ARMS, MiniConfig, arm_result, flat_metrics


def test_unknown_arms_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown arms"):
        MiniConfig(arms=["tool_sft", "magic"])


def test_every_seed_replicates_everything_after_the_shared_base_model() -> None:
    config = MiniConfig(smoke=True, overrides=["grpo.max_steps=3"])
    one, two = config.seed_profile(1), config.seed_profile(2)
    assert (one.data.seed, one.sft.seed, one.grpo.seed, one.synthesis.seed) == (1, 1, 1, 1)
    assert one.tiny_model == two.tiny_model == config.base_profile().tiny_model
    assert one.grpo.max_steps == 3  # the user's overrides come last and win
    assert one.tracking.experiment == "mini-codedance" and not one.evaluation.write_viewer


def test_where_it_writes_and_logs_can_be_moved_without_touching_the_stages() -> None:
    config = MiniConfig(smoke=True, store_root="/tmp/mini-store", tracking_uri="sqlite:///mini.db")
    profile = config.base_profile()
    assert profile.store.root == "/tmp/mini-store" and profile.tracking.tracking_uri == "sqlite:///mini.db"
    assert profile.stage_digest("sft") == MiniConfig(smoke=True).base_profile().stage_digest("sft")


def test_sft_arms_run_before_the_rl_arms_that_start_from_tool_sft() -> None:
    order = [arm.name for arm in MiniConfig(arms=["rl_bat", "tool_sft", "text_sft"]).ordered_arms()]
    assert order == ["tool_sft", "text_sft", "rl_bat"]


def test_an_arms_reward_switches_bat_off_where_it_must() -> None:
    from codedance_core.config.rewards import RewardConfig

    assert not ARMS["rl_no_bat"].rewards(RewardConfig()).use_bat
    assert ARMS["rl_bat_no_turn"].rewards(RewardConfig()).use_bat
    assert not ARMS["rl_bat_no_turn"].rewards(RewardConfig()).use_turn_level


def test_a_result_holds_per_family_figures_and_the_items() -> None:
    rows = [{"item_id": f"{family}-{i}", "data_source": f"suite_{family}", "acc": float(i % 2),
             "tool_calls": 1, "tool_successes": 1, "turns": 2} for family in ("count", "direct") for i in range(4)]
    result = arm_result(ARMS["tool_sft"], 0, rows, {"accuracy": 0.5, "items": 8}, 1.0)
    assert result["families"]["count"]["items"] == 4 and result["families"]["all"]["accuracy"] == 0.5
    assert len(result["items"]) == 8 and result["rl_training"] == []
    assert flat_metrics(result)["count.accuracy"] == 0.5
